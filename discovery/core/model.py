"""Value objects shared by every discovery module."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

SOURCES = frozenset({"mdns", "snmp", "probe"})
COMMAND_SETS = frozenset({"escpos", "star-line", "star-prnt", "star-graphic"})
DEFAULT_PORT = 9100
# A /16 is already 65 534 hosts; anything larger is almost certainly a typo.
MAX_SWEEP_HOSTS = 65_536


@dataclass(frozen=True)
class Sighting:
    """One source's view of one device at one moment."""

    source: str
    host: str
    seen_at: float
    port: int | None = None
    vendor: str | None = None
    model: str | None = None
    command_set: str | None = None
    mac: str | None = None
    serial: str | None = None
    name: str | None = None
    mdns_name: str | None = None
    # _http._tcp only enriches a device already known from another source (issue 3 §1).
    enrich_only: bool = False

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown source {self.source!r}")


@dataclass(frozen=True)
class PrinterRecord:
    """One printer, merged from every sighting of the same device."""

    host: str
    port: int
    vendor: str | None
    model: str | None
    command_set: str | None
    mac: str | None
    serial: str | None
    name: str | None
    sources: frozenset[str]
    first_seen: float
    last_seen: float
    mdns_name: str | None = None
    # Latest sighting per source; field values are resolved from these by priority.
    evidence: tuple[Sighting, ...] = field(default=(), compare=False, repr=False)

    def to_json(self) -> dict[str, object]:
        """Plain-JSON form used by the CLI and the agent's API."""
        return {
            "host": self.host,
            "port": self.port,
            "vendor": self.vendor,
            "model": self.model,
            "command_set": self.command_set,
            "mac": self.mac,
            "serial": self.serial,
            "name": self.name,
            "sources": sorted(self.sources),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }


def _key(default: object, doc: str, **bounds: object) -> Any:
    """A field that is also a settings key of the agent (metadata as in agent/core/fieldspec)."""
    return field(default=default, metadata={"doc": doc, **bounds})


@dataclass(frozen=True)
class DiscoveryConfig:
    """Discovery settings; sweeps touch only `subnets`, never a default range.

    The one definition of discovery's keys and bounds: the agent's `[discovery]` table is read
    from these fields, and the constructor checks the same bounds for the discovery CLI.
    """

    subnets: tuple[str, ...] = _key((), "IPv4 CIDRs swept by SNMP and 9100 probes")
    interfaces: tuple[str, ...] = _key((), "IPv4 addresses of the interfaces mDNS listens on")
    mdns: bool = _key(True, "watch mDNS/DNS-SD for printers")
    snmp: bool = _key(True, "ask each swept address over SNMP")
    probe: bool = _key(True, "try a TCP connection to port 9100 of each swept address")
    identify: bool = _key(False, "send a status request to identify the command set")
    snmp_community: str = field(
        default="public",
        repr=False,
        metadata={"doc": "SNMP community (read-only)", "secret": True},
    )
    snmp_port: int = field(default=161, metadata={"lo": 1, "hi": 65535})
    snmp_version: str = _key("2c", "SNMP version", choices=("1", "2c"))
    # A key so that a shop whose printers listen elsewhere (and the tests' virtual printers
    # on loopback) can be swept; 9100 is the raw-printing port of every catalogue model.
    probe_port: int = _key(DEFAULT_PORT, "TCP port the sweep probes", lo=1, hi=65535)
    timeout_s: float = _key(1.0, "timeout of one SNMP request or probe", lo=0.05, hi=30.0)
    concurrency: int = _key(256, "addresses swept at once", lo=1, hi=1024)
    # 0 turns periodic sweeps off (mDNS keeps watching); a shorter period than 1 s is a typo.
    interval_s: float = _key(300.0, "seconds between sweeps, 0 = sweep once", lo=0.0, hi=86400.0)

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_bounds(f.name, getattr(self, f.name), f.metadata)
        total = 0
        for cidr in self.subnets:
            try:
                net = ipaddress.IPv4Network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"discovery.subnets: {cidr!r} is not an IPv4 CIDR") from exc
            total += net.num_addresses
        if total > MAX_SWEEP_HOSTS:
            raise ValueError(f"discovery.subnets cover {total} addresses (max {MAX_SWEEP_HOSTS})")
        for addr in self.interfaces:
            try:
                ipaddress.IPv4Address(addr)
            except ValueError as exc:
                raise ValueError(f"discovery.interfaces: {addr!r} is not an IPv4 address") from exc
        if 0 < self.interval_s < 1:
            raise ValueError(f"discovery.interval_s must be 0 (off) or >= 1, not {self.interval_s}")


def _check_bounds(name: str, value: object, meta: Mapping[str, Any]) -> None:
    if "lo" in meta and isinstance(value, int | float) and not meta["lo"] <= value <= meta["hi"]:
        raise ValueError(f"discovery.{name} must be in [{meta['lo']}, {meta['hi']}], not {value}")
    if "choices" in meta and value not in meta["choices"]:
        choices = " or ".join(repr(c) for c in meta["choices"])
        raise ValueError(f"discovery.{name} must be {choices}, not {value!r}")
