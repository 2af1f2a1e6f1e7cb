"""Printer status replies decoded into one value (pure).

ESC/POS `DLE EOT n` bits are in ../shared/PROTOCOLS.md §2.1, Star ASB in §2.5.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Paper(enum.StrEnum):
    """Roll paper state."""

    OK = "ok"
    NEAR_END = "near_end"
    OUT = "out"


@dataclass(frozen=True)
class PrinterStatus:
    """What a status query told us; None where the printer did not say."""

    online: bool
    paper: Paper | None = None
    cover_open: bool | None = None
    error: bool | None = None
    drawer_pin_high: bool | None = None

    def drawer_open(self, open_level: str) -> bool | None:
        """Drawer state from the sensor; `open_level` ("low"|"high") depends on the wiring."""
        if self.drawer_pin_high is None:
            return None
        return self.drawer_pin_high if open_level == "high" else not self.drawer_pin_high


class StatusError(ValueError):
    """A reply that is not a valid status frame."""


def valid_dle_eot_byte(b: int) -> bool:
    """Every DLE EOT reply byte matches 0xx1xx10 (PROTOCOLS §2.1)."""
    return (b & 0x93) == 0x12


def parse_dle_eot(reply: bytes) -> PrinterStatus:
    """Decode the four replies to DLE EOT 1, 2, 3, 4 sent in that order."""
    if len(reply) != 4:
        raise StatusError(f"expected 4 DLE EOT reply bytes, got {len(reply)}")
    if not all(valid_dle_eot_byte(b) for b in reply):
        raise StatusError(f"not DLE EOT replies: {reply.hex(' ')}")
    printer, offline, error, paper = reply
    if paper & 0x60:
        paper_state = Paper.OUT
    elif paper & 0x0C:
        # Some clones set only one of each bit pair (PROTOCOLS §2.1 n=4), so test either.
        paper_state = Paper.NEAR_END
    else:
        paper_state = Paper.OK
    return PrinterStatus(
        online=not printer & 0x08,
        paper=paper_state,
        cover_open=bool(offline & 0x04),
        error=bool(offline & 0x40) or bool(error & 0x68),
        drawer_pin_high=bool(printer & 0x04),
    )


def asb_length(header: int) -> int:
    """Total ASB frame length from header 1 (PROTOCOLS §2.5)."""
    return ((header >> 1) & 0x07) | ((header >> 2) & 0x18)


def parse_star_asb(reply: bytes) -> PrinterStatus:
    """Decode a Star automatic status block (reply to ESC ACK SOH)."""
    if len(reply) < 7:
        raise StatusError(f"Star ASB needs at least 7 bytes, got {len(reply)}")
    header = reply[0]
    if header & 0x91 != 0x01:
        raise StatusError(f"not a Star ASB header: {header:#04x}")
    n = asb_length(header)
    if n < 7 or len(reply) < n:
        raise StatusError(f"Star ASB header announces {n} bytes, got {len(reply)}")
    s1, s2, s4 = reply[2], reply[3], reply[5]
    if s4 & 0x08:
        paper_state = Paper.OUT
    elif s4 & 0x04:
        paper_state = Paper.NEAR_END
    else:
        paper_state = Paper.OK
    return PrinterStatus(
        online=not s1 & 0x08,
        paper=paper_state,
        cover_open=bool(s1 & 0x20),
        error=bool(s2 & 0x6C),
        # Bit 2 of status 1 is the compulsion switch ("closed" = pin HIGH) (§2.5).
        drawer_pin_high=bool(s1 & 0x04),
    )


def build_dle_eot(status: PrinterStatus) -> bytes:
    """Encode the four DLE EOT replies for `status` (used by the virtual printer)."""
    printer = 0x12 | (0x04 if status.drawer_pin_high else 0) | (0 if status.online else 0x08)
    offline = 0x12 | (0x04 if status.cover_open else 0) | (0x40 if status.error else 0)
    error = 0x12
    paper = 0x12 | {Paper.OUT: 0x6C, Paper.NEAR_END: 0x0C}.get(status.paper or Paper.OK, 0)
    return bytes((printer, offline, error, paper))


def build_star_asb(status: PrinterStatus) -> bytes:
    """Encode a 9-byte Star ASB for `status` (used by the virtual printer)."""
    s1 = (0x04 if status.drawer_pin_high else 0) | (0 if status.online else 0x08)
    s1 |= 0x20 if status.cover_open else 0
    s2 = 0x04 if status.error else 0
    s4 = {Paper.OUT: 0x08, Paper.NEAR_END: 0x04}.get(status.paper or Paper.OK, 0)
    # 0x23 announces 9 bytes; 0x86 = version 3 with ASB expansion off in this short form.
    return bytes((0x23, 0x06, s1, s2, 0x00, s4, 0x00, 0x00, 0x00))
