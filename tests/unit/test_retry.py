"""Retry schedule: capped exponential backoff with jitter, never past the deadline."""

import random

import pytest

from agent.core.ratelimit import PulseRateLimiter
from agent.core.retry import Backoff, attempt_timeout, next_attempt_at


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 0.025, 0.05), (2, 0.05, 0.1), (3, 0.1, 0.2), (5, 0.4, 0.8), (6, 0.5, 1.0), (50, 0.5, 1.0)],
)
def test_delays_grow_and_cap(attempt, low, high):
    rng = random.Random(7)
    delays = [Backoff().delay(attempt, rng) for _ in range(200)]
    assert min(delays) >= low
    assert max(delays) <= high
    assert len(set(delays)) > 100  # jittered


@pytest.mark.parametrize(
    ("now", "deadline", "expect_none"),
    [(0.0, 10.0, False), (9.99, 10.0, True), (10.0, 10.0, True), (11.0, 10.0, True)],
)
def test_next_attempt_never_at_or_past_deadline(now, deadline, expect_none):
    at = next_attempt_at(Backoff(), 1, now, deadline, random.Random(1))
    assert (at is None) is expect_none
    if at is not None:
        assert now < at < deadline


@pytest.mark.parametrize(
    ("connect", "now", "deadline", "expected"),
    [
        (1.0, 0.0, 10.0, 1.0),
        (1.0, 9.7, 10.0, 0.3),
        (1.0, 10.0, 10.0, None),
        (1.0, 12.0, 10.0, None),
    ],
)
def test_attempt_timeout_is_clipped_to_the_deadline(connect, now, deadline, expected):
    result = attempt_timeout(connect, now, deadline)
    assert result == (pytest.approx(expected) if expected is not None else None)


def test_rate_limiter_sliding_minute():
    limiter = PulseRateLimiter(3)
    assert [limiter.allow("front/1", t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert limiter.allow("back/1", 3)  # per drawer
    assert not limiter.allow("front/1", 59.9)
    assert limiter.allow("front/1", 60.0)  # the pulse at t=0 left the window


def test_rate_limiter_zero_disables():
    limiter = PulseRateLimiter(0)
    assert all(limiter.allow("d", float(t)) for t in range(1000))
