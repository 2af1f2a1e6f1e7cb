"""The life of one cash event, from receipt to its final status, as one transition table.

Modelled on h11's `_state.py`: the states and the inputs that move them are written down
once, in `TRANSITIONS`, and `next_step(track, input, now)` is the only code that decides
what happens next. The intake, the dispatcher and restart recovery feed it what they saw
and carry out the action it returns; none of them compares state strings.

The two promises live here:
- never twice: SENDING (the kick's bytes may reach the printer) is left for a retry only
  on proof that the printer did not read them (a reset before any reply, PROTOCOLS §3);
  after a delivery, an uncertain write or a restart in SENDING, no write is ever started;
- never late: a write is started only before the deadline (`occurred_at + max_age_s`),
  checked again once the connection is up, since a connect can take most of the time left.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace

from agent.core.acks import AckStatus


class Phase(enum.StrEnum):
    """Where one event is; PENDING, SENDING and FINAL are what the ledger stores."""

    RECEIVED = "received"  # decoded and decided, not yet in the ledger
    PENDING = "pending"  # claimed: waiting in its printer's lane (or for a retry)
    CONNECTING = "connecting"  # an attempt is connecting; nothing written (stored as pending)
    SENDING = "sending"  # the kick is being written: from here on it is never resent
    FINAL = "final"  # has its status; an ack is owed until the broker took it


STORED = {Phase.PENDING: "pending", Phase.CONNECTING: "pending", Phase.SENDING: "sending"}


class KickError(Exception):
    """An input that cannot happen in this phase: a bug in the caller, never ignored."""


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


@dataclass(frozen=True)
class Track:
    """One event's position in the table."""

    phase: Phase
    deadline: float
    attempts: int = 0
    status: AckStatus | None = None
    detail: str = ""
    last_error: str = "deadline passed while queued behind other events"


def received(deadline: float) -> Track:
    """A decided event before its claim."""
    return Track(Phase.RECEIVED, deadline)


def stored(state: str, status: str | None, deadline: float, attempts: int) -> Track:
    """The track of a ledger row (its `state` column is read nowhere else)."""
    phase = Phase(state)
    if phase is Phase.FINAL:
        return Track(phase, deadline, attempts, AckStatus(status or "failed"))
    return Track(phase, deadline, attempts)


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Claimed:
    """The ledger now holds the event; `status` when the policy decided it at once."""

    status: AckStatus | None = None
    detail: str = ""


@dataclass(frozen=True)
class Known:
    """The ledger already had this event_id (a redelivery or a POS retry)."""

    existing: Track


@dataclass(frozen=True)
class Due:
    """The event's turn in its printer's lane came, or its retry time did."""


@dataclass(frozen=True)
class NoAddress:
    """The printer's address is unknown (discovery has not found it)."""

    reason: str
    retry_at: float | None


@dataclass(frozen=True)
class NotConnected:
    """The connection failed: refused, timed out, closed before the write. Nothing sent."""

    reason: str
    retry_at: float | None


@dataclass(frozen=True)
class Connected:
    """The connection is up; the kick is about to be written."""


@dataclass(frozen=True)
class Offline:
    """The status read before the kick says the printer would only buffer it."""

    reason: str


@dataclass(frozen=True)
class NotRecorded:
    """The ledger could not record SENDING: a crash could then resend, so nothing is sent."""

    reason: str


@dataclass(frozen=True)
class Delivered:
    """The printer took the kick."""

    note: str = ""


@dataclass(frozen=True)
class NotRead:
    """Reset before any reply: the printer's stack discarded the kick unread (PROTOCOLS §3)."""

    reason: str
    retry_at: float | None


@dataclass(frozen=True)
class Uncertain:
    """The write did not complete: the kick may still be read. Never retried."""

    reason: str


@dataclass(frozen=True)
class Restarted:
    """A new run found this unfinished row; `printer_known` when it is still configured."""

    printer_known: bool


Input = (
    Claimed
    | Known
    | Due
    | NoAddress
    | NotConnected
    | Connected
    | Offline
    | NotRecorded
    | Delivered
    | NotRead
    | Uncertain
    | Restarted
)

# ---------------------------------------------------------------- actions


@dataclass(frozen=True)
class Queue:
    """Put the job in its printer's lane."""


@dataclass(frozen=True)
class Connect:
    """Connect to the printer (attempt number `attempt`); write nothing yet."""

    attempt: int


@dataclass(frozen=True)
class Write:
    """Record SENDING durably, then write the kick."""


@dataclass(frozen=True)
class RetryAt:
    """Wait until `at`, then feed Due (record PENDING again if SENDING was recorded)."""

    at: float


@dataclass(frozen=True)
class Finish:
    """Record the final status and ack it."""

    status: AckStatus
    detail: str


@dataclass(frozen=True)
class Answer:
    """Ack this message with `status` (a duplicate) without touching the first event."""

    status: AckStatus
    detail: str


Action = Queue | Connect | Write | RetryAt | Finish | Answer


@dataclass(frozen=True)
class Step:
    """The next track and what the caller must do."""

    track: Track
    action: Action


# ---------------------------------------------------------------- rules

