"""Find receipt printers on the LAN (mDNS, SNMP, TCP 9100) and follow them when they move.

Only the pure core is re-exported here: importing `discovery` must not pull in zeroconf,
pysnmp, sqlite3 or asyncio. The service is `discovery.service`, the adapters `discovery.io`.
"""

from discovery.core.identity import matches, normalise_mac
from discovery.core.model import DiscoveryConfig, PrinterRecord, Sighting

__all__ = [
    "DiscoveryConfig",
    "PrinterRecord",
    "Sighting",
    "matches",
    "normalise_mac",
]
