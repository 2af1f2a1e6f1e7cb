"""drawer-agent: opens cash drawers on LAN receipt printers when the POS says so."""

__version__ = "0.1.0"
