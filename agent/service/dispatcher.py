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
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace

from agent.core import kick as lifecycle
from agent.core import precheck
from agent.core.acks import AckStatus
from agent.core.commands import CommandSet, status_requests
from agent.core.errors import LedgerError, PrinterUnreachable
from agent.core.health import Kick, choose_kick
from agent.core.kick import Job, Outcome, Phase, Track
from agent.core.retry import Backoff, attempt_timeout, next_attempt_at
from agent.core.settings import DispatchSettings, PrinterSettings
from agent.io import printer_link
from agent.io.device_link import DeviceLink, DeviceLinks, DeviceSession
from agent.io.ledger import Ledger
from agent.io.logs import QuietLog

log = logging.getLogger(__name__)

Address = tuple[str, int]
REALTIME_DETAIL = "real-time pulse: the last probe saw the printer offline or out of paper"
# How long an offline ESC/POS printer gets to name its cause (DLE EOT 2): a clone that
# answers DLE EOT 1 only must not hold the refusal up for long.
CAUSE_TIMEOUT_S = 0.2


class Locks:
    """One lock per printer, held by whoever talks to it (pulses, health probes, discovery)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def __getitem__(self, printer_id: str) -> asyncio.Lock:
        return self._locks.setdefault(printer_id, asyncio.Lock())


@dataclass
class PrinterQueue:
    """A printer's queue of jobs, and what its worker is doing."""

    # Each job with the printer's settings when it was queued: a mapping change applies to
    # the next event, and what is queued finishes on the printer it was queued for.
    queue: asyncio.Queue[tuple[Job, PrinterSettings]]
    busy: bool = False
    sensing: int = 0


