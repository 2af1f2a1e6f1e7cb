"""Tolerant decoding of untrusted device strings."""

from __future__ import annotations

import re

MAX_TEXT = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def clean_text(value: bytes | str | None, limit: int = MAX_TEXT) -> str | None:
    """Decode as UTF-8 (invalid bytes become U+FFFD), drop control characters, cap the length."""
    if value is None:
        return None
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    text = _CONTROL.sub(" ", text).strip()
    return text[:limit].rstrip() or None
