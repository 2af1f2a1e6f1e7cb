"""The MQTT contract as one JSON Schema, generated from the agent's own models (pure).

clients/schema/contract.json is this function's output; both client libraries read it, and a
test fails when the committed file differs, so the clients cannot drift from the agent.
"""

from __future__ import annotations

import dataclasses
import json

from agent.core import acks, events, requests
from agent.core.topics import Topics

SCHEMA_ID = "https://drawer-agent.invalid/contract.json"

# The JSON type of each Ack field; a field added to the dataclass without an entry here
# makes `contract_schema` fail, not publish a schema without it.
_ACK_TYPES: dict[str, dict[str, object]] = {
    "event_id": {"type": ["string", "null"], "maxLength": events.MAX_EVENT_ID},
    "status": {"type": "string", "enum": [s.value for s in acks.AckStatus]},
    "terminal_id": {"type": ["string", "null"]},
    "printer_id": {"type": ["string", "null"]},
    "attempts": {"type": "integer", "minimum": 0},
    "latency_ms": {"type": ["number", "null"], "description": "receipt to bytes written"},
    "detail": {"type": "string"},
    "drawer_open": {"type": "boolean", "description": "drawer sensor after the pulse, when read"},
}
# Always present in Ack.to_json(); drawer_open only when the sensor was read.
_ACK_OPTIONAL = frozenset({"drawer_open"})


def _text(limit: int) -> dict[str, object]:
    return {"type": "string", "minLength": 1, "maxLength": limit}


def cash_event_schema() -> dict[str, object]:
    """What `events.validate_event` accepts."""
    return {
        "type": "object",
        "required": ["event_id", "type", "terminal_id", "occurred_at"],
        "properties": {
            "event_id": {**_text(events.MAX_EVENT_ID), "description": "idempotency key"},
            "type": {"type": "string", "enum": [t.value for t in events.EventType]},
            "terminal_id": _text(events.MAX_TEXT),
            "occurred_at": {
                "type": "string",
                "format": "date-time",
                "pattern": events._RFC3339.pattern,
                "description": "RFC 3339 with an offset",
            },
            "amount": {"type": "number"},
            "currency": {"type": "string", "pattern": events._CURRENCY.pattern},
            "payment_method": _text(events.MAX_TEXT),
            "operator": _text(events.MAX_TEXT),
            "meta": {
                "type": "object",
                "description": f"nesting at most {events.MAX_META_DEPTH} levels",
            },
        },
        "x-max-payload-bytes": events.MAX_PAYLOAD_BYTES,
    }


def ack_schema() -> dict[str, object]:
    """What `acks.Ack.to_json` produces."""
    names = [f.name for f in dataclasses.fields(acks.Ack)]
    missing = sorted(set(names) ^ set(_ACK_TYPES))
    if missing:
        raise AssertionError(f"contract: Ack fields and their JSON types differ: {missing}")
    return {
        "type": "object",
        "required": [n for n in names if n not in _ACK_OPTIONAL],
        "properties": {n: _ACK_TYPES[n] for n in names},
    }


def request_schema(name: requests.RequestName) -> dict[str, object]:
    """What `requests.parse_request(name, …)` accepts."""
    props: dict[str, object] = {
        "transaction": {**_text(requests.MAX_TRANSACTION), "description": "echoed"},
    }
    if name in (
        requests.RequestName.PRINTERS_SET,
        requests.RequestName.PRINTERS_REMOVE,
        requests.RequestName.TERMINALS_SET,
        requests.RequestName.TERMINALS_REMOVE,
    ):
        props["revision"] = {
            "type": "integer",
            "minimum": 0,
            "description": "compare-and-set: refused with conflict unless the mapping is there",
        }
    for key in requests.REQUIRED[name]:
        props[key] = _text(requests.MAX_ID)
    schema: dict[str, object] = {"type": "object", "required": list(requests.REQUIRED[name])}
    if name is requests.RequestName.DISCOVERY_START:
        props["subnets"] = {"type": "array", "items": {"type": "string"}}
    schema["properties"] = props
    # printers/set carries the keys of a [printers.<id>] table next to printer_id.
    schema["additionalProperties"] = name is requests.RequestName.PRINTERS_SET
    return schema


def response_schema() -> dict[str, object]:
    """What `requests.ok_response` / `error_response` produce."""
    return {
        "type": "object",
        "required": ["transaction", "status"],
        "properties": {
            "transaction": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": ["ok", "error"]},
            "data": {},
            "error": {
                "type": "object",
                "required": ["code", "detail"],
                "properties": {
                    "code": {"type": "string", "enum": [c.value for c in requests.ErrorCode]},
                    "detail": {"type": "string"},
                },
            },
        },
    }


def contract_schema() -> dict[str, object]:
    """The whole contract: payload schemas and topic templates."""
    t = Topics("{shop_id}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "drawer-agent MQTT contract (generated by agent/core/contract.py; do not edit)",
        "topics": {
            "events": t.events,
            "acks": t.acks,
            "agent_status": t.agent_status,
            "alerts": t.alerts,
            "printer_status": t.printer_status("{printer_id}"),
            "request": t.request("{name}"),
            "response": t.response("{name}"),
            "config": t.config,
            "inventory": t.inventory,
        },
        "requests": [n.value for n in requests.RequestName],
        "$defs": {
            "CashEvent": cash_event_schema(),
            "Ack": ack_schema(),
            "Response": response_schema(),
            **{
                "Request_" + n.value.replace("/", "_"): request_schema(n)
                for n in requests.RequestName
            },
        },
    }


def contract_json() -> str:
    """The committed file's exact text."""
    return json.dumps(contract_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # python -m agent.core.contract > clients/schema/contract.json
    import sys

    sys.stdout.write(contract_json())
