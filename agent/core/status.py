"""Printer status replies decoded into one value (pure).

ESC/POS `DLE EOT n` bits are in ../shared/PROTOCOLS.md §2.1, Star ASB in §2.5.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from agent.core.commands import CommandSet


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


def vendor_open_level(command_set: CommandSet) -> str:
    """The sensor level that means "drawer open" when the config does not say: the vendor's.

    A drawer's switch may close or open the sensor circuit when the drawer opens, so every
    SDK lets the application choose; what each vendor's SDK assumes by default is the best
    guess for the drawers sold with its printers. Still verify on site (§2.1).
    """
    if command_set.is_star:
        # Star: the StarPRNT SDK's StarIoExtManager has `_CashDrawerOpenActiveHigh = true` and
        # reports "open" when `CompulsionSwitch == CashDrawerOpenActiveHigh` (star-micronics/
        # StarPRNT-SDK-Windows-Desktop SDK/StarPRNTSDK/Communications/StarIoExtManager.cs
        # @2416a9e); the Android sample stores `true` for models that offer no choice, the
        # mPOP among them (StarPRNT-SDK-Android-Java SearchPortFragment.java @8bbd354). So the
        # ASB compulsion-switch bit, which Star's spec labels "closed", SET means drawer OPEN.
        return "high"
    # ESC/POS: Epson ePOS SDK for JavaScript, Printer object, drawerOpenLevel property:
    # "DRAWER_OPEN_LEVEL_LOW (default) - HIGH -> LOW: ondraweropen event is generated"
    # (download4.epson.biz/sec_pubs/pos/reference_en/epos_js/
    # ref_epos_sdk_js_en_printerobject_draweropenlevelproperty.html). DLE EOT 1 bit 2 is
    # "drawer kick-out connector pin 3 HIGH" (§2.1), so bit 2 CLEAR means drawer OPEN.
    return "low"


def open_level(configured: str | None, command_set: CommandSet) -> str:
    """`printers.<id>.drawer_open_level` when set, else the command set's vendor default."""
    return configured if configured is not None else vendor_open_level(command_set)


class StatusError(ValueError):
    """A reply that is not a valid status frame."""


def valid_dle_eot_byte(b: int) -> bool:
    """Every DLE EOT reply byte matches 0xx1xx10 (PROTOCOLS §2.1)."""
    return (b & 0x93) == 0x12


def parse_dle_eot(reply: bytes) -> PrinterStatus:
    """Decode the replies to DLE EOT 1, 2, 3, 4 sent in that order; 1 to 4 of them.

    Some clones answer only `DLE EOT 1` (PROTOCOLS §2.1 n=1 is the one every ESC/POS
    printer has): that byte alone says online and drawer; what the missing replies would
    have said (cover, error, paper) stays unknown (None), it is not "fine".
    """
    if not 1 <= len(reply) <= 4:
        raise StatusError(f"expected 1 to 4 DLE EOT reply bytes, got {len(reply)}")
    if not all(valid_dle_eot_byte(b) for b in reply):
        raise StatusError(f"not DLE EOT replies: {reply.hex(' ')}")
    printer = reply[0]
    offline, error, paper = (reply[i] if i < len(reply) else None for i in (1, 2, 3))
    paper_state = None
    if offline is not None and offline & 0x20:
        # DLE EOT 2 bit 5: "printing stopped due to a paper end" (§2.1 n=2): the roll is out,
        # which a reply to DLE EOT 1 and 2 alone (the pre-kick check) can tell.
        paper_state = Paper.OUT
    elif paper is not None:
        if paper & 0x60:
            paper_state = Paper.OUT
        elif paper & 0x0C:
            # Some clones set only one of each bit pair (PROTOCOLS §2.1 n=4), so test either.
            paper_state = Paper.NEAR_END
        else:
            paper_state = Paper.OK
    errors = None
    if offline is not None:
        errors = bool(offline & 0x40) or (error is not None and bool(error & 0x68))
    return PrinterStatus(
        online=not printer & 0x08,
        paper=paper_state,
        cover_open=None if offline is None else bool(offline & 0x04),
        error=errors,
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
        # Status 1 bit 2 is the compulsion switch, set when the spec says "closed" (§2.5);
        # which drawer state that is comes from vendor_open_level / the config.
        drawer_pin_high=bool(s1 & 0x04),
    )
