"""SNMP sweep against real snmpsim agents on 127.0.1.0/24."""

from __future__ import annotations

from discovery_peers import FakePrinter, SnmpSim, free_tcp_port, tcp_peers

from discovery import DiscoveryConfig
from discovery.io.limiter import SweepStats
from discovery.service import sweep, sweep_network

TIMEOUT = 0.4


def config(fleet: SnmpSim, **overrides: object) -> DiscoveryConfig:
    base: dict[str, object] = {
        "subnets": ("127.0.1.0/24",),
        "mdns": False,
        "probe": False,
        "snmp_port": fleet.port,
        "timeout_s": TIMEOUT,
    }
    base.update(overrides)
    return DiscoveryConfig(**base)  # type: ignore[arg-type]


async def test_sweep_finds_and_identifies_the_printers(snmp_fleet: SnmpSim) -> None:
    stats = SweepStats()
    # How long a /24 takes is bench_discovery's to measure, not a test's to assert.
    records = await sweep(config(snmp_fleet), stats=stats)

    by_host = {r.host: r for r in records}
    # The router answers SNMP but is no printer; clones are two devices despite one MAC.
    assert sorted(by_host) == [
        "127.0.1.10",
        "127.0.1.11",
        "127.0.1.12",
        "127.0.1.13",
        "127.0.1.14",
        "127.0.1.15",
        "127.0.1.20",
        "127.0.1.21",
    ]
    epson = by_host["127.0.1.10"]
    assert (epson.vendor, epson.model, epson.command_set) == ("Epson", "TM-T20III", "escpos")
    assert (epson.mac, epson.serial, epson.name) == (
        "00:26:ab:12:34:56",
        "X4FT012345",
        "TM-T20III-kitchen",
    )
    assert epson.sources == frozenset({"snmp"})
    star = by_host["127.0.1.11"]
    assert (star.vendor, star.model, star.command_set, star.mac) == (
        "Star",
        "TSP654II",
        "star-line",
        "00:11:62:0a:0b:0c",
    )
    mcp = by_host["127.0.1.14"]
    assert (mcp.vendor, mcp.model, mcp.command_set) == ("Star", "MCP31", "star-prnt")
    bixolon = by_host["127.0.1.12"]
    assert (bixolon.vendor, bixolon.model, bixolon.command_set) == (
        "Bixolon",
        "SRP-350III",
        "escpos",
    )
    citizen = by_host["127.0.1.13"]
    assert (citizen.vendor, citizen.model, citizen.command_set) == (
        "Citizen",
        "CT-S310II",
        "escpos",
    )
    assert {by_host["127.0.1.20"].serial, by_host["127.0.1.21"].serial} == {
        "CLONEA0001",
        "CLONEB0002",
    }
    assert stats.hosts == 254
    assert stats.snmp_replies == 9
    assert stats.peak_in_flight <= 256


async def test_garbled_agent_yields_a_record_without_bad_fields(snmp_fleet: SnmpSim) -> None:
    records = await sweep(config(snmp_fleet, subnets=("127.0.1.15/32",)))
    [garbled] = records
    assert garbled.mac is None  # 3-byte ifPhysAddress
    assert garbled.serial is None  # only control characters
    assert garbled.name == "\ufffd\ufffdA\ufffd"  # non-UTF-8 sysName, decoded with replacement
    # OCTET STRING sysObjectID and truncated `MFG:EPS` must not make it an Epson.
    assert garbled.vendor == "EPS"
    assert garbled.command_set is None


async def test_concurrency_bound_is_respected(snmp_fleet: SnmpSim) -> None:
    stats = SweepStats()
    cfg = config(snmp_fleet, subnets=("127.0.1.0/27",), concurrency=8, timeout_s=0.2)
    sightings = await sweep_network(cfg, stats=stats)
    assert len({s.host for s in sightings}) == 8
    assert stats.hosts == 30
    assert stats.peak_in_flight == 8
    assert stats.peak_snmp_requests <= 8


async def test_wrong_community_finds_nothing(snmp_fleet: SnmpSim) -> None:
    records = await sweep(config(snmp_fleet, subnets=("127.0.1.8/29",), snmp_community="private"))
    assert records == []


async def test_snmpv1_fallback_drops_missing_columns(snmp_fleet: SnmpSim) -> None:
    [mcp] = await sweep(config(snmp_fleet, subnets=("127.0.1.14/32",), snmp_version="1"))
    assert (mcp.vendor, mcp.model, mcp.command_set) == ("Star", "MCP31", "star-prnt")


async def test_snmp_and_probe_merge_and_star_gets_no_escpos(snmp_fleet: SnmpSim) -> None:
    port = free_tcp_port("127.0.1.10")
    epson_port, star_port = FakePrinter(), FakePrinter()
    cfg = config(snmp_fleet, subnets=("127.0.1.8/29",), probe=True, identify=True, probe_port=port)
    async with tcp_peers({"127.0.1.10": epson_port, "127.0.1.11": star_port}, port):
        records = await sweep(cfg)
    epson = next(r for r in records if r.host == "127.0.1.10")
    assert epson.sources == frozenset({"snmp", "probe"})
    assert epson.port == port
    assert len([r for r in records if r.host == "127.0.1.10"]) == 1
    # SNMP said Star Line: the identify probe connects but sends no ESC/POS query.
    star = next(r for r in records if r.host == "127.0.1.11")
    assert (star.command_set, star.sources) == ("star-line", frozenset({"snmp", "probe"}))
    assert star_port.connections == 1
    assert star_port.received == b""
    assert epson_port.received.startswith(b"\x10\x04\x01")
