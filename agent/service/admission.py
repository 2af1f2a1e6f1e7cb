"""The one admission path: a cash event, an HTTP test kick and a CLI test kick all come here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from agent.core import kick as lifecycle
from agent.core.admission import Refused, Ticket, admit
from agent.core.kick import Job
from agent.core.ratelimit import PulseRateLimiter
from agent.core.settings import PrinterSettings
from agent.io.ledger import Ledger


class Lane(Protocol):
    """Where admitted jobs wait for their printer (the Dispatcher)."""

    def has_room(self, printer_id: str) -> bool:
        """True when the printer's lane can take one more job."""
        ...

    def warm(self, printer_id: str) -> None:
        """Start connecting for the job about to be claimed (or do nothing)."""
        ...

    def cool(self, printer_id: str) -> None:
        """The job `warm` was for will not be queued."""
        ...

    def submit(self, job: Job, printer: PrinterSettings | None = None) -> None:
        """Queue a job (after has_room, with no await in between); `printer` overrides the
        saved settings for this one job."""
        ...


@dataclass(frozen=True)
class Queued:
    """Claimed in the ledger and in its printer's lane."""

    job: Job


@dataclass(frozen=True)
class Duplicate:
    """The event_id is known; `detail` names what became of the first one."""

    detail: str


Admitted = Queued | Refused | Duplicate


class Admission:
    """Known event? → room in the lane → rate limit → claim → queue. Raises LedgerError."""

    def __init__(self, ledger: Ledger, lane: Lane, limiter: PulseRateLimiter) -> None:
        self.ledger = ledger
        self.lane = lane
        self.limiter = limiter

    def known(self, event_id: str) -> Duplicate | None:
        """The duplicate answer when the ledger already holds `event_id`."""
        row = self.ledger.get(event_id)
        if row is None:
            return None
        return self._duplicate(row.track())

    def open(self, ticket: Ticket, printer: PrinterSettings | None = None) -> Admitted:
        """Admit one pulse request; a LedgerError leaves nothing claimed and nothing queued."""
        seen = self.known(ticket.event_id)
        if seen is not None:
            return seen
        room = self.lane.has_room(ticket.printer_id)
        refused = admit(ticket, has_room=room, limiter=self.limiter)
        if refused is not None:
            return refused
        # The printer's SYN leaves now and its handshake runs while the claim commits;
        # nothing is written to the printer before the kick table says so.
        self.lane.warm(ticket.printer_id)
        try:
            existing = self.ledger.claim(
                event_id=ticket.event_id,
                type_=ticket.type,
                terminal_id=ticket.terminal_id,
                printer_id=ticket.printer_id,
                occurred_at=ticket.occurred_at,
                received_at=ticket.received_at,
                deadline=ticket.deadline,
                detail=ticket.detail,
                source=ticket.source,
            )
        except BaseException:
            self.lane.cool(ticket.printer_id)
            raise
        if existing is not None:
            self.lane.cool(ticket.printer_id)
            return self._duplicate(existing.track())
        step = lifecycle.next_step(
            lifecycle.received(ticket.deadline), lifecycle.Claimed(), ticket.received_at
        )
        assert isinstance(step.action, lifecycle.Queue)
        job = ticket.job()
        self.lane.submit(job, printer)
        return Queued(job)

    def _duplicate(self, existing: lifecycle.Track) -> Duplicate:
        step = lifecycle.next_step(
            lifecycle.received(existing.deadline), lifecycle.Known(existing), 0.0
        )
        assert isinstance(step.action, lifecycle.Answer)
        return Duplicate(step.action.detail)
