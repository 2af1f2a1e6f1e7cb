"""Replies to the identify probe: `DLE EOT 1` status and `GS I` printer information B."""

from __future__ import annotations

from dataclasses import dataclass

from discovery.core.identify import Clues, identify
from discovery.core.model import Sighting
from discovery.core.text import clean_text

# PROTOCOLS §2.1 / §2.4. Nothing else is ever sent: these cannot print or pulse.
DLE_EOT_PRINTER_STATUS = b"\x10\x04\x01"
GS_I_MAKER = b"\x1d\x49\x42"
GS_I_MODEL = b"\x1d\x49\x43"
GS_I_SERIAL = b"\x1d\x49\x44"
IDENTIFY_QUERIES = (GS_I_MAKER, GS_I_MODEL, GS_I_SERIAL)
GS_I_HEADER = 0x5F
GS_I_END = 0x00
MAX_REPLY = 128  # Epson allows 80 bytes of text, Bixolon 15 (PROTOCOLS §2.4)


def is_escpos_status(byte: int) -> bool:
    """A real-time status byte has the fixed pattern 0xx1xx10 (PROTOCOLS §2.1)."""
    return (byte & 0x93) == 0x12


def find_status(buffer: bytes) -> int | None:
    """The status byte when `buffer`, everything the port said after `DLE EOT 1`, is one.

    `DLE EOT 1` is answered with exactly one byte (PROTOCOLS §2.1), so only a lone,
    well-formed byte counts. Accepting a matching byte anywhere would call any chatty
    service a printer: "HTTP/1.1 400 Bad Request" holds "R" (0x52 = 0101 0010), and a
    telnet banner or a Star ASB sent before or instead of the reply is not an answer either.
    """
    if len(buffer) != 1 or not is_escpos_status(buffer[0]):
        return None
    return buffer[0]


def extract_gs_i(buffer: bytes) -> tuple[str | None, bool]:
    """Return (text, complete) for a `5F <ASCII> 00` reply anywhere in `buffer`."""
    start = buffer.find(bytes([GS_I_HEADER]))
    if start < 0:
        return None, False
    end = buffer.find(bytes([GS_I_END]), start + 1)
    if end < 0:
        return None, False
    return clean_text(buffer[start + 1 : end], 80), True


@dataclass(frozen=True)
class ProbeReply:
    """What a 9100 port told us; all None when identification was off or unanswered."""

    escpos: bool = False
    maker: str | None = None
    model: str | None = None
    serial: str | None = None


def to_sighting(host: str, port: int, reply: ProbeReply, now: float) -> Sighting:
    """An open 9100 port is a printer candidate even when it says nothing."""
    found = identify(Clues(mfg=reply.maker, mdl=reply.model))
    # The device's own ESC/POS status reply beats any model-name rule: a Star TSP654II
    # switched to ESC/POS emulation answers DLE EOT 1 and must be spoken to in ESC/POS.
    command_set = "escpos" if reply.escpos else found.command_set
    return Sighting(
        source="probe",
        host=host,
        seen_at=now,
        port=port,
        vendor=found.vendor,
        model=found.model,
        command_set=command_set,
        serial=reply.serial,
    )
