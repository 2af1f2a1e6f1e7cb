"""Cash events: the MQTT payload contract, validated into frozen values (pure)."""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

MAX_PAYLOAD_BYTES = 16 * 1024
MAX_META_DEPTH = 8
MAX_EVENT_ID = 128
MAX_TEXT = 128

# RFC 3339 §5.6 date-time: the offset is mandatory, fractional seconds optional.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class EventType(enum.StrEnum):
    """Cash events the POS publishes; each may open a drawer, by policy."""

    SALE = "sale"
    REFUND = "refund"
    SESSION_OPEN = "session_open"
    SESSION_CLOSE = "session_close"
    CASH_DEPOSIT = "cash_deposit"
    CASH_WITHDRAWAL = "cash_withdrawal"


class InvalidEvent(ValueError):
    """A payload that is refused; `reason` goes into the ack's detail."""

    def __init__(self, reason: str, event_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id


@dataclass(frozen=True)
class CashEvent:
    """One validated cash event."""

    event_id: str
    type: EventType
    terminal_id: str
    occurred_at: float
    amount: float | None = None
    currency: str | None = None
    payment_method: str | None = None
    operator: str | None = None
    meta: Mapping[str, object] = field(default_factory=dict)


def decode_json_object(payload: bytes) -> dict[str, object]:
    """Bytes → JSON object, refusing oversize, non-UTF-8, duplicate keys and deep nesting."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidEvent(f"payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"payload is not UTF-8 (byte {exc.start})") from None
    if _nesting_depth(text) > MAX_META_DEPTH + 1:
        raise InvalidEvent(f"JSON nested deeper than {MAX_META_DEPTH + 1} levels")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_no_nan,
            parse_float=_finite_float,
        )
    except _DuplicateKey as exc:
        raise InvalidEvent(f"duplicate key {exc.key!r}") from None
    except ValueError as exc:
        raise InvalidEvent(f"payload is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidEvent(f"payload is a JSON {type(value).__name__}, not an object")
    return value


def validate_event(obj: Mapping[str, object]) -> CashEvent:
    """A JSON object (or verified token claims) → CashEvent, or InvalidEvent naming the field."""
    raw_id = obj.get("event_id")
    event_id = raw_id if isinstance(raw_id, str) and _is_text(raw_id, MAX_EVENT_ID) else None
    if event_id is None:
        raise InvalidEvent(_text_problem("event_id", raw_id, MAX_EVENT_ID))

    def fail(reason: str) -> InvalidEvent:
        return InvalidEvent(reason, event_id)

    raw_type = obj.get("type")
    if not isinstance(raw_type, str) or raw_type not in EventType.__members__.values():
        allowed = ", ".join(t.value for t in EventType)
        raise fail(f"type must be one of {allowed}; got {raw_type!r:.40}")
    terminal = obj.get("terminal_id")
    if not isinstance(terminal, str) or not _is_text(terminal, MAX_TEXT):
        raise fail(_text_problem("terminal_id", terminal, MAX_TEXT))
    occurred_at = parse_rfc3339(obj.get("occurred_at"))
    if occurred_at is None:
        raise fail("occurred_at must be an RFC 3339 date-time with an offset")
    amount = obj.get("amount")
    if amount is not None and (
        isinstance(amount, bool) or not isinstance(amount, int | float) or not math.isfinite(amount)
    ):
        raise fail("amount must be a number")
    currency = obj.get("currency")
    if currency is not None and not (isinstance(currency, str) and _CURRENCY.match(currency)):
        raise fail("currency must be an ISO 4217 code such as EUR")
    optional: dict[str, str | None] = {}
    for name in ("payment_method", "operator"):
        value = obj.get(name)
        if value is not None and not (isinstance(value, str) and _is_text(value, MAX_TEXT)):
            raise fail(_text_problem(name, value, MAX_TEXT))
        optional[name] = value
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise fail("meta must be an object")
    return CashEvent(
        event_id=event_id,
        type=EventType(raw_type),
        terminal_id=terminal,
        occurred_at=occurred_at,
        amount=float(amount) if amount is not None else None,
        currency=currency,
        payment_method=optional["payment_method"],
        operator=optional["operator"],
        meta=meta,
    )


def parse_rfc3339(value: object) -> float | None:
    """RFC 3339 date-time with offset → unix time, or None."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        return None
    text = value.replace("z", "Z").replace("t", "T")
    if "." in text:
        # fromisoformat takes at most 6 fractional digits; RFC 3339 allows more.
        head, _, rest = text.partition(".")
        digits = re.match(r"\d*", rest)
        assert digits is not None
        frac = digits.group()
        text = f"{head}.{frac[:6]:0<6}{rest[len(frac) :]}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def event_id_hint(payload: bytes) -> str | None:
    """Best-effort event_id of an unreadable payload, for the ack; None when there is none."""
    try:
        obj = decode_json_object(payload)
    except InvalidEvent:
        return None
    raw = obj.get("event_id")
    return raw if isinstance(raw, str) and _is_text(raw, MAX_EVENT_ID) else None


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # {"type": "refund", "type": "sale"} must not mean whatever the parser picks last.
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"{token} overflows a double")
    return value


def _no_nan(token: str) -> object:
    raise ValueError(f"{token} is not JSON")


def _nesting_depth(text: str) -> int:
    # Counted before parsing so a 16 KiB '[[[[...' cannot reach the parser's recursion limit.
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _is_text(value: str, limit: int) -> bool:
    return 0 < len(value) <= limit and value.isprintable()


def _text_problem(name: str, value: object, limit: int) -> str:
    if value is None:
        return f"{name} is missing"
    if not isinstance(value, str):
        return f"{name} must be a string, not {type(value).__name__}"
    return f"{name} must be 1..{limit} printable characters"
