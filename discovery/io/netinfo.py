"""This host's IPv4 interface addresses (read only; used for subnet suggestions)."""

from __future__ import annotations

import ifaddr


def interface_addresses() -> list[tuple[str, int]]:
    """(address, prefix length) of every IPv4 address on this host."""
    found: list[tuple[str, int]] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                found.append((ip.ip, ip.network_prefix))
    return found
