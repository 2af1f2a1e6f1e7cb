"""One-shot `sweep()` and the long-running `DiscoveryService` used by the agent."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Self

from discovery.core import probe_parse, snmp_parse, subnets
from discovery.core.merge import Change, merge, withdraw
from discovery.core.model import DiscoveryConfig, PrinterRecord, Sighting
from discovery.io.limiter import Limiter, SweepStats
from discovery.io.mdns import MdnsBrowser, MdnsError
from discovery.io.probe import Guard, Prober
from discovery.io.snmp import SnmpClient, SnmpError
from discovery.io.store import DiscoveryStore

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
OnChange = Callable[[PrinterRecord, PrinterRecord | None], None]


async def sweep(
    config: DiscoveryConfig,
    *,
    mdns_seconds: float = 3.0,
    progress: Progress | None = None,
    guard: Guard | None = None,
    stats: SweepStats | None = None,
    clock: Callable[[], float] = time.time,
) -> list[PrinterRecord]:
    """Run every enabled source once (mDNS for `mdns_seconds`) and return merged printers."""
    found_by_mdns: dict[str, Sighting] = {}
    network: list[Sighting] = []

    def seen(sighting: Sighting) -> None:
        found_by_mdns[sighting.mdns_name or sighting.host] = sighting

    def gone(instance: str) -> None:
        found_by_mdns.pop(instance, None)

    async def listen() -> None:
        try:
            async with MdnsBrowser(
                interfaces=config.interfaces, on_sighting=seen, on_removed=gone, clock=clock
            ):
                await asyncio.sleep(mdns_seconds)
        except MdnsError as exc:
            log.warning("%s; continuing without mDNS", exc)

    async def scan() -> None:
        network.extend(
            await sweep_network(config, progress=progress, guard=guard, stats=stats, clock=clock)
        )

    async with asyncio.TaskGroup() as tg:
        if config.mdns and mdns_seconds > 0:
            tg.create_task(listen(), name="discovery.sweep.mdns")
        tg.create_task(scan(), name="discovery.sweep.network")
    result = merge((), [*network, *found_by_mdns.values()], default_port=config.probe_port)
    return sorted(result.records, key=_order)


async def sweep_network(
    config: DiscoveryConfig,
    *,
    progress: Progress | None = None,
    guard: Guard | None = None,
    stats: SweepStats | None = None,
    clock: Callable[[], float] = time.time,
) -> list[Sighting]:
    """SNMP and 9100 across `config.subnets` only, at most `config.concurrency` hosts at once."""
    hosts = subnets.expand(config.subnets)
    if not hosts or not (config.snmp or config.probe):
        return []
    stats = stats if stats is not None else SweepStats()
    stats.hosts = len(hosts)
    limiter = Limiter(config.concurrency)
    prober = Prober(port=config.probe_port, timeout_s=config.timeout_s, guard=guard)
    snmp_found: dict[str, Sighting] = {}
    open_ports: list[str] = []
    done = 0

    async with AsyncExitStack() as stack:
        snmp = None
        if config.snmp:
            snmp = await stack.enter_async_context(
                SnmpClient(
                    community=config.snmp_community,
                    port=config.snmp_port,
                    timeout_s=config.timeout_s,
                    version=config.snmp_version,
                )
            )

        async def ask_snmp(host: str) -> None:
            if snmp is None:
                return
            stats.snmp_requests += 1
            try:
                varbinds = await snmp.query(host)
            except SnmpError as exc:
                log.debug("%s", exc)
                return
            stats.snmp_replies += 1
            sighting = snmp_parse.to_sighting(host, snmp_parse.parse_reply(varbinds), clock())
            if sighting is not None:
                snmp_found[host] = sighting

        async def knock(host: str) -> None:
            if not config.probe:
                return
            stats.tcp_connects += 1
            if await prober.is_open(host):
                open_ports.append(host)

        async def worker(queue: Iterator[str]) -> None:
            nonlocal done
            for host in queue:
                async with limiter.slot():
                    # Both protocols share the host's slot, so a sweep costs one timeout.
                    await asyncio.gather(ask_snmp(host), knock(host))
                done += 1
                if progress is not None:
                    progress(done, len(hosts))

        queue = iter(hosts)
        async with asyncio.TaskGroup() as tg:
            for i in range(min(config.concurrency, len(hosts))):
                tg.create_task(worker(queue), name=f"discovery.sweep.worker[{i}]")

        probed: dict[str, probe_parse.ProbeReply] = {}
        if config.identify:
            # Never send ESC/POS queries to a printer SNMP already named as a Star model.
            targets = [
                h
                for h in open_ports
                if not (snmp_found.get(h) and (snmp_found[h].command_set or "").startswith("star"))
            ]

            async def ask(host: str) -> None:
                async with limiter.slot():
                    probed[host] = await prober.identify(host)

            async with asyncio.TaskGroup() as tg:
                for host in targets:
                    tg.create_task(ask(host), name=f"discovery.identify[{host}]")

    stats.tcp_open = len(open_ports)
    stats.peak_in_flight = max(stats.peak_in_flight, limiter.in_flight.peak)
    stats.peak_tcp_sockets = max(stats.peak_tcp_sockets, prober.sockets.peak)
    if snmp is not None:
        stats.peak_snmp_requests = max(stats.peak_snmp_requests, snmp.in_flight.peak)
    now = clock()
    sightings = [snmp_found[h] for h in hosts if h in snmp_found]
    sightings += [
        probe_parse.to_sighting(h, config.probe_port, probed.get(h, probe_parse.ProbeReply()), now)
        for h in open_ports
    ]
    return sightings


class DiscoveryService:
    """Watch mDNS continuously and re-sweep SNMP/9100 every `interval_s`."""

    def __init__(
        self,
        config: DiscoveryConfig,
        *,
        store: DiscoveryStore | None = None,
        on_change: OnChange | None = None,
        guard: Guard | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._store = store
        self._on_change = on_change
        self._guard = guard
        self._clock = clock
        self._records: tuple[PrinterRecord, ...] = ()
        self._stack: AsyncExitStack | None = None
        self._periodic: asyncio.Task[None] | None = None
        self._rescan_lock = asyncio.Lock()
        self.mdns_running = False
        self.last_stats = SweepStats()

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError("DiscoveryService is not reentrant")
        if self._store is not None:
            self._records = tuple(self._store.all())
        self._stack = AsyncExitStack()
        if self.config.mdns:
            browser = MdnsBrowser(
                interfaces=self.config.interfaces,
                on_sighting=self._seen,
                on_removed=self._gone,
                clock=self._clock,
            )
            try:
                await self._stack.enter_async_context(browser)
                self.mdns_running = True
            except MdnsError as exc:
                # mDNS is optional: the agent degrades to SNMP/9100 instead of dying.
                log.warning("%s; continuing without mDNS", exc)
        if self.config.subnets and self.config.interval_s > 0:
            self._periodic = asyncio.get_running_loop().create_task(
                self._every_interval(), name="discovery.service.periodic"
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._periodic is not None:
            self._periodic.cancel()
            try:
                await self._periodic
            except asyncio.CancelledError:
                # Re-raise only if *we* are being cancelled, not the task we cancelled.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
            self._periodic = None
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None
        self.mdns_running = False

    def snapshot(self) -> list[PrinterRecord]:
        """Current printers, by address."""
        return sorted(self._records, key=_order)

    async def rescan(self) -> None:
        """Sweep the configured subnets now; concurrent calls wait for the running one."""
        async with self._rescan_lock:
            stats = SweepStats()
            sightings = await sweep_network(
                self.config, guard=self._guard, stats=stats, clock=self._clock
            )
            self.last_stats = stats
            self._apply(sightings)

    async def _every_interval(self) -> None:
        while True:
            await self.rescan()
            await asyncio.sleep(self.config.interval_s)

    def _seen(self, sighting: Sighting) -> None:
        self._apply([sighting])

    def _gone(self, instance: str) -> None:
        records, changes = withdraw(self._records, instance)
        self._commit(records, changes)

    def _apply(self, sightings: Sequence[Sighting]) -> None:
        result = merge(self._records, sightings, default_port=self.config.probe_port)
        self._commit(result.records, result.changes)

    def _commit(self, records: tuple[PrinterRecord, ...], changes: tuple[Change, ...]) -> None:
        before = {id(r) for r in self._records}
        self._records = records
        if self._store is not None:
            try:
                for record in records:
                    if id(record) not in before:
                        self._store.upsert(record)
            except sqlite3.Error as exc:
                # Persistence only speeds up the next start; live discovery carries on.
                log.error("discovery store write failed: %s", exc)
        for change in changes:
            old, new = change.old, change.new
            if old is not None and (old.host, old.port) != (new.host, new.port):
                log.info(
                    "printer %s moved from %s:%d to %s:%d",
                    new.mac or new.serial or new.mdns_name or new.host,
                    old.host,
                    old.port,
                    new.host,
                    new.port,
                )
            if self._on_change is not None:
                self._on_change(new, old)


def _order(record: PrinterRecord) -> tuple[int, int]:
    return int(ipaddress.IPv4Address(record.host)), record.port
