"""Property tests: every input to the decoders ends in a defined outcome, never an exception."""

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.core.commands import CommandSet
from agent.core.events import EventType, InvalidEvent, decode_json_object, validate_event
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


def outcome(payload: bytes) -> str:
    try:
        event = validate_event(decode_json_object(payload))
    except InvalidEvent as exc:
        assert exc.reason
        return "rejected"
    assert math.isfinite(event.occurred_at)
    return "valid"


@settings(FUZZ, max_examples=4000)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_end_in_a_defined_outcome(payload):
    assert outcome(payload) in {"valid", "rejected"}


@settings(FUZZ, max_examples=3000)
@given(near_events)
def test_near_valid_events_end_in_a_defined_outcome(obj):
    result = outcome(json.dumps(obj).encode())
    if result == "valid":
        assert isinstance(obj["event_id"], str)
        assert obj["type"] in {t.value for t in EventType}


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
