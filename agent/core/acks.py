"""Acknowledgements published for every received event (pure)."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass


class AckStatus(enum.StrEnum):
    """Final outcome of one received message."""

    OPENED = "opened"
    DUPLICATE = "duplicate"
    EXPIRED = "expired"
    FAILED = "failed"
    UNMAPPED = "unmapped"
    IGNORED = "ignored"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Ack:
    """The ack payload of the MQTT contract."""

    event_id: str | None
    status: AckStatus
    terminal_id: str | None = None
    printer_id: str | None = None
    attempts: int = 0
    latency_ms: float | None = None
    detail: str = ""
    drawer_open: bool | None = None

    def to_json(self) -> bytes:
        """Compact JSON bytes for the acks topic."""
        body: dict[str, object] = {
            "event_id": self.event_id,
            "status": self.status.value,
            "terminal_id": self.terminal_id,
            "printer_id": self.printer_id,
            "attempts": self.attempts,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "detail": self.detail,
        }
        if self.drawer_open is not None:
            body["drawer_open"] = self.drawer_open
        return json.dumps(body, separators=(",", ":")).encode()
