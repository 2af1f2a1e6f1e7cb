"""Printer health from status replies, change detection and the drawer-left-open alert (pure).

Status bits are decoded by `agent.core.status` (PROTOCOLS §2.1 ESC/POS, §2.5 Star); this module
turns one probe result into the retained per-printer status and decides what to publish.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from agent.core.commands import drawer_kick, realtime_drawer_kick
from agent.core.settings import PrinterSettings
from agent.core.status import Paper, PrinterStatus


@dataclass(frozen=True)
class PrinterHealth:
    """What the last probe (or post-pulse sensor read) told us about one printer."""

    printer_id: str
    host: str | None
    online: bool
    reachable: bool = False
    drawer_open: bool | None = None
    paper: Paper | None = None
    cover_open: bool | None = None
    error: bool | None = None
    last_seen: float | None = None
    last_error: str | None = None
    rtt_ms: float | None = None
    checked_at: float | None = None

    def state_key(self) -> tuple[object, ...]:
        """The fields whose change must be published; timestamps and round trips are not."""
        return (
            self.online,
            self.drawer_open,
            self.paper,
            self.cover_open,
            self.last_error,
            self.host,
        )

    def to_status(self) -> dict[str, object]:
        """The retained `printers/{id}/status` payload of the MQTT contract."""
        return {
            "online": self.online,
            "drawer_open": self.drawer_open,
            "paper": None if self.paper is None else self.paper.value,
            "cover_open": self.cover_open,
            "last_seen": self.last_seen,
            "last_error": self.last_error,
            "host": self.host,
        }

    def to_json(self) -> dict[str, object]:
        """The HTTP view: the MQTT payload plus probe details."""
        return {
            "printer_id": self.printer_id,
            **self.to_status(),
            "reachable": self.reachable,
            "error": self.error,
            "rtt_ms": self.rtt_ms,
            "checked_at": self.checked_at,
        }


def unknown(printer_id: str, host: str | None) -> PrinterHealth:
    """Health before the first probe."""
    return PrinterHealth(printer_id=printer_id, host=host, online=False)


def observe(
    previous: PrinterHealth,
    status: PrinterStatus,
    *,
    open_level: str,
    host: str,
    now: float,
    rtt_ms: float | None,
) -> PrinterHealth:
    """A status reply arrived: derive online, paper, cover and drawer (polarity per printer)."""
    problems = []
    if not status.online:
        problems.append("printer reports offline")
    if status.cover_open:
        problems.append("cover open")
    if status.paper is Paper.OUT:
        problems.append("paper out")
    if status.error:
        problems.append("printer error")
    return replace(
        previous,
        host=host,
        online=status.online,
        reachable=True,
        drawer_open=status.drawer_open(open_level),
        paper=status.paper,
        cover_open=status.cover_open,
        error=status.error,
        last_seen=now,
        last_error="; ".join(problems) or None,
        rtt_ms=rtt_ms,
        checked_at=now,
    )


def unreachable(
    previous: PrinterHealth, *, host: str | None, reason: str, now: float
) -> PrinterHealth:
    """The probe failed: offline, sensors unknown, last_seen kept."""
    return replace(
        previous,
        host=host,
        online=False,
        reachable=False,
        drawer_open=None,
        paper=None,
        cover_open=None,
        error=None,
        last_error=reason,
        rtt_ms=None,
        checked_at=now,
    )


def must_publish(published: PrinterHealth | None, current: PrinterHealth) -> bool:
    """Publish the retained status only when a contract field changed (not every probe)."""
    return published is None or published.state_key() != current.state_key()


def status_payload(health: PrinterHealth) -> bytes:
    """Compact JSON bytes of the retained status."""
    return json.dumps(health.to_status(), separators=(",", ":")).encode()


@dataclass(frozen=True)
class DrawerWatch:
    """Since when a drawer reads open, and whether that opening was already alerted."""

    open_since: float | None = None
    alerted: bool = False


@dataclass(frozen=True)
class Alert:
    """A drawer left open longer than `[health] drawer_open_alert_s`."""

    printer_id: str
    since: float
    kind: str = "drawer_left_open"

    def to_json(self) -> bytes:
        """The alerts-topic payload."""
        body = {"kind": self.kind, "printer_id": self.printer_id, "since": self.since}
        return json.dumps(body, separators=(",", ":")).encode()


def watch_drawer(
    watch: DrawerWatch,
    printer_id: str,
    drawer_open: bool | None,
    *,
    now: float,
    alert_after_s: float,
) -> tuple[DrawerWatch, Alert | None]:
    """Advance the left-open timer; at most one alert per opening. Unknown keeps the timer."""
    if drawer_open is None:
        return watch, None
    if not drawer_open:
        return DrawerWatch(), None
    since = watch.open_since if watch.open_since is not None else now
    if not watch.alerted and now - since >= alert_after_s:
        return DrawerWatch(since, alerted=True), Alert(printer_id, since)
    return DrawerWatch(since, watch.alerted), None


@dataclass(frozen=True)
class Kick:
    """The bytes of one pulse and whether they are the real-time form."""

    payload: bytes
    realtime: bool = False


def use_realtime_pulse(printer: PrinterSettings, last: PrinterHealth | None) -> bool:
    """Real-time pulse when the last probe heard the printer report paper out or offline.

    ESC p is buffered and waits behind an offline printer; DLE DC4 1 is executed on
    receipt even offline (PROTOCOLS §1.2). Only models known to support it
    (`realtime_pulse`) get it; the others still get ESC p: never refuse for paper.
    """
    if not printer.realtime_pulse or last is None or not last.reachable:
        return False
    return not last.online or last.paper is Paper.OUT


def choose_kick(printer: PrinterSettings, last: PrinterHealth | None) -> Kick:
    """The kick for this printer now: buffered normally, real-time when it is offline."""
    if use_realtime_pulse(printer, last):
        return Kick(realtime_drawer_kick(printer.drawer, printer.pulse_on_ms), realtime=True)
    return Kick(
        drawer_kick(printer.command_set, printer.drawer, printer.pulse_on_ms, printer.pulse_off_ms)
    )
