"""Sweep targets from configured CIDRs, and subnet suggestions (never swept)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from discovery.core.model import MAX_SWEEP_HOSTS

# Never suggest more than a /24: installers should widen a sweep on purpose.
SUGGESTED_PREFIX = 24
# Shop LANs use RFC 1918 space; anything else (CGNAT, documentation, public) is not suggested.
RFC1918 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def expand(cidrs: Iterable[str]) -> list[str]:
    """Usable host addresses of the given CIDRs, de-duplicated, in order."""
    seen: dict[str, None] = {}
    for cidr in cidrs:
        net = ipaddress.IPv4Network(cidr, strict=False)
        # /31 and /32 have no network/broadcast address to skip (RFC 3021).
        hosts = net.hosts() if net.prefixlen < 31 else iter(net)
        for host in hosts:
            seen.setdefault(str(host), None)
            if len(seen) > MAX_SWEEP_HOSTS:
                raise ValueError(f"subnets cover more than {MAX_SWEEP_HOSTS} hosts")
    return list(seen)


def suggest(interfaces: Iterable[tuple[str, int]]) -> list[str]:
    """RFC 1918 subnets of this host's interfaces, capped at /24, for a human to confirm."""
    suggestions: dict[str, None] = {}
    for address, prefix in interfaces:
        try:
            iface = ipaddress.IPv4Interface(f"{address}/{prefix}")
        except ValueError:
            continue
        ip = iface.ip
        if not any(ip in net for net in RFC1918):
            continue
        net = iface.network
        if net.prefixlen < SUGGESTED_PREFIX:
            net = ipaddress.IPv4Interface(f"{ip}/{SUGGESTED_PREFIX}").network
        suggestions.setdefault(str(net), None)
    return list(suggestions)
