"""The console's Backend over the running agent's parts (agent/io/console.py's Protocol)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from agent import __version__
from agent.core.console_model import DiscoveryView, EventView, KickResult, ShopHealth
from agent.core.errors import AgentError
from agent.core.mapping import Actor, Change, Outcome, RuntimeMapping
from agent.core.settings import PrinterSettings, Settings
from agent.core.status import open_level
from agent.io.ledger import Ledger
from agent.io.mapping_store import LiveMapping
from agent.service.control import AgentView, ManualKicks
from agent.service.dispatcher import Dispatcher
from agent.service.prober import Prober
from discovery.core.model import DiscoveryConfig
from discovery.io.netinfo import interface_addresses
from discovery.service import sweep

log = logging.getLogger(__name__)

# A console sweep is interactive: mDNS listens this long beside the 9100/SNMP sweep.
MDNS_SECONDS = 2.0


class AgentBackend:
    """What the console reads and changes, taken from the agent's own parts."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        live: LiveMapping,
        view: AgentView,
        kicks: ManualKicks,
        prober: Prober,
        dispatcher: Dispatcher,
        *,
        broker: Callable[[], str],
        connected: Callable[[], bool],
        started_at: float,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.live = live
        self.view = view
        self.kicks = kicks
        self.prober = prober
        self.dispatcher = dispatcher
        self._broker = broker
        self._connected = connected
        self.started_at = started_at
        self._discovery = DiscoveryView()
        self._task: asyncio.Task[None] | None = None

    @property
    def mapping(self) -> RuntimeMapping:
        """The effective mapping now."""
        return self.live.current

    def change(self, operation: Callable[[RuntimeMapping], Outcome]) -> Outcome:
        """Persisted, then live for the next event (LiveMapping's listeners)."""
        return self.live.apply(operation)

    def changes(self, limit: int) -> Sequence[Change]:
        """The mapping's audit rows, newest first."""
        return self.live.store.changes(limit)

    def health(self) -> ShopHealth:
        """Agent, broker and printers now."""
        ok, reason = self.view.ready()
        addresses: dict[str, str] = {}
        for pid in self.dispatcher.printers:
            found = self.dispatcher.resolve(pid)
            if found is not None:
                addresses[pid] = f"{found[0]}:{found[1]}"
        return ShopHealth(
            shop_id=self.settings.shop_id,
            version=__version__,
            ready=ok,
            reason=None if ok else reason,
            broker_connected=self._connected(),
            broker=self._broker(),
            started_at=self.started_at,
            printers=dict(self.prober.health),
            addresses=addresses,
        )

    def recent_events(
        self, *, limit: int, terminal_id: str | None = None, status: str | None = None
    ) -> Sequence[EventView]:
        """The audit trail, newest first, filtered."""
        scan = limit if terminal_id is None and status is None else 1000
        rows = [EventView.from_row(r.to_json()) for r in self.ledger.recent(scan)]
        return [
            r
            for r in rows
            if (terminal_id is None or r.terminal_id == terminal_id)
            and (status is None or r.status == status)
        ][:limit]

    async def test_kick(self, printer: PrinterSettings, *, actor: Actor) -> KickResult:
        """A test pulse with these settings through the agent's admission path and lane."""
        answer = await self.kicks.test_kick(
            printer.id, f"console, {actor.who}", wait=True, printer=printer
        )
        drawer_open = answer.drawer_open
        saved = self.dispatcher.printers.get(printer.id)
        if drawer_open is not None and saved is not None:
            # The prober reads the sensor with the saved polarity; a trial of the other
            # polarity reads the same bit the other way round.
            tried = open_level(printer.drawer_open_level, printer.command_set)
            if tried != open_level(saved.drawer_open_level, saved.command_set):
                drawer_open = not drawer_open
        return KickResult(answer.code, drawer_open, answer.detail, answer.event_id)

    def discovery(self) -> DiscoveryView:
        """The last console-started sweep."""
        return self._discovery

    def discovery_defaults(self) -> tuple[Sequence[str], Sequence[tuple[str, int]]]:
        """The configured subnets and this host's (address, prefix) pairs."""
        try:
            interfaces = interface_addresses()
        except OSError:
            interfaces = []
        return self.settings.discovery.subnets, interfaces

    async def start_discovery(self, subnets: Sequence[str]) -> bool:
        """Sweep `subnets` (checked by the console: never wider than a /22) in the background."""
        if self._task is not None and not self._task.done():
            return False
        base = self.settings.discovery.to_config()
        config = replace(
            base,
            subnets=tuple(subnets),
            probe=self.settings.discovery.probe,
            snmp=self.settings.discovery.snmp,
        )
        self._discovery = DiscoveryView(True, 0, 0, tuple(subnets), time.time())
        self._task = asyncio.create_task(self._sweep(config), name="console-discovery")
        return True

    async def _sweep(self, config: DiscoveryConfig) -> None:
        def progress(done: int, total: int) -> None:
            self._discovery = replace(self._discovery, done=done, total=total)

        try:
            mdns = MDNS_SECONDS if config.mdns else 0.0
            found = await sweep(config, mdns_seconds=mdns, progress=progress)
        except (AgentError, OSError) as exc:
            log.warning("console discovery failed: %s", exc)
            self._discovery = replace(
                self._discovery, running=False, finished_at=time.time(), error=str(exc)
            )
            return
        self._discovery = replace(
            self._discovery, running=False, finished_at=time.time(), found=tuple(found)
        )

    def redeem_pairing(self, code_hash: str, now: float) -> bool:
        """True once for a live pairing code."""
        return self.live.store.redeem_pairing(code_hash, now)

    async def aclose(self) -> None:
        """Stop a sweep still running (at shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
