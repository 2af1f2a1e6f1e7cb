"""Drawer-kick and status-request bytes for each command set (pure).

Sources are in ../shared/PROTOCOLS.md; the section is cited next to each encoder.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class CommandSet(enum.StrEnum):
    """How a printer must be spoken to."""

    ESCPOS = "escpos"
    STAR_LINE = "star-line"
    STAR_PRNT = "star-prnt"
    STAR_GRAPHIC = "star-graphic"

    @property
    def is_star(self) -> bool:
        """Star Line, StarPRNT and Star Graphic share the external-device commands."""
        return self is not CommandSet.ESCPOS


@dataclass(frozen=True)
class PulseLimits:
    """The pulse timings a command set can express, in milliseconds."""

    on_min: int
    on_max: int
    off_min: int
    off_max: int
    step: int


# ESC p: t1, t2 in 0..255 units of 2 ms (PROTOCOLS §1.1). Star ESC BEL: n in 1..127 units of
# 10 ms; 0 makes the printer ignore the command (PROTOCOLS §1.3).
ESCPOS_LIMITS = PulseLimits(on_min=2, on_max=510, off_min=2, off_max=510, step=2)
STAR_LIMITS = PulseLimits(on_min=10, on_max=1270, off_min=10, off_max=1270, step=10)

ESC = 0x1B
DLE = 0x10
EOT = 0x04
DC4 = 0x14
BEL = 0x07
SUB = 0x1A
ACK = 0x06
SOH = 0x01


def limits_for(command_set: CommandSet) -> PulseLimits:
    """Pulse limits of a command set."""
    return STAR_LIMITS if command_set.is_star else ESCPOS_LIMITS


def check_pulse(command_set: CommandSet, on_ms: int, off_ms: int) -> str | None:
    """Return why a pulse timing cannot be sent, or None when it can."""
    lim = limits_for(command_set)
    if not lim.on_min <= on_ms <= lim.on_max:
        return f"pulse on time {on_ms} ms is outside {lim.on_min}..{lim.on_max} ms"
    if not lim.off_min <= off_ms <= lim.off_max:
        return f"pulse off time {off_ms} ms is outside {lim.off_min}..{lim.off_max} ms"
    return None


def drawer_kick(command_set: CommandSet, drawer: int, on_ms: int, off_ms: int) -> bytes:
    """Bytes that pulse `drawer` (1 = connector pin 2, 2 = pin 5) once.

    Raises ValueError for a drawer or timing the command set cannot express: sending a
    clamped or truncated command is how other tools end up pulsing nothing (see the
    node-thermal-printer row in PROTOCOLS §1.1).
    """
    if drawer not in (1, 2):
        raise ValueError(f"drawer must be 1 or 2, not {drawer}")
    problem = check_pulse(command_set, on_ms, off_ms)
    if problem:
        raise ValueError(problem)
    if command_set is CommandSet.ESCPOS:
        # ESC p m t1 t2 — m 0 = pin 2, 1 = pin 5; ON t1×2 ms, OFF t2×2 ms (PROTOCOLS §1.1).
        return bytes((ESC, 0x70, drawer - 1, on_ms // 2, off_ms // 2))
    if drawer == 1:
        # ESC BEL n1 n2 sets device 1's pulse width in 10 ms units, BEL fires it (§1.3).
        return bytes((ESC, BEL, on_ms // 10, off_ms // 10, BEL))
    # SUB drives external device 2 with a fixed 200 ms pulse; its width cannot be set (§1.3).
    return bytes((SUB,))


def realtime_drawer_kick(drawer: int, pulse_ms: int) -> bytes:
    """ESC/POS real-time pulse `DLE DC4 1 m t`, executed even when the printer is offline.

    t is 1..8 units of 100 ms (PROTOCOLS §1.2). Only fn=1 is ever built here: other
    DLE DC4 functions clear buffers or power the printer off.
    """
    if drawer not in (1, 2):
        raise ValueError(f"drawer must be 1 or 2, not {drawer}")
    units = min(8, max(1, round(pulse_ms / 100)))
    return bytes((DLE, DC4, 0x01, drawer - 1, units))


def status_requests(command_set: CommandSet) -> tuple[bytes, ...]:
    """Real-time status requests that print nothing, in the order their replies arrive."""
    if command_set is CommandSet.ESCPOS:
        # DLE EOT 1..4: printer, offline cause, error cause, paper (PROTOCOLS §2.1).
        return tuple(bytes((DLE, EOT, n)) for n in (1, 2, 3, 4))
    # ESC ACK SOH asks a Star printer for its automatic status (PROTOCOLS §2.5).
    return (bytes((ESC, ACK, SOH)),)
