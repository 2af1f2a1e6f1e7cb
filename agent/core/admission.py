"""Who may ask for a pulse now: the one admission rule for cash events, HTTP and CLI kicks."""

from __future__ import annotations

from dataclasses import dataclass

from agent.core.kick import Job
from agent.core.ratelimit import PulseRateLimiter


@dataclass(frozen=True)
class Ticket:
    """A request for one pulse, whatever it came from (`source`: mqtt, manual, cli)."""

    event_id: str
    type: str
    terminal_id: str | None
    printer_id: str
    drawer: int
    occurred_at: float
    received_at: float
    deadline: float
    source: str = "mqtt"
    detail: str = ""

    @property
    def drawer_key(self) -> str:
        """The rate limit's key: one drawer of one printer."""
        return drawer_key(self.printer_id, self.drawer)

    def job(self) -> Job:
        """The job the printer's lane runs once the ticket is claimed."""
        return Job(
            event_id=self.event_id,
            printer_id=self.printer_id,
            terminal_id=self.terminal_id,
            received_at=self.received_at,
            deadline=self.deadline,
            source=self.source,
        )


def drawer_key(printer_id: str, drawer: int) -> str:
    """`front/1`: built here only."""
    return f"{printer_id}/{drawer}"


@dataclass(frozen=True)
class Refused:
    """Not admitted; `code` is the machine-readable cause (queue_full, rate_limited)."""

    code: str
    reason: str


def admit(ticket: Ticket, *, has_room: bool, limiter: PulseRateLimiter) -> Refused | None:
    """Room in the printer's lane, then the drawer's rate limit (counted only when admitted)."""
    if not has_room:
        return Refused(
            "queue_full", f"queue_full: printer {ticket.printer_id} has too many pending pulses"
        )
    if not limiter.allow(ticket.drawer_key, ticket.received_at):
        return Refused(
            "rate_limited",
            f"rate_limited: more than {limiter.per_minute} pulses a minute for drawer "
            f"{ticket.drawer_key}",
        )
    return None