INTERRUPTED = (
    "interrupted: the agent stopped while writing to the printer; the pulse may or may not "
    "have happened and is not resent"
)
NOT_RETRIED = "not retried so the drawer cannot open twice"


def _final(track: Track, status: AckStatus, detail: str) -> Step:
    return Step(
        replace(track, phase=Phase.FINAL, status=status, detail=detail), Finish(status, detail)
    )


def _give_up(track: Track, detail: str) -> Step:
    # No attempt reached the printer: the event was never tried, it expired.
    status = AckStatus.FAILED if track.attempts else AckStatus.EXPIRED
    return _final(track, status, detail)


def _retry(track: Track, reason: str, retry_at: float | None) -> Step:
    if retry_at is None or retry_at >= track.deadline:
        return _give_up(replace(track, last_error=reason), f"until the deadline: {reason}")
    return Step(replace(track, phase=Phase.PENDING, last_error=reason), RetryAt(retry_at))


def _claimed(track: Track, i: Claimed, now: float) -> Step:
    if i.status is not None:
        return _final(track, i.status, i.detail)
    return Step(replace(track, phase=Phase.PENDING), Queue())


def _known(track: Track, i: Known, now: float) -> Step:
    first = i.existing.status.value if i.existing.status else "in progress"
    return Step(track, Answer(AckStatus.DUPLICATE, f"already handled: {first}"))


def _due(track: Track, i: Due, now: float) -> Step:
    if now >= track.deadline:
        return _give_up(track, track.last_error)
    attempt = track.attempts + 1
    return Step(replace(track, phase=Phase.CONNECTING, attempts=attempt), Connect(attempt))


def _no_address(track: Track, i: NoAddress, now: float) -> Step:
    # Not an attempt: nothing was tried, so the count goes back.
    return _retry(replace(track, attempts=track.attempts - 1), i.reason, i.retry_at)


def _not_connected(track: Track, i: NotConnected, now: float) -> Step:
    return _retry(track, i.reason, i.retry_at)


def _connected(track: Track, i: Connected, now: float) -> Step:
    if now >= track.deadline:
        return _final(track, AckStatus.FAILED, "deadline passed while connecting; nothing sent")
    return Step(replace(track, phase=Phase.SENDING), Write())


def _offline(track: Track, i: Offline, now: float) -> Step:
    return _final(track, AckStatus.FAILED, f"not sent: {i.reason}")


def _not_recorded(track: Track, i: NotRecorded, now: float) -> Step:
    return _final(
        replace(track, attempts=track.attempts - 1),
        AckStatus.FAILED,
        f"not sent: ledger unwritable ({i.reason})",
    )


def _delivered(track: Track, i: Delivered, now: float) -> Step:
    return _final(track, AckStatus.OPENED, i.note)


def _not_read(track: Track, i: NotRead, now: float) -> Step:
    return _retry(track, i.reason, i.retry_at)


def _uncertain(track: Track, i: Uncertain, now: float) -> Step:
    return _final(track, AckStatus.FAILED, f"delivery uncertain: {i.reason}; {NOT_RETRIED}")


def _restarted_pending(track: Track, i: Restarted, now: float) -> Step:
    if not i.printer_known:
        return _final(track, AckStatus.FAILED, "its printer is no longer configured")
    if track.deadline <= now:
        return _final(track, AckStatus.EXPIRED, "deadline passed while the agent was stopped")
    return Step(track, Queue())


def _restarted_sending(track: Track, i: Restarted, now: float) -> Step:
    return _final(track, AckStatus.FAILED, INTERRUPTED)


# The whole lifecycle. A (phase, input) pair that is not here is a KickError.
TRANSITIONS: dict[tuple[Phase, type], Callable[..., Step]] = {
    (Phase.RECEIVED, Claimed): _claimed,
    (Phase.RECEIVED, Known): _known,
    (Phase.PENDING, Due): _due,
    (Phase.PENDING, Restarted): _restarted_pending,
    (Phase.CONNECTING, NoAddress): _no_address,
    (Phase.CONNECTING, NotConnected): _not_connected,
    (Phase.CONNECTING, Connected): _connected,
    (Phase.CONNECTING, Offline): _offline,
    (Phase.CONNECTING, NotRecorded): _not_recorded,
    (Phase.SENDING, Delivered): _delivered,
    (Phase.SENDING, NotRead): _not_read,
    (Phase.SENDING, Uncertain): _uncertain,
    (Phase.SENDING, Restarted): _restarted_sending,
}


def next_step(track: Track, event: Input, now: float) -> Step:
    """The next track and action for `event` arriving in `track`'s phase at `now`."""
    rule = TRANSITIONS.get((track.phase, type(event)))
    if rule is None:
        raise KickError(f"{type(event).__name__} cannot happen in phase {track.phase}")
    return rule(track, event, now)


def may_resend(track: Track) -> bool:
    """True while a later write could still be started for this event."""
    return track.phase in (Phase.RECEIVED, Phase.PENDING, Phase.CONNECTING)


def ack_owed(track: Track) -> bool:
    """Final events are acked (resent after a reconnect until the broker took the ack)."""
    return track.phase is Phase.FINAL
