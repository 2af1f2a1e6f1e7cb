"""From one received MQTT message to a ledger entry, a PUBACK, a job and an ack."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace

from agent.core import kick as lifecycle
from agent.core.acks import Ack, AckStatus
from agent.core.admission import Refused, Ticket
from agent.core.errors import BrokerError, LedgerError, Redeliver
from agent.core.events import (
    MAX_PAYLOAD_BYTES,
    CashEvent,
    InvalidEvent,
    decode_json_object,
    event_id_hint,
    validate_event,
)
from agent.core.kick import Outcome
from agent.core.policy import Policy, Verdict, decide
from agent.core.settings import PrinterSettings, Settings
from agent.core.topics import Topics
from agent.io import signing
from agent.io.ledger import Ledger
from agent.io.mqtt_link import Incoming, MqttLink
from agent.service.admission import Admission, Duplicate, Queued

log = logging.getLogger(__name__)

ACK_QUEUE_SIZE = 10_000
# Acks awaiting their PUBACK at once (see AckPublisher). Small on purpose: past the point
# where the acks keep up, more in flight only takes CPU from the pulses. Bench core,
# sustained 2,200 ev/s, two runs each: window 16 made the pulses' p50 50 % later; window 4
# delivered every ack (one at a time: 8 % missing at the end), pulses' p50 +10-15 %.
ACK_WINDOW = 4

_VERDICT_STATUS = {
    Verdict.IGNORED: AckStatus.IGNORED,
    Verdict.UNMAPPED: AckStatus.UNMAPPED,
    Verdict.EXPIRED: AckStatus.EXPIRED,
}


class AckPublisher:
    """Publishes acks in order through a bounded queue; the ledger remembers unsent ones.

    Up to ACK_WINDOW acks are on their way at once: each waits a broker round trip for its
    PUBACK, and one at a time the acks fell seconds behind the pulses under load (bench
    core, sustained). They are still handed to the MQTT client in queue order, and MQTT
    keeps that order on the connection (3.1.1 §4.6, 5.0 §4.6).
    """

    def __init__(
        self,
        link: MqttLink,
        topics: Topics,
        ledger: Ledger,
        window: int = ACK_WINDOW,
        queue_size: int = ACK_QUEUE_SIZE,
    ) -> None:
        self.link = link
        self.topics = topics
        self.ledger = ledger
        self.queue: asyncio.Queue[Ack] = asyncio.Queue(maxsize=queue_size)
        # Set each time an ack leaves the queue: intake waits on it when the queue is full.
        self._taken = asyncio.Event()
        self.queued_ids: set[str] = set()
        self.published = 0
        self.most_in_flight = 0
        # The acks on their way to the broker, so flush() at shutdown waits for them:
        # cancelled before its PUBACK, one would stay unacked in the ledger and be sent a
        # second time after the restart (seen on RabbitMQ, whose PUBACK follows its disk write).
        self._in_flight: set[asyncio.Task[None]] = set()
        self._room = asyncio.Semaphore(window)
        self._sending = 0

    def put(self, ack: Ack) -> None:
        """Queue an ack; when the queue is full the ledger still has it for the resend."""
        try:
            self.queue.put_nowait(ack)
        except asyncio.QueueFull:
            log.warning("ack queue full; ack for %s waits for the next reconnect", ack.event_id)
            return
        if ack.event_id is not None:
            self.queued_ids.add(ack.event_id)

    async def run(self) -> None:
        """Publish queued acks forever; on broker loss, wait and resend from the ledger."""
        async with asyncio.TaskGroup() as tg:
            while True:
                ack = await self.queue.get()
                self._taken.set()
                await self._room.acquire()
                self._sending += 1
                self.most_in_flight = max(self.most_in_flight, self._sending)
                task = tg.create_task(self._send(ack), name=f"ack[{ack.event_id}]")
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)

    async def flush(self) -> None:
        """Finish the acks in flight and publish what is queued (at shutdown, under a timeout)."""
        while self._in_flight or not self.queue.empty():
            if self._in_flight:
                await asyncio.wait(set(self._in_flight))
            else:
                ack = self.queue.get_nowait()
                self._taken.set()
                await self._publish(ack)

    async def wait_room(self) -> None:
        """Return once the queue can take an ack: intake waits here before its next message.

        A flood (a POS publishing in a loop) then waits at the broker, unacknowledged QoS 1
        messages, instead of filling the queue: a `rejected` ack dropped from a full queue
        could never be resent, the ledger keeps no acked flag for a refusal.
        """
        while self.queue.full():
            self._taken.clear()
            await self._taken.wait()

    async def _send(self, ack: Ack) -> None:
        try:
            await self._publish(ack)
        finally:
            self._sending -= 1
            self._room.release()

    async def resend_unacked(self, skip: Collection[str] = ()) -> None:
        """After a (re)connect: queue acks for final events whose ack never reached the broker.

        Acks already queued, and events in `skip` (their ack is still coming), are not
        queued twice: one message, one ack.
        """
        try:
            rows = self.ledger.unacked()
        except LedgerError as exc:
            log.error("unsent acks not read, tried again at the next connect: %s", exc)
            return
        for row in rows:
            if row.event_id in self.queued_ids or row.event_id in skip:
                continue
            self.put(row.ack())

    async def _publish(self, ack: Ack) -> None:
        if ack.event_id is not None:
            self.queued_ids.discard(ack.event_id)
        try:
            await self.link.publish(self.topics.acks, ack.to_json())
        except BrokerError as exc:
            # Not lost: the ledger row stays acked=0 and resend_unacked() sends it later.
            log.debug("ack for %s not published: %s", ack.event_id, exc)
            return
        self.published += 1
        if (
            ack.event_id is not None
            and ack.status is not AckStatus.REJECTED
            and ack.status is not AckStatus.DUPLICATE
        ):
            try:
                self.ledger.mark_acked(ack.event_id)
            except LedgerError as exc:
                log.error("ack for %s sent but not recorded: %s", ack.event_id, exc)


class Reporter:
    """Every final status: counted, logged, and acked when the event came over MQTT."""

    def __init__(
        self,
        acks: AckPublisher,
        on_final: Callable[[str | None, AckStatus], None] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.acks = acks
        self.statuses: dict[str, int] = {}
        # Metrics hooks (issue 4): each final status, and each job's outcome.
        self._on_final = on_final
        self._on_outcome = on_outcome

    def ack(self, ack: Ack) -> None:
        """An ack decided at intake (rejected, duplicate, ignored, unmapped, expired)."""
        self.count(ack.status, ack.event_id)
        self.acks.put(ack)

    async def outcome(self, outcome: Outcome) -> None:
        """A job finished: count it, log it, publish its ack."""
        job = outcome.job
        if self._on_outcome is not None:
            self._on_outcome(outcome)
        self.count(outcome.status, job.event_id)
        log.info(
            "event %s %s",
            job.event_id,
            outcome.status.value,
            extra={
                "event_id": job.event_id,
                "printer_id": job.printer_id,
                "status": outcome.status.value,
                "attempts": outcome.attempts,
                "latency_ms": None if outcome.latency_ms is None else round(outcome.latency_ms, 2),
                "drawer_open": outcome.drawer_open,
                "source": job.source,
            },
        )
        if job.source == "mqtt":
            self.acks.put(
                Ack(
                    event_id=job.event_id,
                    status=outcome.status,
                    terminal_id=job.terminal_id,
                    printer_id=job.printer_id,
                    attempts=outcome.attempts,
                    latency_ms=outcome.latency_ms,
                    detail=outcome.detail,
                    drawer_open=outcome.drawer_open,
                )
            )

    def count(self, status: AckStatus, event_id: str | None) -> None:
        """Count one final status."""
        self.statuses[status.value] = self.statuses.get(status.value, 0) + 1
        if self._on_final is not None:
            self._on_final(event_id, status)


class Intake:
    """Validates, decides, records and dispatches each message, strictly in arrival order."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        admission: Admission,
        reporter: Reporter,
        link: MqttLink,
        keyring: signing.KeyRing | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.admission = admission
        self.reporter = reporter
        self.link = link
        self.keyring = keyring
        self.clock = clock
        self.printers: Mapping[str, PrinterSettings] = settings.printers
        self.policy = Policy(
            terminals=settings.terminals,
            open_on=settings.policy.open_on,
            sale_payment_methods=settings.policy.sale_payment_methods,
            max_age_s=settings.security.max_age_s,
            max_clock_skew_s=settings.security.max_clock_skew_s,
        )

    def update(self, printers: Mapping[str, PrinterSettings], terminals: Mapping[str, str]) -> None:
        """A mapping change: the next message is decided on the new tills and printers."""
        self.printers = printers
        self.policy = replace(self.policy, terminals=terminals)

    async def handle(self, msg: Incoming) -> None:
        """Handle one message; the PUBACK goes out once the ledger has what it needs."""
        await self.reporter.acks.wait_room()
        now = self.clock()
        try:
            ack = self._process(msg, now)
        except LedgerError as exc:
            # No PUBACK and no pulse: the broker keeps the message and sends it again
            # after the reconnect this triggers; /readyz reports the ledger meanwhile.
            log.error("ledger error, message left with the broker: %s", exc)
            raise Redeliver(str(exc)) from None
        self.link.ack(msg)
        if ack is not None:
            self.reporter.ack(ack)

    def _process(self, msg: Incoming, now: float) -> Ack | None:
        if msg.retain:
            return self._reject(
                msg, now, "retained message: a retained command would fire again on every reconnect"
            )
        if msg.qos == 0:
            return self._reject(msg, now, "QoS 0: events must be published with QoS 1")
        try:
            event = self._decode(msg.payload, now)
        except InvalidEvent as exc:
            return self._reject(msg, now, exc.reason, exc.event_id)
        except signing.SignatureError as exc:
            reason = f"signature: {exc.reason}" + (f" ({exc.detail})" if exc.detail else "")
            return self._reject(msg, now, reason, None)
        decision = decide(event, self.policy, now)
        base = Ack(
            event_id=event.event_id,
            status=AckStatus.REJECTED,
            terminal_id=event.terminal_id,
            printer_id=decision.printer_id,
        )
        if decision.verdict is Verdict.REJECTED:
            return self._reject(msg, now, decision.reason, event.event_id, event)
        if decision.verdict is Verdict.OPEN:
            assert decision.printer_id is not None
            printer = self.printers[decision.printer_id]
            admitted = self.admission.open(
                Ticket(
                    event_id=event.event_id,
                    type=event.type.value,
                    terminal_id=event.terminal_id,
                    printer_id=printer.id,
                    drawer=printer.drawer,
                    occurred_at=event.occurred_at,
                    received_at=now,
                    deadline=decision.deadline,
                )
            )
            if isinstance(admitted, Queued):
                return None
            if isinstance(admitted, Duplicate):
                return replace(base, status=AckStatus.DUPLICATE, detail=admitted.detail)
            assert isinstance(admitted, Refused)
            return self._reject(msg, now, admitted.reason, event.event_id, event)
        # Decided at once (ignored, unmapped, expired): recorded final, acked now.
        status = _VERDICT_STATUS[decision.verdict]
        existing = self.ledger.claim(
            event_id=event.event_id,
            type_=event.type.value,
            terminal_id=event.terminal_id,
            printer_id=decision.printer_id,
            occurred_at=event.occurred_at,
            received_at=now,
            deadline=decision.deadline,
            status=status.value,
            detail=decision.reason,
        )
        if existing is not None:
            seen = self.admission.known(event.event_id)
            assert seen is not None
            return replace(base, status=AckStatus.DUPLICATE, detail=seen.detail)
        step = lifecycle.next_step(
            lifecycle.received(decision.deadline), lifecycle.Claimed(status, decision.reason), now
        )
        assert isinstance(step.action, lifecycle.Finish)
        log.info(
            "event %s %s: %s",
            event.event_id,
            status.value,
            decision.reason,
            extra={"event_id": event.event_id, "status": status.value},
        )
        return replace(base, status=step.action.status, detail=step.action.detail)

    def _decode(self, payload: bytes, now: float) -> CashEvent:
        # Checked here too: a signed payload reaches the JWS parser before the JSON decoder.
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise InvalidEvent(f"payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
        if self.settings.security.require_signed:
            assert self.keyring is not None
            claims = signing.verify(payload, self.keyring, now=now)
            return validate_event(claims)
        if self.keyring and signing.looks_signed(payload):
            # Signed although not required: still verify, never trust an unchecked token.
            return validate_event(signing.verify(payload, self.keyring, now=now))
        return validate_event(decode_json_object(payload))

    def _reject(
        self,
        msg: Incoming,
        now: float,
        reason: str,
        event_id: str | None = None,
        event: CashEvent | None = None,
    ) -> Ack:
        if event_id is None and not self.settings.security.require_signed:
            event_id = event_id_hint(msg.payload)
        self.ledger.reject(event_id=event_id, reason=reason, size=len(msg.payload), received_at=now)
        log.warning(
            "message rejected: %s", reason, extra={"event_id": event_id, "status": "rejected"}
        )
        return Ack(
            event_id=event_id,
            status=AckStatus.REJECTED,
            detail=reason,
            terminal_id=event.terminal_id if event else None,
        )
