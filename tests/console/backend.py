"""A small real Backend for the console tests: the real mapping store and ledger on a SQLite
file, real test pulses to virtual printers on loopback, real discovery sweeps of loopback
addresses. Only the agent's service wiring is left out (it is the lead's refactor)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from agent.core.commands import CommandSet, drawer_kick
from agent.core.console_model import DiscoveryView, EventView, KickResult, ShopHealth
from agent.core.errors import PrinterUnreachable
from agent.core.health import PrinterHealth
from agent.core.mapping import Actor, Change, Outcome, RuntimeMapping
from agent.core.settings import PrinterSettings, Settings
from agent.core.status import parse_dle_eot
from agent.io import printer_link
from agent.io.ledger import Ledger
from agent.io.mapping_store import LiveMapping, MappingStore
from discovery.core.model import DiscoveryConfig
from discovery.service import sweep

DLE_EOT_1 = b"\x10\x04\x01"  # Epson ESC/POS Command Reference, DLE EOT n=1 (printer status)


@dataclass
class RealStoreBackend:
    """Backend over a real SQLite file; `probe_port` is where discovery knocks (loopback)."""

    settings: Settings
    db: Path
    probe_port: int = 9100
    interfaces: Sequence[tuple[str, int]] = ()
    broker_connected: bool = True
    live: LiveMapping = field(init=False)
    ledger: Ledger = field(init=False)
    health_by_id: dict[str, PrinterHealth] = field(default_factory=dict)
    _discovery: DiscoveryView = field(default_factory=DiscoveryView)
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.ledger = Ledger.open(self.db)
        store = MappingStore.open(self.db)
        self.live = LiveMapping.load(store, self.settings.printers, self.settings.terminals)

    def close(self) -> None:
        self.live.store.close()
        self.ledger.close()

    @property
    def mapping(self) -> RuntimeMapping:
        return self.live.current

    def change(self, operation) -> Outcome:  # type: ignore[no-untyped-def]
        return self.live.apply(operation)

    def changes(self, limit: int) -> Sequence[Change]:
        return self.live.store.changes(limit)

    def health(self) -> ShopHealth:
        return ShopHealth(
            shop_id=self.settings.shop_id,
            version="test",
            ready=self.broker_connected,
            reason=None if self.broker_connected else "broker: connection refused",
            broker_connected=self.broker_connected,
            broker=self.settings.mqtt.url,
            printers=dict(self.health_by_id),
        )

    def recent_events(
        self, *, limit: int, terminal_id: str | None = None, status: str | None = None
    ) -> Sequence[EventView]:
        rows = [EventView.from_row(r.to_json()) for r in self.ledger.recent(1000)]
        rows = [
            r
            for r in rows
            if (terminal_id is None or r.terminal_id == terminal_id)
            and (status is None or r.status == status)
        ]
        return rows[:limit]

    async def test_kick(self, printer: PrinterSettings, *, actor: Actor) -> KickResult:
        now = time.time()
        event_id = f"manual-{uuid.uuid4()}"
        self.ledger.claim(
            event_id=event_id,
            type_="manual_kick",
            terminal_id=None,
            printer_id=printer.id,
            occurred_at=now,
            received_at=now,
            deadline=now + 30,
            detail=f"test pulse from {actor.who} (drawer {printer.drawer})",
            source="manual",
        )
        assert printer.host is not None
        payload = drawer_kick(
            printer.command_set, printer.drawer, printer.pulse_on_ms, printer.pulse_off_ms
        )
        drawer_open: bool | None = None
        try:
            await printer_link.send(
                printer.host, printer.port, payload, connect_timeout=1.0, write_timeout=1.0
            )
            if printer.command_set is CommandSet.ESCPOS:
                reply = await printer_link.exchange(
                    printer.host, printer.port, DLE_EOT_1, 1, timeout=1.0
                )
                drawer_open = parse_dle_eot(reply).drawer_open(printer.drawer_open_level or "low")
        except PrinterUnreachable as exc:
            self.ledger.finish(
                event_id, status="failed", attempts=1, finished_at=time.time(), detail=exc.reason
            )
            return KickResult("failed", None, exc.reason, event_id)
        self.ledger.finish(
            event_id,
            status="opened",
            attempts=1,
            finished_at=time.time(),
            drawer_open=drawer_open,
        )
        self.health_by_id[printer.id] = PrinterHealth(
            printer.id, printer.host, True, True, drawer_open=drawer_open, checked_at=time.time()
        )
        return KickResult("opened", drawer_open, "", event_id)

    def discovery(self) -> DiscoveryView:
        return self._discovery

    def discovery_defaults(self) -> tuple[Sequence[str], Sequence[tuple[str, int]]]:
        return self.settings.discovery.subnets, self.interfaces

    async def start_discovery(self, subnets: Sequence[str]) -> bool:
        if self._task is not None and not self._task.done():
            return False
        self._discovery = DiscoveryView(True, 0, 0, tuple(subnets), time.time())
        config = DiscoveryConfig(
            subnets=tuple(subnets),
            mdns=False,
            snmp=False,
            probe=True,
            identify=True,
            probe_port=self.probe_port,
            timeout_s=0.5,
        )

        def progress(done: int, total: int) -> None:
            self._discovery = replace(self._discovery, done=done, total=total)

        async def run() -> None:
            try:
                found = await sweep(config, mdns_seconds=0, progress=progress)
            except Exception as exc:
                self._discovery = replace(
                    self._discovery, running=False, finished_at=time.time(), error=str(exc)
                )
                return
            self._discovery = replace(
                self._discovery, running=False, finished_at=time.time(), found=tuple(found)
            )

        self._task = asyncio.create_task(run())
        return True

    async def wait_discovery(self) -> DiscoveryView:
        if self._task is not None:
            await self._task
        return self._discovery

    def redeem_pairing(self, code_hash: str, now: float) -> bool:
        return self.live.store.redeem_pairing(code_hash, now)
