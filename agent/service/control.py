"""The HTTP API's read model and commands, built from the running agent's parts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace

from agent.core.admission import Refused, Ticket
from agent.core.errors import LedgerError
from agent.core.kick import Outcome
from agent.core.mapping import RuntimeMapping
from agent.core.ratelimit import PulseRateLimiter
from agent.core.settings import PrinterSettings, Settings
from agent.core.views import KickAnswer
from agent.io.ledger import Ledger
from agent.io.metrics import Metrics
from agent.service.admission import Admission, Duplicate, Queued
from agent.service.dispatcher import Dispatcher
from agent.service.prober import Prober

# How long a waited-for test kick may take beyond its deadline: the sensor read after it.
SENSOR_GRACE_S = 2.0


def manual_ticket(
    printer: PrinterSettings, now: float, max_age_s: float, source: str, detail: str
) -> Ticket:
    """A test pulse's ticket: its own event id, no till, recorded as a manual opening."""
    return Ticket(
        event_id=f"manual-{uuid.uuid4()}",
        type="manual_kick",
        terminal_id=None,
        printer_id=printer.id,
        drawer=printer.drawer,
        occurred_at=now,
        received_at=now,
        deadline=now + max_age_s,
        source=source,
        detail=detail,
    )


class ManualKicks:
    """Test pulses (HTTP, console) through the one admission path; waits for the outcome."""

    def __init__(self, settings: Settings, admission: Admission) -> None:
        self.settings = settings
        self.printers: Mapping[str, PrinterSettings] = settings.printers
        self.admission = admission
        self._waiting: dict[str, asyncio.Future[Outcome]] = {}

    def update(self, printers: Mapping[str, PrinterSettings]) -> None:
        """A mapping change: test kicks go to the new printers."""
        self.printers = printers

    def finished(self, outcome: Outcome) -> None:
        """A job's outcome (every job's: only manual ones are waited for)."""
        future = self._waiting.pop(outcome.job.event_id, None)
        if future is not None and not future.done():
            future.set_result(outcome)

    async def test_kick(
        self,
        printer_id: str,
        origin: str,
        *,
        wait: bool,
        printer: PrinterSettings | None = None,
    ) -> KickAnswer:
        """One manual pulse, recorded as such; `wait` for its final outcome and sensor.

        `printer`: settings to try instead of the saved ones (the console's "other pin").
        """
        saved = self.printers.get(printer_id)
        printer = printer if saved is not None and printer is not None else saved
        if printer is None:
            return KickAnswer("unknown_printer", printer_id, detail="no such printer")
        now = time.time()
        ticket = manual_ticket(
            printer,
            now,
            self.settings.security.max_age_s,
            "manual",
            f"manual test pulse ({origin})",
        )
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting[ticket.event_id] = future
        try:
            admitted = self.admission.open(ticket, printer=printer)
        except LedgerError as exc:
            self._waiting.pop(ticket.event_id, None)
            return KickAnswer(
                "not_recorded", printer_id, detail=f"not recorded, so not sent: {exc}"
            )
        if isinstance(admitted, Refused):
            self._waiting.pop(ticket.event_id, None)
            return KickAnswer(admitted.code, printer_id, detail=admitted.reason)
        assert isinstance(admitted, Queued)
        if not wait:
            self._waiting.pop(ticket.event_id, None)
            return KickAnswer("queued", printer_id, ticket.event_id)
        try:
            async with asyncio.timeout(ticket.deadline - now + SENSOR_GRACE_S):
                outcome = await future
        except TimeoutError:
            self._waiting.pop(ticket.event_id, None)
            return KickAnswer("queued", printer_id, ticket.event_id, detail="still in progress")
        return KickAnswer(
            outcome.status.value,
            printer_id,
            ticket.event_id,
            detail=outcome.detail,
            attempts=outcome.attempts,
            latency_ms=outcome.latency_ms,
            drawer_open=outcome.drawer_open,
        )


