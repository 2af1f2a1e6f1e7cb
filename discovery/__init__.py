"""Find receipt printers on the LAN (mDNS, SNMP, TCP 9100) and follow them when they move."""

from discovery.identity import matches, normalise_mac
from discovery.model import DiscoveryConfig, PrinterRecord, Sighting
from discovery.service import DiscoveryService, sweep
from discovery.store import DiscoveryStore

__all__ = [
    "DiscoveryConfig",
    "DiscoveryService",
    "DiscoveryStore",
    "PrinterRecord",
    "Sighting",
    "matches",
    "normalise_mac",
    "sweep",
]
