"""Remote configuration over MQTT: request payloads and responses (pure).

zigbee2mqtt's convention (bridge/request/<name> → bridge/response/<name>, a `transaction`
echoed back): the request is a flat JSON object of the request's fields, plus an optional
`transaction` and, for changes, an optional `revision` (compare-and-set).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_TRANSACTION = 128
MAX_ID = 64


class RequestName(enum.StrEnum):
    """Every request the agent answers; the topic suffix after agent/request/."""

    PRINTERS_SET = "printers/set"
    PRINTERS_REMOVE = "printers/remove"
    TERMINALS_SET = "terminals/set"
    TERMINALS_REMOVE = "terminals/remove"
    PRINTERS_KICK = "printers/kick"
    DISCOVERY_START = "discovery/start"
    CONFIG_GET = "config/get"


class ErrorCode(enum.StrEnum):
    """`error.code` of an error response."""

    MALFORMED = "malformed"  # not a JSON object, a field of the wrong type, too large
    UNKNOWN_REQUEST = "unknown_request"
    RETAINED = "retained"
    QOS0 = "qos0"
    SIGNATURE = "signature"  # unsigned, forged, expired, replayed (detail says which)
    INVALID = "invalid"  # a printer table the settings code refused (detail names the key)
    CONFLICT = "conflict"  # stale revision
    NOT_FOUND = "not_found"
    IN_USE = "in_use"
    UNKNOWN_PRINTER = "unknown_printer"
    NOT_OVERRIDDEN = "not_overridden"
    UNAVAILABLE = "unavailable"  # the agent cannot do it now (no discovery, printer busy)
    FAILED = "failed"  # the kick went out and failed


# Which fields each request needs; every other field of printers/set is the printer table.
REQUIRED: Mapping[RequestName, tuple[str, ...]] = {
    RequestName.PRINTERS_SET: ("printer_id",),
    RequestName.PRINTERS_REMOVE: ("printer_id",),
    RequestName.TERMINALS_SET: ("terminal_id", "printer_id"),
    RequestName.TERMINALS_REMOVE: ("terminal_id",),
    RequestName.PRINTERS_KICK: ("printer_id",),
    RequestName.DISCOVERY_START: (),
    RequestName.CONFIG_GET: (),
}
# Envelope fields, never part of a request's data; exp/iat/nbf/jti are the token's claims.
ENVELOPE = frozenset({"transaction", "revision", "exp", "iat", "nbf", "jti"})


class BadRequest(ValueError):
    """A request answered with an error response."""

    def __init__(self, code: ErrorCode, detail: str, transaction: str | None = None) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail
        self.transaction = transaction


@dataclass(frozen=True)
class Request:
    """One validated request."""

    name: RequestName
    transaction: str | None = None
    revision: int | None = None
    fields: Mapping[str, object] = field(default_factory=dict)

    def text(self, name: str) -> str:
        """A required string field (checked by `parse_request`)."""
        value = self.fields[name]
        assert isinstance(value, str)
        return value


def request_name(suffix: str) -> RequestName:
    """agent/request/<suffix> → RequestName, or BadRequest naming the known ones."""
    try:
        return RequestName(suffix)
    except ValueError:
        known = ", ".join(n.value for n in RequestName)
        raise BadRequest(
            ErrorCode.UNKNOWN_REQUEST, f"{suffix[:60]!r} is not a request; known: {known}"
        ) from None


def transaction_hint(obj: Mapping[str, object]) -> str | None:
    """The transaction to echo, when the payload has a usable one."""
    raw = obj.get("transaction")
    if isinstance(raw, str) and 0 < len(raw) <= MAX_TRANSACTION and raw.isprintable():
        return raw
    return None


def parse_request(name: RequestName, obj: Mapping[str, object]) -> Request:
    """A decoded JSON object (or verified claims) → Request, or BadRequest naming the field."""
    transaction = transaction_hint(obj)
    if "transaction" in obj and transaction is None:
        raise BadRequest(
            ErrorCode.MALFORMED, f"transaction must be 1..{MAX_TRANSACTION} printable characters"
        )

    def fail(detail: str) -> BadRequest:
        return BadRequest(ErrorCode.MALFORMED, detail, transaction)

    revision = obj.get("revision")
    if revision is not None and (
        isinstance(revision, bool) or not isinstance(revision, int) or revision < 0
    ):
        raise fail("revision must be a non-negative integer")
    fields = {k: v for k, v in obj.items() if k not in ENVELOPE}
    for key in REQUIRED[name]:
        value = fields.get(key)
        if value is None:
            raise fail(f"{key} is missing")
        if not isinstance(value, str) or not 0 < len(value) <= MAX_ID or not value.isprintable():
            raise fail(f"{key} must be 1..{MAX_ID} printable characters")
    if name is RequestName.DISCOVERY_START:
        subnets = fields.get("subnets")
        if subnets is not None and not (
            isinstance(subnets, list) and all(isinstance(s, str) for s in subnets)
        ):
            raise fail("subnets must be a list of CIDR strings")
    elif name is not RequestName.PRINTERS_SET:
        extra = sorted(set(fields) - set(REQUIRED[name]))
        if extra:
            raise fail(f"unknown field {extra[0]!r} for {name.value}")
    return Request(name, transaction, revision, fields)


def printer_table(request: Request) -> dict[str, object]:
    """printers/set: the `[printers.<id>]` table, i.e. every field but printer_id."""
    return {k: v for k, v in request.fields.items() if k != "printer_id"}


def ok_response(transaction: str | None, data: object) -> bytes:
    """`{"transaction", "status": "ok", "data"}` as compact JSON."""
    return _dump({"transaction": transaction, "status": "ok", "data": data})


def error_response(transaction: str | None, code: ErrorCode | str, detail: str) -> bytes:
    """`{"transaction", "status": "error", "error": {"code", "detail"}}` as compact JSON."""
    return _dump(
        {
            "transaction": transaction,
            "status": "error",
            "error": {"code": str(code), "detail": detail},
        }
    )


def _dump(body: Mapping[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":"), default=str).encode()


@dataclass
class ReplayGuard:
    """Signed requests: each token once, an `exp` within reach, none issued before the start.

    A request has no event_id for the ledger to answer `duplicate`, so a captured token could
    be replayed (a second test pulse, an old mapping back). Each token's signature is kept
    until its `exp`; `exp` may not lie further ahead than `max_window_s`, which bounds what is
    kept; and a token issued before the agent started (whose memory a restart lost) is refused.
    """

    started_at: float
    max_window_s: float
    leeway_s: float = 5.0
    seen: dict[bytes, float] = field(default_factory=dict)

    def check(self, signature: bytes, claims: Mapping[str, object], now: float) -> str | None:
        """Why this verified token must be refused, or None (and it is remembered)."""
        for expired in [s for s, exp in self.seen.items() if exp + self.leeway_s <= now]:
            del self.seen[expired]
        exp, iat = claims.get("exp"), claims.get("iat")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            return "a signed request needs exp"
        if isinstance(iat, bool) or not isinstance(iat, int | float):
            return "a signed request needs iat"
        if exp - now > self.max_window_s + self.leeway_s:
            return f"exp is more than {self.max_window_s:.0f} s ahead"
        if iat < self.started_at - self.leeway_s:
            return "replay: issued before the agent started"
        if signature in self.seen:
            return "replay: this token was already used"
        self.seen[signature] = float(exp)
        return None