class AgentView:
    """The read model of a running agent."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        connected: Callable[[], bool],
        broker: Callable[[], str],
        metrics: Metrics,
        prober: Prober,
        dispatcher: Dispatcher,
        discovered: Callable[[], list[dict[str, object]]] = list,
    ) -> None:
        self.settings = settings
        self._printers: Mapping[str, PrinterSettings] = settings.printers
        self.ledger = ledger
        self._connected = connected
        self._broker = broker
        self.metrics = metrics
        self.prober = prober
        self.dispatcher = dispatcher
        self._discovered = discovered
        self._mapping: RuntimeMapping | None = None

    def update(
        self, printers: Mapping[str, PrinterSettings], mapping: RuntimeMapping | None = None
    ) -> None:
        """A mapping change: the printers shown, and the effective mapping for /api/config."""
        self._printers = printers
        self._mapping = mapping

    def ready(self) -> tuple[bool, str]:
        """Readiness: connected to the broker with a writable ledger."""
        # The ledger first: an unwritable ledger also drops the broker link on purpose
        # (messages go back to the broker), and the ledger is the cause to report.
        problem = self.ledger.problem()
        if problem is not None:
            return False, f"ledger cannot record events: {problem}"
        if not self._connected():
            return False, f"not connected to broker {self._broker()}"
        return True, "ok"

    def metrics_text(self) -> bytes:
        """Prometheus exposition of this agent's registry."""
        return self.metrics.render()

    def printers(self) -> list[dict[str, object]]:
        """Configured printers with their last probed health."""
        out: list[dict[str, object]] = []
        for pid, p in self._printers.items():
            found = self.dispatcher.resolve(pid)
            out.append(
                {
                    "printer_id": pid,
                    "source": "configured",
                    "host": p.host,
                    "port": p.port,
                    "model": p.model,
                    "command_set": str(p.command_set),
                    "drawer": p.drawer,
                    "queued": self.dispatcher.queued(pid),
                    "health": h.to_json() if (h := self.prober.health.get(pid)) else None,
                    "address": None if found is None else f"{found[0]}:{found[1]}",
                }
            )
        return out

    def discovered(self) -> list[dict[str, object]]:
        """Printers discovery has seen (none when it does not run)."""
        return self._discovered()

    def events(self, limit: int, since: float | None) -> list[dict[str, object]]:
        """The audit trail, newest first."""
        return [r.to_json() for r in self.ledger.recent(limit, since)]

    def config(self) -> dict[str, object]:
        """Effective settings, secrets redacted, and the effective mapping with its origins."""
        shown = self.settings.redacted()
        if self._mapping is not None:
            shown["mapping"] = self._mapping.to_json()
        return shown


__all__ = ["AgentView", "ManualKicks"]


async def kick_once(
    settings: Settings, printer_id: str, *, drawer: int | None, timeout: float
) -> Outcome | Refused | Duplicate:
    """A CLI test pulse: the same admission and kick table as the agent, in its own lane.

    Recorded in the ledger as a manual opening from the CLI. The rate limit counts only this
    process's pulses: a running agent keeps its own.
    """
    printer = settings.printers[printer_id]
    if drawer is not None:
        printer = replace(printer, drawer=drawer)
    done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

    async def finished(outcome: Outcome) -> None:
        done.set_result(outcome)

    now = time.time()
    with Ledger.open(settings.state.path) as ledger:
        lane = Dispatcher({printer_id: printer}, ledger, settings.dispatch, finished)
        limiter = PulseRateLimiter(settings.security.max_pulses_per_minute)
        admitted = Admission(ledger, lane, limiter).open(
            manual_ticket(printer, now, timeout, "cli", "manual test pulse from the CLI")
        )
        if not isinstance(admitted, Queued):
            return admitted
        async with asyncio.TaskGroup() as tg:
            worker = tg.create_task(lane.run(), name="cli-kick")
            try:
                return await done
            finally:
                worker.cancel()
