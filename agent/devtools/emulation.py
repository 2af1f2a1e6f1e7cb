"""A virtual receipt printer's command decoder (pure): bytes in, pulses and replies out.

It understands one command set, as a real printer does: an ESC/POS printer ignores Star's
BEL and a Star printer does not know ESC p, so a wrong command set shows up in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.core.commands import CommandSet
from agent.core.status import Paper, PrinterStatus, build_dle_eot, build_star_asb


@dataclass(frozen=True)
class Pulse:
    """One drawer pulse the virtual printer would have driven."""

    drawer: int
    on_ms: int
    off_ms: int
    realtime: bool
    at: float


@dataclass
class VirtualPrinter:
    """State of one emulated printer; `feed()` may be called with any chunking."""

    command_set: CommandSet
    open_for_s: float = 3.0
    vendor: str = "EPSON"
    model: str = "TM-T20III"
    serial: str = "X5E0000001"
    paper: Paper = Paper.OK
    online: bool = True
    pulses: list[Pulse] = field(default_factory=list)
    printed: int = 0
    _buf: bytearray = field(default_factory=bytearray)
    _star_width: tuple[int, int] = (20, 20)
    _last_pulse_at: float | None = None

    def drawer_open(self, now: float) -> bool:
        """The drawer reads open for `open_for_s` after a pulse."""
        return self._last_pulse_at is not None and now - self._last_pulse_at < self.open_for_s

    def status(self, now: float) -> PrinterStatus:
        """Status as the sensors would report it; the switch reads LOW while open."""
        return PrinterStatus(
            online=self.online,
            paper=self.paper,
            cover_open=False,
            error=False,
            drawer_pin_high=not self.drawer_open(now),
        )

    def feed(self, data: bytes, now: float) -> bytes:
        """Consume bytes; return the reply bytes the printer sends back."""
        self._buf += data
        out = bytearray()
        decode = self._escpos if self.command_set is CommandSet.ESCPOS else self._star
        while self._buf:
            used = decode(now, out)
            if used == 0:
                break  # incomplete command: wait for more bytes
            del self._buf[:used]
        return bytes(out)

    def _pulse(self, drawer: int, on_ms: int, off_ms: int, realtime: bool, now: float) -> None:
        self.pulses.append(Pulse(drawer, on_ms, off_ms, realtime, now))
        self._last_pulse_at = now

    def _escpos(self, now: float, out: bytearray) -> int:
        b = self._buf
        if b[0] == 0x1B:  # ESC
            if len(b) < 2:
                return 0
            if b[1] == 0x70:  # ESC p m t1 t2 (PROTOCOLS §1.1)
                if len(b) < 5:
                    return 0
                m, t1, t2 = b[2], b[3], b[4]
                if m in (0, 1, 48, 49):
                    # If t2 < t1 the OFF time equals the ON time.
                    self._pulse(m % 48 + 1, t1 * 2, max(t1, t2) * 2, False, now)
                    return 5
                return 2  # out-of-range m cancels the command
            if b[1] in (0x3D, 0x74, 0x21, 0x61):  # ESC = n, ESC t n, ...: one parameter
                return 3 if len(b) >= 3 else 0
            return 2
        if b[0] == 0x10:  # DLE
            if len(b) < 3:
                return 0
            if b[1] == 0x04 and 1 <= b[2] <= 4:  # DLE EOT n (§2.1)
                out.append(build_dle_eot(self.status(now))[b[2] - 1])
                return 3
            if b[1] == 0x14:  # DLE DC4 fn m t (§1.2)
                if len(b) < 5:
                    return 0
                if b[2] == 1 and b[3] in (0, 1) and 1 <= b[4] <= 8:
                    self._pulse(b[3] + 1, b[4] * 100, b[4] * 100, True, now)
                return 5
            return 2
        if b[0] == 0x1D:  # GS
            if len(b) < 3:
                return 0
            if b[1] == 0x49:  # GS I n (§2.4)
                out += self._printer_info(b[2])
            elif b[1] == 0x72 and b[2] in (2, 0x32):  # GS r 2: drawer, bit 0 = pin 3 HIGH
                out.append(0x00 if self.drawer_open(now) else 0x01)
            return 3
        self.printed += 1
        return 1

    def _printer_info(self, n: int) -> bytes:
        info = {0x41: "1.00", 0x42: self.vendor, 0x43: self.model, 0x44: self.serial}
        if n in info:
            return b"\x5f" + info[n].encode() + b"\x00"
        if n in (1, 0x31):
            return b"\x20"
        return b""

    def _star(self, now: float, out: bytearray) -> int:
        b = self._buf
        if b[0] == 0x1B:
            if len(b) < 2:
                return 0
            if b[1] == 0x07:  # ESC BEL n1 n2 (§1.3)
                if len(b) < 4:
                    return 0
                if b[2] and b[3]:
                    self._star_width = (min(b[2], 127), min(b[3], 127))
                return 4
            if b[1] == 0x06:  # ESC ACK SOH → ASB (§2.5)
                if len(b) < 3:
                    return 0
                if b[2] == 0x01:
                    out += build_star_asb(self.status(now))
                return 3
            if b[1] == 0x2A:  # ESC * r D n NUL (§1.3 raster drive)
                if len(b) < 6:
                    return 0
                if b[2:4] == b"rD":
                    n = b[4] - 0x30
                    if n in (1, 3):
                        self._pulse(
                            1, self._star_width[0] * 10, self._star_width[1] * 10, False, now
                        )
                    elif n == 2:
                        self._pulse(2, 200, 200, False, now)
                return 6
            return 2
        if b[0] in (0x07, 0x1C):  # BEL (buffered) / FS (real time): device 1
            self._pulse(1, self._star_width[0] * 10, self._star_width[1] * 10, b[0] == 0x1C, now)
            return 1
        if b[0] in (0x1A, 0x19):  # SUB / EM: device 2, fixed 200 ms
            self._pulse(2, 200, 200, False, now)
            return 1
        if b[0] == 0x05:  # ENQ: bit 7 = compulsion switch closed
            out.append(0x00 if self.drawer_open(now) else 0x80)
            return 1
        if b[0] == 0x04:  # EOT: paper
            out.append(0x10 | (0x08 if self.paper is Paper.OUT else 0))
            return 1
        self.printed += 1
        return 1
