"""Value objects shared by every discovery module."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class DiscoveryConfig:
    """Discovery settings; sweeps touch only `subnets`, never a default range."""

    subnets: tuple[str, ...] = ()
    interfaces: tuple[str, ...] = ()
    mdns: bool = True
    snmp: bool = True
    probe: bool = True
    identify: bool = False
    snmp_community: str = "public"
    snmp_port: int = 161
    snmp_version: str = "2c"
    probe_port: int = DEFAULT_PORT
    timeout_s: float = 1.0
    concurrency: int = 256
    interval_s: float = 300.0

    def __post_init__(self) -> None:
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
        if self.snmp_version not in ("1", "2c"):
            raise ValueError(
                f"discovery.snmp_version must be '1' or '2c', not {self.snmp_version!r}"
            )
        if not 0 < self.timeout_s <= 30:
            raise ValueError(f"discovery.timeout_s must be in (0, 30], not {self.timeout_s}")
        if not 1 <= self.concurrency <= 4096:
            raise ValueError(f"discovery.concurrency must be in [1, 4096], not {self.concurrency}")
        if self.interval_s < 1 and self.interval_s != 0:
            raise ValueError(f"discovery.interval_s must be 0 (off) or >= 1, not {self.interval_s}")
        for key, port in (("snmp_port", self.snmp_port), ("probe_port", self.probe_port)):
            if not 0 < port < 65536:
                raise ValueError(f"discovery.{key} must be a TCP/UDP port, not {port}")
