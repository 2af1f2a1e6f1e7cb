"""Per-printer queues that turn accepted events into pulses, with retry until the deadline.

One worker per printer, one connection at a time per printer; a dead printer only
delays its own queue (no head-of-line blocking across printers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace

from agent.core.acks import AckStatus
from agent.core.commands import CommandSet, status_requests
from agent.core.errors import LedgerError, PrinterUnreachable
from agent.core.health import Kick, choose_kick
from agent.core.retry import Backoff, attempt_timeout, next_attempt_at
from agent.core.settings import DispatchSettings, PrinterSettings
from agent.io import printer_link
from agent.io.ledger import Ledger
from agent.io.logs import QuietLog

log = logging.getLogger(__name__)

Address = tuple[str, int]
REALTIME_DETAIL = "real-time pulse: the last probe saw the printer offline or out of paper"


@dataclass(frozen=True)
class Job:
    """One accepted event waiting for its pulse."""

    event_id: str
    printer_id: str
    terminal_id: str | None
    received_at: float
    deadline: float
    source: str = "mqtt"


@dataclass(frozen=True)
class Outcome:
    """Final result of a job."""

    job: Job
    status: AckStatus
    attempts: int
    sent_at: float | None = None
    detail: str = ""
    realtime: bool = False
    drawer_open: bool | None = None

    @property
    def latency_ms(self) -> float | None:
        """Receipt to write, in milliseconds."""
        if self.sent_at is None:
            return None
        return (self.sent_at - self.job.received_at) * 1000.0


@dataclass
class PrinterQueue:
    """A printer's queue and the lock every exchange with that printer holds."""

    queue: asyncio.Queue[Job]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    busy: bool = False
    sensing: int = 0


