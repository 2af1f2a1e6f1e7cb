"""What the HTTP API may see and do: a narrow read model and a command interface (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class KickAnswer:
    """The answer to a test kick.

    `code` is `opened`, `failed`, `expired` (final, when waited for), `queued`,
    `unknown_printer`, `queue_full`, `rate_limited` or `not_recorded`.
    """

    code: str
    printer_id: str
    event_id: str | None = None
    detail: str = ""
    attempts: int = 0
    latency_ms: float | None = None
    drawer_open: bool | None = None

    def to_json(self) -> dict[str, object]:
        """The JSON body of the HTTP answer."""
        body: dict[str, object] = {
            "event_id": self.event_id,
            "printer_id": self.printer_id,
            "status": self.code,
        }
        if self.code not in ("queued",) and self.event_id is not None:
            body.update(
                attempts=self.attempts,
                latency_ms=self.latency_ms,
                drawer_open=self.drawer_open,
                detail=self.detail,
            )
        elif self.detail:
            body["detail"] = self.detail
        return body


class ReadModel(Protocol):
    """Read-only views of the running agent."""

    def ready(self) -> tuple[bool, str]:
        """Readiness and its reason (the part that is down)."""
        ...

    def metrics_text(self) -> bytes:
        """Prometheus exposition."""
        ...

    def printers(self) -> list[dict[str, object]]:
        """Configured printers with health, queue length and address."""
        ...

    def discovered(self) -> list[dict[str, object]]:
        """Printers discovery has seen."""
        ...

    def events(self, limit: int, since: float | None) -> list[dict[str, object]]:
        """The audit trail, newest first."""
        ...

    def config(self) -> dict[str, object]:
        """Effective settings, secrets redacted."""
        ...


class Commands(Protocol):
    """What the HTTP API may ask the agent to do."""

    async def test_kick(self, printer_id: str, origin: str, *, wait: bool) -> KickAnswer:
        """One test pulse through the admission path; with `wait`, its final outcome."""
        ...
