"""Retry schedule for printer attempts: capped exponential backoff with jitter (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delays grow from `base` by `factor` up to `cap`; each is jittered into [d/2, d]."""

    base: float = 0.05
    factor: float = 2.0
    cap: float = 1.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Delay after failed attempt number `attempt` (1-based)."""
        ceiling = min(self.cap, self.base * self.factor ** max(0, attempt - 1))
        # Equal jitter: spreads two agents hammering one printer, but never retries at once.
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def next_attempt_at(
    backoff: Backoff, attempt: int, now: float, deadline: float, rng: random.Random
) -> float | None:
    """When the next attempt may start, or None when it would start at or after the deadline."""
    at = now + backoff.delay(attempt, rng)
    return at if at < deadline else None


def attempt_timeout(connect_timeout: float, now: float, deadline: float) -> float | None:
    """Time allowed for one connect, never reaching past the deadline; None when none is left."""
    left = deadline - now
    if left <= 0:
        return None
    return min(connect_timeout, left)
