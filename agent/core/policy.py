"""Which drawer, if any, a cash event opens, and until when (pure)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from agent.core.events import CashEvent, EventType


class Verdict(enum.StrEnum):
    """What the policy says before any byte is sent."""

    OPEN = "open"
    IGNORED = "ignored"
    UNMAPPED = "unmapped"
    EXPIRED = "expired"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Decision:
    """A verdict with the printer to pulse (for OPEN) and a reason for everything else."""

    verdict: Verdict
    printer_id: str | None = None
    deadline: float = 0.0
    reason: str = ""


@dataclass(frozen=True)
class Policy:
    """The policy's inputs, taken from settings once."""

    terminals: Mapping[str, str]
    open_on: frozenset[EventType]
    sale_payment_methods: frozenset[str] | None
    max_age_s: float
    max_clock_skew_s: float


def deadline(occurred_at: float, received_at: float, max_age_s: float) -> float:
    """The last instant a pulse may start for this event.

    A clock ahead of ours must not buy an event extra life, so the earlier of the two
    instants counts.
    """
    return min(occurred_at, received_at) + max_age_s


def decide(event: CashEvent, policy: Policy, now: float) -> Decision:
    """Decide what to do with a validated event received at `now`."""
    printer_id = policy.terminals.get(event.terminal_id)
    if event.occurred_at > now + policy.max_clock_skew_s:
        ahead = event.occurred_at - now
        return Decision(
            Verdict.REJECTED,
            printer_id,
            reason=f"occurred_at is {ahead:.1f} s in the future (clock skew limit "
            f"{policy.max_clock_skew_s:g} s)",
        )
    until = deadline(event.occurred_at, now, policy.max_age_s)
    if now >= until:
        return Decision(
            Verdict.EXPIRED,
            printer_id,
            until,
            reason=f"event is {now - event.occurred_at:.1f} s old; max_age_s is "
            f"{policy.max_age_s:g}",
        )
    if event.type not in policy.open_on:
        return Decision(
            Verdict.IGNORED,
            printer_id,
            until,
            reason=f"policy.open_on does not include {event.type.value}",
        )
    if (
        event.type is EventType.SALE
        and policy.sale_payment_methods is not None
        and event.payment_method not in policy.sale_payment_methods
    ):
        return Decision(
            Verdict.IGNORED,
            printer_id,
            until,
            reason=f"payment_method {event.payment_method!r} does not open the drawer on a sale",
        )
    if printer_id is None:
        return Decision(
            Verdict.UNMAPPED,
            None,
            until,
            reason=f"terminal {event.terminal_id!r} is not in [terminals]",
        )
    return Decision(Verdict.OPEN, printer_id, until)
