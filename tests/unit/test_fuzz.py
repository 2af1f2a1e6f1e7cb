"""Property tests: every input to the decoders is refused with a reason or read faithfully."""

import json
import math
import sys
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.core.commands import CommandSet
from agent.core.events import (
    CashEvent,
    EventType,
    InvalidEvent,
    decode_json_object,
    parse_rfc3339,
    validate_event,
)
from agent.core.policy import Policy, Verdict, decide
from agent.core.status import StatusError, parse_dle_eot, parse_star_asb
from agent.devtools.emulation import VirtualPrinter

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
near_events = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.one_of(st.text(max_size=140), st.integers(), st.none()),
        "type": st.one_of(
            st.sampled_from([t.value for t in EventType]), st.text(max_size=12), json_values
        ),
        "terminal_id": st.one_of(st.sampled_from(["T1", "T2", ""]), json_values),
        "occurred_at": st.one_of(
            st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
            st.text(max_size=30),
            json_values,
        ),
        "amount": json_values,
        "currency": st.one_of(st.text(max_size=4), json_values),
        "payment_method": json_values,
        "operator": json_values,
        "meta": json_values,
    },
)


FIELDS = (
    "event_id",
    "type",
    "terminal_id",
    "occurred_at",
    "amount",
    "currency",
    "payment_method",
    "operator",
    "meta",
)


def as_json(event: CashEvent, occurred_at: str) -> dict[str, object]:
    """The event's fields as the POS would send them (its own RFC 3339 text for the time)."""
    fields = {
        "event_id": event.event_id,
        "type": event.type.value,
        "terminal_id": event.terminal_id,
        "occurred_at": occurred_at,
        "amount": event.amount,
        "currency": event.currency,
        "payment_method": event.payment_method,
        "operator": event.operator,
        "meta": dict(event.meta),
    }
    return {k: v for k, v in fields.items() if v is not None}


def outcome(payload: bytes) -> str:
    """ "valid" or "rejected", asserting what each must mean.

    Rejected: the reason names what is wrong, the payload itself or one event field (and the
    ack can name the event once its event_id was readable). Valid: every field the agent acts
    on is the one sent, and the event re-serialised validates to the same event.
    """
    try:
        obj = decode_json_object(payload)
    except InvalidEvent as exc:
        assert exc.reason.startswith(("payload ", "JSON ", "duplicate key ")), exc.reason
        return "rejected"
    try:
        event = validate_event(obj)
    except InvalidEvent as exc:
        named = [f for f in FIELDS if f in exc.reason]
        assert named, exc.reason
        if named != ["event_id"]:
            assert exc.event_id == obj["event_id"]
        return "rejected"
    assert math.isfinite(event.occurred_at)
    assert event.occurred_at == parse_rfc3339(obj["occurred_at"])
    sent = {k: obj[k] for k in FIELDS if obj.get(k) is not None}
    assert as_json(event, str(obj["occurred_at"])) == {"meta": {}, **sent}
    resent = json.dumps(as_json(event, str(obj["occurred_at"]))).encode()
    assert validate_event(decode_json_object(resent)) == event
    return "valid"


@settings(FUZZ, max_examples=4000)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_rejected_with_a_reason_or_read_faithfully(payload):
    outcome(payload)


@settings(FUZZ, max_examples=3000)
@given(near_events)
def test_near_valid_events_are_rejected_with_a_reason_or_read_faithfully(obj):
    result = outcome(json.dumps(obj).encode())
    if result == "valid":
        assert isinstance(obj["event_id"], str)
        assert obj["type"] in {t.value for t in EventType}


GOOD = {
    "event_id": "e-1",
    "type": "sale",
    "terminal_id": "T1",
    "occurred_at": "2026-01-02T03:04:05.5+01:00",
    "amount": 12.5,
    "currency": "EUR",
}


def test_the_property_fails_on_a_misread_or_an_unexplained_refusal(monkeypatch):
    """Negative controls: a decoder that changes a field, or refuses without naming one."""
    assert outcome(json.dumps(GOOD).encode()) == "valid"
    real = validate_event
    monkeypatch.setattr(
        sys.modules[__name__], "validate_event", lambda o: replace(real(o), amount=1.0)
    )
    with pytest.raises(AssertionError):
        outcome(json.dumps(GOOD).encode())

    def refuse(_obj):
        raise InvalidEvent("no")

    monkeypatch.setattr(sys.modules[__name__], "validate_event", refuse)
    with pytest.raises(AssertionError):
        outcome(json.dumps(GOOD).encode())


@settings(FUZZ, max_examples=1000)
@given(near_events, st.floats(min_value=0, max_value=4e9))
def test_policy_decides_every_valid_event(obj, now):
    try:
        event = validate_event(obj)
    except InvalidEvent:
        return
    policy = Policy({"T1": "front"}, frozenset(EventType), None, 30.0, 5.0)
    decision = decide(event, policy, now)
    assert decision.verdict in set(Verdict)
    if decision.verdict is Verdict.OPEN:
        assert decision.printer_id == "front"
        assert now < decision.deadline <= now + 30.0


@settings(FUZZ, max_examples=1500)
@given(st.binary(max_size=16))
def test_status_parsers_accept_or_refuse(reply):
    for parse in (parse_dle_eot, parse_star_asb):
        try:
            status = parse(reply)
        except StatusError:
            continue
        assert status.online in (True, False)


@settings(FUZZ, max_examples=1500)
@given(st.lists(st.binary(max_size=12), max_size=8), st.sampled_from(list(CommandSet)))
def test_virtual_printer_survives_any_bytes(chunks, command_set):
    printer = VirtualPrinter(command_set)
    for chunk in chunks:
        reply = printer.feed(chunk, 0.0)
        assert isinstance(reply, bytes)
    assert all(p.drawer in (1, 2) for p in printer.pulses)