class Dispatcher:
    """Owns a worker per printer; `run()` is a long-lived task of the agent's TaskGroup.

    Each job is walked through the kick table (`agent.core.kick`): the worker only feeds it
    what the printer, the ledger and the clock said, and does what it answers.
    """

    def __init__(
        self,
        printers: Mapping[str, PrinterSettings],
        ledger: Ledger,
        settings: DispatchSettings,
        on_outcome: Callable[[Outcome], Awaitable[None]],
        *,
        locks: Locks | None = None,
        resolve: Callable[[str], Address | None] | None = None,
        kick_for: Callable[[PrinterSettings], Kick] | None = None,
        read_drawer: Callable[[str, float], Awaitable[bool | None]] | None = None,
        devices: DeviceLinks | None = None,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.printers = dict(printers)
        self.ledger = ledger
        self.settings = settings
        self.on_outcome = on_outcome
        self.locks = locks or Locks()
        self.resolve = resolve or self._configured_address
        # Closed loop (issue 4): the prober picks the pulse form and reads the drawer sensor.
        self.kick_for = kick_for or (lambda p: choose_kick(p, None))
        self.read_drawer = read_drawer
        # Printers on a character device (`device = ...`), shared with the prober.
        self.devices = DeviceLinks() if devices is None else devices
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self.clock = clock
        self._tg: asyncio.TaskGroup | None = None
        # Final in the ledger but their ack waits for the sensor read: not to be resent.
        self.sensing_ids: set[str] = set()
        self.queues: dict[str, PrinterQueue] = {}
        self._quiet: dict[str, QuietLog] = {}
        for pid in printers:
            self._add_lane(pid)
        self._idle = asyncio.Event()
        # SYNs sent for the next job of an idle lane before its claim commits (warm()).
        self._early: dict[str, printer_link.Early] = {}
        self._idle.set()

    def has_room(self, printer_id: str) -> bool:
        """True when the printer's queue can take one more job."""
        pq = self.queues.get(printer_id)
        return printer_id in self.printers and pq is not None and not pq.queue.full()

    def submit(self, job: Job, printer: PrinterSettings | None = None) -> None:
        """Queue a job; the caller checked has_room() with no await in between.

        The job keeps the printer's settings of now (or `printer`, a test variant).
        """
        self._idle.clear()
        snapshot = printer or self.printers[job.printer_id]
        self.queues[job.printer_id].queue.put_nowait((job, snapshot))

    def warm(self, printer_id: str) -> None:
        """Send the SYN for the next job now, before its claim commits (issue 12, item 2).

        Only for an idle lane of a LAN printer whose lock nobody holds: a single-session
        NIC (PROTOCOLS §3) must never see this beside another connection. With the
        pre-kick check on, its status request goes out as soon as the handshake ends, so
        the reply travels while the claim commits; it prints nothing and never pulses
        (PROTOCOLS §2.1, §2.5). The kick is written only when the kick table says Write,
        after 'sending' is durable.
        """
        pq = self.queues.get(printer_id)
        printer = self.printers.get(printer_id)
        if (
            pq is None
            or printer is None
            or pq.busy
            or pq.sensing
            or not pq.queue.empty()
            or printer_id in self._early
            or self.locks[printer_id].locked()
            or self.devices.for_printer(printer) is not None
        ):
            return
        address = self._address(printer)
        if address is not None:
            early = printer_link.Early.start(*address, request=_early_request(printer))
            if early is not None:
                self._early[printer_id] = early

    def cool(self, printer_id: str) -> None:
        """The job `warm` was for will not come (a duplicate, a ledger error): close it."""
        early = self._early.pop(printer_id, None)
        if early is not None:
            early.close()

    def _address(self, printer: PrinterSettings) -> Address | None:
        # A printer followed by identity is wherever discovery last saw it; one with a
        # fixed host is where it was when the job was queued.
        if printer.host is not None and printer.match is None:
            return (printer.host, printer.port)
        return self.resolve(printer.id)

    def update(self, printers: Mapping[str, PrinterSettings]) -> None:
        """A mapping change: new printers get a lane at once; removed ones finish their queue."""
        self.printers = dict(printers)
        for pid in printers:
            if pid not in self.queues:
                self._add_lane(pid)
                if self._tg is not None:
                    self._tg.create_task(self._worker(pid), name=f"dispatch[{pid}]")

    def _add_lane(self, printer_id: str) -> None:
        self.queues[printer_id] = PrinterQueue(asyncio.Queue(maxsize=self.settings.queue_size))
        self._quiet[printer_id] = QuietLog(log)

    def queued(self, printer_id: str) -> int:
        """Jobs waiting in one printer's lane."""
        pq = self.queues.get(printer_id)
        return 0 if pq is None else pq.queue.qsize()

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
        try:
            await self._run()
        finally:
            for pid in list(self._early):
                self.cool(pid)

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            for pid in list(self.queues):
                tg.create_task(self._worker(pid), name=f"dispatch[{pid}]")
            # Stay open with no worker: an agent started with no printer (a fresh install,
            # set up from the console) or whose last printer was removed must still take
            # the next one added live; a TaskGroup with nothing left to await is finished.
            await asyncio.get_running_loop().create_future()

    async def _worker(self, printer_id: str) -> None:
        pq = self.queues[printer_id]
        while True:
            job, printer = await pq.queue.get()
            pq.busy = True
            try:
                outcome = await self._deliver(job, printer)
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

    async def _deliver(self, job: Job, printer: PrinterSettings) -> Outcome:
        """Walk one job through the kick table until it is final."""
        kick = self.kick_for(printer)
        step = lifecycle.next_step(
            Track(Phase.PENDING, job.deadline), lifecycle.Due(), self.clock()
        )
        sent_at: float | None = None
        realtime = False
        while True:
            track, action = step.track, step.action
            if isinstance(action, lifecycle.Finish):
                opened = action.status is AckStatus.OPENED
                return Outcome(
                    job,
                    action.status,
                    track.attempts,
                    sent_at=sent_at if opened else None,
                    detail=action.detail,
                    realtime=opened and realtime,
                )
            if isinstance(action, lifecycle.RetryAt):
                await asyncio.sleep(max(0.0, action.at - self.clock()))
                step = lifecycle.next_step(track, lifecycle.Due(), self.clock())
            elif isinstance(action, lifecycle.Connect):
                step, sent_at, realtime = await self._attempt(job, printer, kick, track)
            else:  # pragma: no cover - the table gives a worker no other action
                raise lifecycle.KickError(f"unexpected action {action!r}")

    async def _attempt(
        self, job: Job, printer: PrinterSettings, kick: Kick, track: Track
    ) -> tuple[lifecycle.Step, float | None, bool]:
        """One attempt: connect, check status, record 'sending', write; the table's answer.

        Returns the step, when the kick was written, and whether it was the real-time form.
        """
        quiet = self._quiet[job.printer_id]

        def then(event: lifecycle.Input, on: Track = track) -> lifecycle.Step:
            return lifecycle.next_step(on, event, self.clock())

        # A printer on a character device is opened by its path.
        device = self.devices.for_printer(printer)
        address = None if device is not None else self._address(printer)
        early = self._early.pop(job.printer_id, None)
        if early is not None and (
            address is None or track.attempts != 1 or early.request != _early_request(printer)
        ):
            # Started for a first attempt on the LAN only, with this job's pre-check: a
            # status reply this attempt would not read must never pass for the confirm's.
            early.close()
            early = None
        if device is None and address is None:
            reason = "printer address unknown (waiting for discovery to find it)"
            return then(lifecycle.NoAddress(reason, self._retry_at(track))), None, False
        timeout = attempt_timeout(self.settings.connect_timeout_s, self.clock(), job.deadline)
        if timeout is None:
            if early is not None:
                early.close()
            return then(lifecycle.Connected()), None, False  # the table finishes it: no time left
        write_timeout = self.settings.write_timeout_s
        opener: AbstractAsyncContextManager[printer_link.Session | DeviceSession]
        if device is not None:
            opener = device.connect(connect_timeout=timeout, write_timeout=write_timeout)
        else:
            assert address is not None
            opener = printer_link.connect(
                address[0],
                address[1],
                connect_timeout=timeout,
                write_timeout=write_timeout,
                early=early,
            )
        decision: precheck.Decision | None = None
        payload, realtime = kick.payload, kick.realtime
        try:
            async with self.locks[job.printer_id], opener as session:
                if printer.precheck:
                    # Issue 9: read the real-time status on this connection first; an offline
                    # printer would keep a buffered kick and fire it late (agent.core.precheck).
                    decision = await self._precheck(session, printer)
                    if decision.verdict is precheck.Verdict.NO_REPLY:
                        reason = f"{_where(device, address)}: {decision.detail()}"
                        quiet.warning("printer %s: %s", job.printer_id, reason)
                        return (
                            then(lifecycle.NotConnected(reason, self._retry_at(track))),
                            None,
                            False,
                        )
                    if decision.verdict is precheck.Verdict.REFUSE:
                        quiet.warning("printer %s: %s", job.printer_id, decision.detail())
                        return then(lifecycle.Offline(decision.detail())), None, False
                    payload = precheck.kick_bytes(
                        decision,
                        printer.command_set,
                        printer.drawer,
                        printer.pulse_on_ms,
                        printer.pulse_off_ms,
                    )
                    realtime = decision.verdict is precheck.Verdict.REALTIME
                step = then(lifecycle.Connected())
                if not isinstance(step.action, lifecycle.Write):
                    return step, None, False  # the deadline passed while connecting
                try:
                    # Without the record a crash could resend it: never pulse unrecorded.
                    self.ledger.mark_sending(job.event_id, track.attempts)
                except LedgerError as exc:
                    return then(lifecycle.NotRecorded(str(exc))), None, False
                try:
                    sent = await session.kick(payload, self._confirm(printer))
                except printer_link.DeliveryUncertain as exc:
                    quiet.warning("printer %s: %s", job.printer_id, exc.reason)
                    return then(lifecycle.Uncertain(exc.reason), step.track), None, False
                except PrinterUnreachable as exc:
                    reason = f"{exc.where}: {exc.reason}"
                    quiet.warning("printer %s: %s", job.printer_id, reason)
                    with contextlib.suppress(LedgerError):
                        # The printer never read it: back to 'pending', so a restart may
                        # resume it (left 'sending', a restart fails it rather than resend).
                        self.ledger.mark_not_sent(job.event_id)
                    retry_at = self._retry_at(step.track)
                    return then(lifecycle.NotRead(reason, retry_at), step.track), None, False
        except PrinterUnreachable as exc:
            reason = f"{exc.where}: {exc.reason}"
            quiet.warning("printer %s: %s", job.printer_id, reason)
            return then(lifecycle.NotConnected(reason, self._retry_at(track))), None, False
        quiet.recovered("printer %s: reachable again", job.printer_id)
        if sent.confirmed:
            # Checked with or without the pre-check: the confirm reply is the last word.
            sent_as = decision or precheck.Decision(
                precheck.Verdict.REALTIME if realtime else precheck.Verdict.PROCEED
            )
            check = precheck.check_confirm(sent_as, printer.command_set, sent.reply)
            if check.result is precheck.AfterKick.HELD:
                # The ack must not claim a clean opening: the kick may fire when the cover
                # closes (issue 9). "Delivery uncertain", never retried.
                quiet.warning("printer %s: %s", job.printer_id, check.detail)
                return then(lifecycle.Uncertain(check.detail), step.track), None, False
        notes = [
            decision.detail() if decision is not None and realtime else "",
            REALTIME_DETAIL if decision is None and realtime else "",
            sent.note,
        ]
        delivered = lifecycle.Delivered("; ".join(n for n in notes if n))
        return then(delivered, step.track), sent.written_at, realtime

    async def _precheck(
        self, session: printer_link.Session | DeviceSession, printer: PrinterSettings
    ) -> precheck.Decision:
        """The pre-kick status round trip (a second one only for an offline ESC/POS cause)."""
        cs = printer.command_set
        timeout = self.settings.write_timeout_s
        reply_size: int | printer_link.ReadReply = (
            1 if cs is CommandSet.ESCPOS else printer_link.read_asb
        )
        reply = await session.status(
            printer_link.Precheck(precheck.request(cs), reply_size, timeout)
        )
        if precheck.needs_cause(cs, reply):
            assert reply is not None
            cause = await session.status(
                printer_link.Precheck(precheck.CAUSE_REQUEST, 1, min(timeout, CAUSE_TIMEOUT_S))
            )
            reply += cause or b""
        return precheck.decide_reply(cs, reply, realtime_allowed=printer.realtime_pulse)

    def _retry_at(self, track: Track) -> float | None:
        return next_attempt_at(
            self.backoff, max(1, track.attempts), self.clock(), track.deadline, self.rng
        )

    def _confirm(self, printer: PrinterSettings) -> printer_link.Confirm | None:
        if not printer.confirm:
            return None
        requests = status_requests(printer.command_set)
        if printer.command_set is CommandSet.ESCPOS:
            return printer_link.Confirm(requests[0], 1)  # DLE EOT 1: one byte (§2.1)
        return printer_link.Confirm(requests[0], printer_link.read_asb)  # ESC ACK SOH (§2.5)

    def _configured_address(self, printer_id: str) -> Address | None:
        printer = self.printers.get(printer_id)
        return None if printer is None or printer.host is None else (printer.host, printer.port)


def _early_request(printer: PrinterSettings) -> bytes:
    """What an early connection may send before the claim commits: the pre-check's request."""
    return precheck.request(printer.command_set) if printer.precheck else b""


def _where(device: DeviceLink | None, address: Address | None) -> str:
    if device is not None:
        return device.path
    assert address is not None
    return f"{address[0]}:{address[1]}"
