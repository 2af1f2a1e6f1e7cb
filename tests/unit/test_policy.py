"""Policy and deadline math."""

import pytest

from agent.core.events import CashEvent, EventType
from agent.core.policy import Policy, Verdict, deadline, decide

NOW = 1_800_000_000.0
ALL = frozenset(EventType)
POLICY = Policy(
    terminals={"T1": "front", "T2": "front", "T3": "back"},
    open_on=ALL,
    sale_payment_methods=None,
    max_age_s=30.0,
    max_clock_skew_s=5.0,
)


def event(type_="sale", terminal="T1", age=0.0, method=None):
    return CashEvent("e", EventType(type_), terminal, NOW - age, payment_method=method)


@pytest.mark.parametrize(
    ("ev", "policy", "verdict", "printer"),
    [
        (event(), POLICY, Verdict.OPEN, "front"),
        (event("refund", "T3"), POLICY, Verdict.OPEN, "back"),
        (event(terminal="T9"), POLICY, Verdict.UNMAPPED, None),
        (event(age=30.0), POLICY, Verdict.EXPIRED, "front"),
        (event(age=29.9), POLICY, Verdict.OPEN, "front"),
        (event(age=-4.9), POLICY, Verdict.OPEN, "front"),
        (event(age=-5.1), POLICY, Verdict.REJECTED, "front"),
        (
            event("session_open"),
            Policy(POLICY.terminals, frozenset({EventType.SALE}), None, 30, 5),
            Verdict.IGNORED,
            "front",
        ),
        (
            event(method="card"),
            Policy(POLICY.terminals, ALL, frozenset({"cash"}), 30, 5),
            Verdict.IGNORED,
            "front",
        ),
        (
            event(method="cash"),
            Policy(POLICY.terminals, ALL, frozenset({"cash"}), 30, 5),
            Verdict.OPEN,
            "front",
        ),
        (
            event("refund", method="card"),
            Policy(POLICY.terminals, ALL, frozenset({"cash"}), 30, 5),
            Verdict.OPEN,
            "front",
        ),
        # An expired event on an unknown till is expired first: nothing opens late.
        (event(terminal="T9", age=100), POLICY, Verdict.EXPIRED, None),
    ],
)
def test_decide(ev, policy, verdict, printer):
    decision = decide(ev, policy, NOW)
    assert decision.verdict is verdict
    assert decision.printer_id == printer
    if verdict is not Verdict.OPEN:
        assert decision.reason


@pytest.mark.parametrize(
    ("occurred", "received", "max_age", "expected"),
    [(100.0, 100.0, 30.0, 130.0), (100.0, 110.0, 30.0, 130.0), (104.0, 100.0, 30.0, 130.0)],
)
def test_deadline_takes_the_earlier_clock(occurred, received, max_age, expected):
    assert deadline(occurred, received, max_age) == expected
