"""Logging setup (text or JSON lines) and a log-once helper for repeating network faults."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import OrderedDict

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_MAX_SEEN = 256


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with `extra=` fields as keys."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        body: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                body[key] = value
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


class TextFormatter(logging.Formatter):
    """Human lines with `extra=` fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        line = super().format(record)
        extras = [
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _RESERVED and not k.startswith("_")
        ]
        return f"{line} {' '.join(extras)}" if extras else line


def configure(fmt: str = "text", level: str = "INFO") -> None:
    """Configure the root logger once, for the CLI."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)


class QuietLog:
    """Warn once per distinct message, then at debug until the fault clears."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._seen: OrderedDict[str, float] = OrderedDict()

    def warning(self, msg: str, *args: object) -> None:
        """Log a repeating fault: a warning the first time, debug afterwards."""
        key = msg % args if args else msg
        if key in self._seen:
            self.logger.debug(msg, *args)
            return
        self._seen[key] = time.monotonic()
        # Bounded: fault texts can carry peer-controlled parts.
        while len(self._seen) > _MAX_SEEN:
            self._seen.popitem(last=False)
        self.logger.warning(msg, *args)

    def recovered(self, msg: str, *args: object) -> None:
        """Forget past faults; log the recovery once when there were any."""
        if self._seen:
            self._seen.clear()
            self.logger.info(msg, *args)