class Dispatcher:
    """Owns a worker per printer; `run()` is a long-lived task of the agent's TaskGroup."""

    def __init__(
        self,
        printers: Mapping[str, PrinterSettings],
        ledger: Ledger,
        settings: DispatchSettings,
        on_outcome: Callable[[Outcome], Awaitable[None]],
        resolve: Callable[[str], Address | None] | None = None,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        kick_for: Callable[[PrinterSettings], Kick] | None = None,
        read_drawer: Callable[[str, float], Awaitable[bool | None]] | None = None,
    ) -> None:
        self.printers = printers
        self.ledger = ledger
        self.settings = settings
        self.on_outcome = on_outcome
        self.resolve = resolve or self._configured_address
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self.clock = clock
        # Closed loop (issue 4): the prober picks the pulse form and reads the drawer sensor.
        self.kick_for = kick_for or (lambda p: choose_kick(p, None))
        self.read_drawer = read_drawer
        self._tg: asyncio.TaskGroup | None = None
        # Final in the ledger but their ack waits for the sensor read: not to be resent.
        self.sensing_ids: set[str] = set()
        self.queues = {
            pid: PrinterQueue(asyncio.Queue(maxsize=settings.queue_size)) for pid in printers
        }
        self._quiet = {pid: QuietLog(log) for pid in printers}
        self._idle = asyncio.Event()
        self._idle.set()

    def has_room(self, printer_id: str) -> bool:
        """True when the printer's queue can take one more job."""
        pq = self.queues.get(printer_id)
        return pq is not None and not pq.queue.full()

    def submit(self, job: Job) -> None:
        """Queue a job; the caller checked has_room() with no await in between."""
        self._idle.clear()
        self.queues[job.printer_id].queue.put_nowait(job)

    def lock_for(self, printer_id: str) -> asyncio.Lock:
        """The lock held while anyone talks to this printer (pulses, health, probes)."""
        return self.queues[printer_id].lock

    def pending(self) -> int:
        """Jobs queued or in progress."""
        return sum(pq.queue.qsize() + int(pq.busy) + pq.sensing for pq in self.queues.values())

    async def drained(self) -> None:
        """Wait until every queue is empty and no pulse is in progress."""
        while self.pending():
            self._idle.clear()
            await self._idle.wait()

    async def run(self) -> None:
        """Run one worker per printer until cancelled."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            for pid in self.queues:
                tg.create_task(self._worker(pid), name=f"dispatch[{pid}]")

    async def _worker(self, printer_id: str) -> None:
        pq = self.queues[printer_id]
        while True:
            job = await pq.queue.get()
            pq.busy = True
            try:
                outcome = await self._deliver(job)
                self._record(outcome)
                # The sensor read is best effort: skipped while more pulses wait for this printer.
                if (
                    self.read_drawer is not None
                    and outcome.sent_at is not None
                    and self._tg
                    and pq.queue.empty()
                ):
                    # Read the sensor in the background: the next pulse is not delayed, the
                    # ack waits for the read (bounded by read_drawer).
                    pq.sensing += 1
                    self.sensing_ids.add(job.event_id)
                    self._tg.create_task(
                        self._sense(pq, outcome), name=f"sense[{printer_id}:{job.event_id}]"
                    )
                else:
                    await self.on_outcome(outcome)
            finally:
                pq.busy = False
                if not self.pending():
                    self._idle.set()

    async def _sense(self, pq: PrinterQueue, outcome: Outcome) -> None:
        assert self.read_drawer is not None
        assert outcome.sent_at is not None
        try:
            is_open = await self.read_drawer(outcome.job.printer_id, outcome.sent_at)
            if is_open is not None:
                outcome = replace(outcome, drawer_open=is_open)
                self._record(outcome)
            await self.on_outcome(outcome)
        finally:
            pq.sensing -= 1
            self.sensing_ids.discard(outcome.job.event_id)
            if not self.pending():
                self._idle.set()

    def _record(self, outcome: Outcome) -> None:
        job = outcome.job
        try:
            self.ledger.finish(
                job.event_id,
                status=outcome.status.value,
                attempts=outcome.attempts,
                finished_at=self.clock(),
                sent_at=outcome.sent_at,
                latency_ms=outcome.latency_ms,
                detail=outcome.detail,
                drawer_open=outcome.drawer_open,
            )
        except LedgerError as exc:
            log.error("event %s %s but not recorded: %s", job.event_id, outcome.status.value, exc)

    async def _deliver(self, job: Job) -> Outcome:
        printer = self.printers[job.printer_id]
        kick = self.kick_for(printer)
        payload = kick.payload
        quiet = self._quiet[job.printer_id]
        attempts = 0
        last_error = "deadline passed while queued behind other events"
        while True:
            now = self.clock()
            timeout = attempt_timeout(self.settings.connect_timeout_s, now, job.deadline)
            if timeout is None:
                status = AckStatus.FAILED if attempts else AckStatus.EXPIRED
                return Outcome(job, status, attempts, detail=last_error)
            address = self.resolve(job.printer_id)
            if address is None:
                last_error = "printer address unknown (waiting for discovery to find it)"
            else:
                attempts += 1
                try:
                    self.ledger.mark_sending(job.event_id, attempts)
                except LedgerError as exc:
                    # Without the record a crash could resend it: never pulse unrecorded.
                    return Outcome(
                        job,
                        AckStatus.FAILED,
                        attempts - 1,
                        detail=f"not sent: ledger unwritable ({exc})",
                    )
                try:
                    async with self.queues[job.printer_id].lock:
                        sent = await printer_link.send(
                            address[0],
                            address[1],
                            payload,
                            connect_timeout=timeout,
                            write_timeout=self.settings.write_timeout_s,
                            confirm=self._confirm(printer),
                        )
                except printer_link.DeliveryUncertain as exc:
                    quiet.warning("printer %s: %s", job.printer_id, exc.reason)
                    return Outcome(
                        job,
                        AckStatus.FAILED,
                        attempts,
                        detail=(
                            f"delivery uncertain: {exc.reason}; not retried so the drawer "
                            "cannot open twice"
                        ),
                    )
                except PrinterUnreachable as exc:
                    with contextlib.suppress(LedgerError):
                        # Left 'sending': a restart then fails it rather than resend it.
                        self.ledger.mark_not_sent(job.event_id)
                    last_error = f"{exc.host}:{exc.port}: {exc.reason}"
                    quiet.warning("printer %s: %s", job.printer_id, last_error)
                else:
                    quiet.recovered("printer %s: reachable again", job.printer_id)
                    notes = [REALTIME_DETAIL if kick.realtime else "", sent.note]
                    return Outcome(
                        job,
                        AckStatus.OPENED,
                        attempts,
                        sent_at=sent.written_at,
                        realtime=kick.realtime,
                        detail="; ".join(n for n in notes if n),
                    )
            at = next_attempt_at(
                self.backoff, max(1, attempts), self.clock(), job.deadline, self.rng
            )
            if at is None:
                status = AckStatus.FAILED if attempts else AckStatus.EXPIRED
                return Outcome(job, status, attempts, detail=f"until the deadline: {last_error}")
            await asyncio.sleep(at - self.clock())

    def _confirm(self, printer: PrinterSettings) -> printer_link.Confirm | None:
        if not printer.confirm:
            return None
        requests = status_requests(printer.command_set)
        if printer.command_set is CommandSet.ESCPOS:
            return printer_link.Confirm(requests[0], 1)  # DLE EOT 1: one byte (§2.1)
        return printer_link.Confirm(requests[0], printer_link.read_asb)  # ESC ACK SOH (§2.5)

    def _configured_address(self, printer_id: str) -> Address | None:
        printer = self.printers[printer_id]
        return None if printer.host is None else (printer.host, printer.port)
