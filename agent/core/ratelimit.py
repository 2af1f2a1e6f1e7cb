"""Per-drawer pulse rate limit over a sliding minute (pure)."""

from __future__ import annotations

from collections import deque

WINDOW_S = 60.0


class PulseRateLimiter:
    """Allows at most `per_minute` pulses per drawer in any 60 s window; 0 disables it."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._recent: dict[str, deque[float]] = {}

    def allow(self, drawer_key: str, now: float) -> bool:
        """Count a pulse for `drawer_key` at `now` if the window has room."""
        if self.per_minute <= 0:
            return True
        window = self._recent.setdefault(drawer_key, deque())
        while window and window[0] <= now - WINDOW_S:
            window.popleft()
        if len(window) >= self.per_minute:
            return False
        window.append(now)
        return True
