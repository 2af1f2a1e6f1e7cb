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


# The console's widest sweep: a /22 is 1022 hosts, a few seconds at the default concurrency.
WIDEST_CONSOLE_PREFIX = 22


def console_sweep(
    requested: Iterable[str], configured: Iterable[str], interfaces: Iterable[tuple[str, int]]
) -> list[str]:
    """Subnets a console-started sweep covers: the request, else the configured subnets,
    else this host's own private subnets narrowed to a /22; ValueError names a bad request.

    A requested or configured subnet wider than a /22 is refused rather than narrowed: the
    installer meant something else, and sweeping a part of it would hide that.
    """
    chosen = list(requested) or list(configured)
    if chosen:
        out: dict[str, None] = {}
        for cidr in chosen:
            try:
                net = ipaddress.IPv4Network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IPv4 subnet such as 192.168.1.0/24") from None
            if net.prefixlen < WIDEST_CONSOLE_PREFIX:
                raise ValueError(f"{cidr} is wider than a /{WIDEST_CONSOLE_PREFIX}")
            out.setdefault(str(net), None)
        return list(out)
    own: dict[str, None] = {}
    for address, prefix in interfaces:
        try:
            iface = ipaddress.IPv4Interface(f"{address}/{prefix}")
        except ValueError:
            continue
        if not any(iface.ip in net for net in RFC1918):
            continue
        net = iface.network
        if net.prefixlen < WIDEST_CONSOLE_PREFIX:
            net = ipaddress.IPv4Interface(f"{iface.ip}/{WIDEST_CONSOLE_PREFIX}").network
        own.setdefault(str(net), None)
    return list(own)
