"""The event contract: every malformed payload gets a reason, never an exception."""

import json

import pytest

from agent.core.events import (
    MAX_PAYLOAD_BYTES,
    EventType,
    InvalidEvent,
    decode_json_object,
    event_id_hint,
    parse_rfc3339,
    validate_event,
)

GOOD = {
    "event_id": "e-1",
    "type": "sale",
    "terminal_id": "T1",
    "occurred_at": "2026-11-25T13:00:00.250+01:00",
}


def parse(payload: bytes):
    return validate_event(decode_json_object(payload))


def test_good_event():
    event = parse(
        json.dumps(
            {
                **GOOD,
                "amount": 12.5,
                "currency": "EUR",
                "payment_method": "cash",
                "operator": "Ana",
                "meta": {"ticket": {"lines": [1, 2]}},
            }
        ).encode()
    )
    assert event.event_id == "e-1"
    assert event.type is EventType.SALE
    assert event.occurred_at == pytest.approx(1795608000.25)
    assert event.amount == 12.5
    assert event.meta == {"ticket": {"lines": [1, 2]}}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "JSON list, not an object"),
        (b'"sale"', "JSON str, not an object"),
        (b"null", "JSON NoneType, not an object"),
        (b"{", "not JSON"),
        (b"", "not JSON"),
        (b"[" * 5000 + b"]" * 5000, "nested deeper"),
        (b'{"meta": ' + b'{"a": ' * 12 + b"1" + b"}" * 12 + b"}", "nested deeper"),
        (b'{"type": "refund", "type": "sale"}', "duplicate key 'type'"),
        (b'{"amount": NaN}', "not JSON"),
        (b'{"amount": 1e999}', "not JSON"),
        (b" " * (MAX_PAYLOAD_BYTES + 1), "limit is 16384"),
    ],
)
def test_decode_refuses(payload, reason):
    with pytest.raises(InvalidEvent, match=reason):
        decode_json_object(payload)


def test_nesting_counts_ignore_brackets_in_strings():
    obj = decode_json_object(json.dumps({**GOOD, "meta": {"note": "[[[[[[[[[[[[[["}}).encode())
    assert obj["meta"] == {"note": "[[[[[[[[[[[[[["}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"event_id": None}, "event_id is missing"),
        ({"event_id": 42}, "event_id must be a string, not int"),
        ({"event_id": ""}, "event_id must be 1..128"),
        ({"event_id": "x" * 129}, "event_id must be 1..128"),
        ({"event_id": "a\nb"}, "event_id must be 1..128 printable"),
        ({"type": "theft"}, "type must be one of"),
        ({"type": None}, "type must be one of"),
        ({"type": ["sale"]}, "type must be one of"),
        ({"terminal_id": 1}, "terminal_id must be a string"),
        ({"terminal_id": None}, "terminal_id is missing"),
        ({"occurred_at": "2026-11-25 13:00"}, "occurred_at must be an RFC 3339"),
        ({"occurred_at": "2026-11-25T13:00:00"}, "occurred_at must be an RFC 3339"),  # no offset
        ({"occurred_at": "2026-13-45T13:00:00Z"}, "occurred_at must be an RFC 3339"),
        ({"occurred_at": 1795611600}, "occurred_at must be an RFC 3339"),
        ({"amount": "12"}, "amount must be a number"),
        ({"amount": True}, "amount must be a number"),
        ({"currency": "euro"}, "currency must be an ISO 4217"),
        ({"payment_method": 3}, "payment_method must be a string"),
        ({"operator": {"id": 1}}, "operator must be a string"),
        ({"meta": [1]}, "meta must be an object"),
    ],
)
def test_validate_refuses_with_reason(change, reason):
    obj = {**GOOD, **change}
    obj = {k: v for k, v in obj.items() if v is not None}
    with pytest.raises(InvalidEvent, match=reason) as info:
        validate_event(obj)
    expected_id = (
        obj["event_id"]
        if isinstance(obj.get("event_id"), str) and "event_id" not in change
        else None
    )
    assert info.value.event_id == expected_id


@pytest.mark.parametrize(
    ("text", "unix"),
    [
        ("2026-11-25T12:00:00Z", 1795608000.0),
        ("2026-11-25t12:00:00z", 1795608000.0),
        ("2026-11-25T13:00:00+01:00", 1795608000.0),
        ("2026-11-25T12:00:00.123456789Z", 1795608000.123456),
        ("2026-11-25 12:00:00.5-00:30", 1795609800.5),
        ("2026-02-30T12:00:00Z", None),
        ("2026-11-25T25:00:00Z", None),
        ("yesterday", None),
        (None, None),
    ],
)
def test_parse_rfc3339(text, unix):
    result = parse_rfc3339(text)
    assert result == (pytest.approx(unix) if unix is not None else None)


@pytest.mark.parametrize(
    ("payload", "hint"),
    [
        (json.dumps({**GOOD, "type": "x"}).encode(), "e-1"),
        (b"\xff", None),
        (b'{"event_id": 3}', None),
    ],
)
def test_event_id_hint(payload, hint):
    assert event_id_hint(payload) == hint
