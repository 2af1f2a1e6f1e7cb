"""DiscoveryService: periodic SNMP sweeps, a printer that moves, persistence."""

from __future__ import annotations

import asyncio
from pathlib import Path

from discovery_peers import SnmpSim, free_udp_port

from discovery import DiscoveryConfig, PrinterRecord, matches
from discovery.io.store import DiscoveryStore
from discovery.service import DiscoveryService

EPSON_MAC = "00:26:ab:12:34:56"


async def test_printer_moving_address_is_followed_and_persisted(tmp_path: Path) -> None:
    port = free_udp_port("127.0.1.40")
    cfg = DiscoveryConfig(
        subnets=("127.0.1.40/31",),
        mdns=False,
        probe=False,
        snmp_port=port,
        timeout_s=0.3,
        interval_s=1.0,
    )
    changes: list[tuple[PrinterRecord, PrinterRecord | None]] = []
    changed = asyncio.Event()

    def on_change(new: PrinterRecord, old: PrinterRecord | None) -> None:
        changes.append((new, old))
        changed.set()

    async def next_change() -> tuple[PrinterRecord, PrinterRecord | None]:
        async with asyncio.timeout(10):
            while not changes:
                changed.clear()
                await changed.wait()
        return changes.pop(0)

    store = DiscoveryStore(tmp_path / "agent.db")
    first = SnmpSim({"127.0.1.40": "epson-tm-t20iii"}, tmp_path / "a", port)
    await asyncio.to_thread(first.start)
    try:
        async with DiscoveryService(cfg, store=store, on_change=on_change) as svc:
            # The periodic task sweeps as soon as the service starts.
            new, old = await next_change()
            assert old is None
            assert (new.host, new.mac, new.vendor) == ("127.0.1.40", EPSON_MAC, "Epson")

            # DHCP hands the printer a new address: same device, same MAC, other IP.
            await asyncio.to_thread(first.stop)
            second = SnmpSim({"127.0.1.41": "epson-tm-t20iii"}, tmp_path / "b", port)
            await asyncio.to_thread(second.start)
            try:
                new, old = await next_change()
            finally:
                await asyncio.to_thread(second.stop)
            assert old is not None
            assert (old.host, new.host) == ("127.0.1.40", "127.0.1.41")
            assert new.first_seen == old.first_seen
            [mapped] = [r for r in svc.snapshot() if matches(r, mac=EPSON_MAC)]
            assert mapped.host == "127.0.1.41"
            assert svc.last_stats.hosts == 2
    finally:
        await asyncio.to_thread(first.stop)
        store.close()

    # A restarted agent knows where the printer was last seen before any sweep.
    store = DiscoveryStore(tmp_path / "agent.db")
    try:
        async with DiscoveryService(
            DiscoveryConfig(mdns=False, snmp=False, probe=False), store=store
        ) as svc:
            assert [(r.host, r.mac) for r in svc.snapshot()] == [("127.0.1.41", EPSON_MAC)]
    finally:
        store.close()


async def test_rescan_on_demand_and_clean_exit(snmp_fleet: SnmpSim) -> None:
    cfg = DiscoveryConfig(
        subnets=("127.0.1.8/29",),
        mdns=False,
        probe=False,
        snmp_port=snmp_fleet.port,
        timeout_s=0.3,
        interval_s=0,  # no periodic task: only explicit rescans
    )
    svc = DiscoveryService(cfg)
    async with svc:
        assert svc.snapshot() == []
        await asyncio.gather(svc.rescan(), svc.rescan())  # serialised, not doubled
        assert [r.host for r in svc.snapshot()] == [
            "127.0.1.10",
            "127.0.1.11",
            "127.0.1.12",
            "127.0.1.13",
            "127.0.1.14",
        ]
    tasks = [t for t in asyncio.all_tasks() if (t.get_name() or "").startswith("discovery.")]
    assert tasks == []
