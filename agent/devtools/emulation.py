"""A virtual receipt printer's command decoder (pure): bytes in, pulses and replies out.

It understands one command set, as a real printer does: an ESC/POS printer ignores Star's
BEL and a Star printer does not know ESC p, so a wrong command set shows up in tests.

Everything it answers is encoded here from the vendors' manuals and SDKs, never from the
agent's own constants (agent.core.status/commands): a test in which both sides share an
assumption proves nothing. Sections are cited next to each encoder; the page links are
collected in ../shared/PROTOCOLS.md (§1 commands, §2.1 ESC/POS status, §2.5 Star ASB).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

ESCPOS = "escpos"
STAR_DIALECTS = frozenset({"star-line", "star-prnt", "star-graphic"})


class RollPaper(enum.StrEnum):
    """What the virtual roll-paper sensors see."""

    OK = "ok"
    NEAR_END = "near_end"
    OUT = "out"


# How the drawer's own switch drives the sensor input (ESC/POS connector pin 3, Star
# "compulsion switch") when the drawer is open, for the drawers each vendor's SDK assumes:
# - Epson ePOS SDK for JavaScript, Printer object, `drawerOpenLevel` property:
#   "DRAWER_OPEN_LEVEL_LOW (default): HIGH -> LOW: ondraweropen event is generated"
#   (https://download4.epson.biz/sec_pubs/pos/reference_en/epos_js/
#   ref_epos_sdk_js_en_printerobject_draweropenlevelproperty.html): open pulls pin 3 LOW.
# - Star StarPRNT SDK, StarIoExtManager `_CashDrawerOpenActiveHigh = true` and
#   `CompulsionSwitch == CashDrawerOpenActiveHigh` means open (star-micronics/
#   StarPRNT-SDK-Windows-Desktop SDK/StarPRNTSDK/Communications/StarIoExtManager.cs @2416a9e;
#   the Android sample registers `true` for models without the choice, SearchPortFragment.java
#   @8bbd354): open sets the compulsion-switch bit.
SENSOR_HIGH_WHEN_OPEN = {ESCPOS: False, **{d: True for d in STAR_DIALECTS}}


def dle_eot_reply(
    n: int,
    *,
    pin3_high: bool,
    online: bool,
    paper: RollPaper,
    cover_open: bool = False,
    error: bool = False,
) -> int | None:
    """The one-byte reply to ESC/POS `DLE EOT n` (n = 1..4), None for other n.

    Epson ESC/POS APG "DLE EOT n: Transmit real-time status" (TM-T88III Appendix G): every
    reply byte has bits 1 and 4 set and bits 0 and 7 clear (0xx1xx10).
    """
    byte = 0b0001_0010
    if n == 1:  # printer status: bit 2 = drawer kick-out connector pin 3 HIGH, bit 3 = offline
        byte |= (0x04 if pin3_high else 0) | (0 if online else 0x08)
    elif n == 2:  # offline cause: bit 2 = cover open, bit 5 = stopped by a paper end, 6 = error
        byte |= 0x04 if cover_open else 0
        byte |= 0x20 if paper == RollPaper.OUT else 0
        byte |= 0x40 if error else 0
    elif n == 3:  # error cause: autocutter (bit 3), unrecoverable (5), auto-recoverable (6)
        byte |= 0x40 if error else 0
    elif n == 4:  # roll paper sensor: bits 2,3 = near end, bits 5,6 = paper end
        byte |= {RollPaper.OUT: 0x6C, RollPaper.NEAR_END: 0x0C}.get(paper, 0)
    else:
        return None
    return byte


def star_asb(
    *,
    switch_set: bool,
    online: bool,
    paper: RollPaper,
    cover_open: bool = False,
    error: bool = False,
) -> bytes:
    """A 9-byte Star automatic status, as sent for `ESC ACK SOH`.

    STAR Line Mode Command Specifications, "Automatic Status" (and STAR Command Spec Rev 0.70
    pp. 5-2..5-5): header 1 carries the byte count in bits 1-3 and 5 (bits 3-4 of the count
    sit in bits 5-6) with bit 0 set; header 2 the version the same way (3 here, no expansion);
    printer status 1 bit 2 = compulsion switch, bit 3 = off-line, bit 5 = cover open;
    status 2 bit 6 = stopped by high head temperature (an auto-recoverable error);
    status 4 (sixth byte) bit 2 = paper near-end, bit 3 = paper end (Line Mode spec p.5-9).
    """
    count, version = 9, 3
    header1 = ((count & 0x07) << 1) | ((count & 0x18) << 2) | 0x01
    header2 = ((version & 0x07) << 1) | ((version & 0x18) << 2)
    status1 = (0x04 if switch_set else 0) | (0 if online else 0x08) | (0x20 if cover_open else 0)
    status2 = 0x40 if error else 0
    status4 = {RollPaper.OUT: 0x08, RollPaper.NEAR_END: 0x04}.get(paper, 0)
    return bytes((header1, header2, status1, status2, 0x00, status4, 0x00, 0x00, 0x00))


@dataclass(frozen=True)
class Pulse:
    """One drawer pulse the virtual printer would have driven."""

    drawer: int
    on_ms: int
    off_ms: int
    realtime: bool
    at: float
    # A buffered kick that waited in the receive buffer while the printer was offline and
    # ran when it came back online: the late opening the agent must never cause.
    late: bool = False


@dataclass
class VirtualPrinter:
    """State of one emulated printer; `feed()` may be called with any chunking.

    `command_set` is "escpos", "star-line", "star-prnt" or "star-graphic".
    `sensor_high_when_open` describes the attached drawer's switch; None = the drawer that
    vendor's SDK assumes by default (SENSOR_HIGH_WHEN_OPEN). `answers_dle_eot` lists the
    `DLE EOT n` a clone answers: some answer only n = 1 and stay silent for 2-4.

    Offline (Epson TM-T88IV TRG §3.4.3 "Offline": the printer goes offline while the roll
    paper cover is open, when it stops printing at a paper end, when an error occurred;
    `online = False` stands for the other causes, e.g. paper fed by the FEED button), a
    printer keeps receiving: real-time commands (`DLE EOT`, `DLE DC4`, Star `ESC ACK SOH`)
    are executed on receipt, everything else waits in the receive buffer and runs when the
    printer is back online (`set_state`). A kick held that way is counted in `held_kicks`
    and, once it runs, is a `late` pulse. Star: the Line Mode spec's ASB has the same
    offline and cover bits (p.5-9); that a Star printer buffers BEL while offline is the
    same receive-buffer behaviour [U: not stated in Star's spec].
    """

    command_set: str
    open_for_s: float = 3.0
    vendor: str = "EPSON"
    model: str = "TM-T20III"
    serial: str = "X5E0000001"
    paper: RollPaper = RollPaper.OK
    online: bool = True
    cover_open: bool = False
    error: bool = False
    sensor_high_when_open: bool | None = None
    answers_dle_eot: frozenset[int] = frozenset({1, 2, 3, 4})
    pulses: list[Pulse] = field(default_factory=list)
    dle_eot_asked: list[int] = field(default_factory=list)
    # Every buffered kick command received (ESC p, BEL, SUB, EM, ESC * r D), run or held.
    kicks_received: int = 0
    # Of those, the ones received while offline: held in the receive buffer.
    held_kicks: int = 0
    printed: int = 0
    _buf: bytearray = field(default_factory=bytearray)
    _held: bytearray = field(default_factory=bytearray)
    _replaying: bool = False
    _star_width: tuple[int, int] = (20, 20)
    _last_pulse_at: float | None = None

    def __post_init__(self) -> None:
        if self.command_set not in SENSOR_HIGH_WHEN_OPEN:
            raise ValueError(f"unknown command set {self.command_set!r}")
        if self.sensor_high_when_open is None:
            self.sensor_high_when_open = SENSOR_HIGH_WHEN_OPEN[str(self.command_set)]

    @property
    def offline(self) -> bool:
        """Offline for any of the TRG's causes (see the class docstring)."""
        return not self.online or self.cover_open or self.paper == RollPaper.OUT or self.error

    @property
    def held(self) -> bytes:
        """Buffered commands waiting for the printer to come back online."""
        return bytes(self._held)

    def set_state(
        self,
        now: float,
        *,
        online: bool | None = None,
        cover_open: bool | None = None,
        paper: RollPaper | None = None,
        error: bool | None = None,
    ) -> bytes:
        """Change the printer's state; back online, it runs what waited in its buffer.

        Returns the replies those held commands produce (GS I, GS r).
        """
        if online is not None:
            self.online = online
        if cover_open is not None:
            self.cover_open = cover_open
        if paper is not None:
            self.paper = paper
        if error is not None:
            self.error = error
        if self.offline or not self._held:
            return b""
        held, self._held = bytes(self._held), bytearray()
        pending, self._buf = bytes(self._buf), bytearray()
        self._replaying = True
        try:
            out = self.feed(held, now)
        finally:
            self._replaying = False
        return out + self.feed(pending, now)

    def drawer_open(self, now: float) -> bool:
        """The drawer reads open for `open_for_s` after a pulse."""
        return self._last_pulse_at is not None and now - self._last_pulse_at < self.open_for_s

    def sensor_high(self, now: float) -> bool:
        """Level of the drawer sensor input right now, given the drawer's wiring."""
        return self.drawer_open(now) == self.sensor_high_when_open

    def feed(self, data: bytes, now: float) -> bytes:
        """Consume bytes; return the reply bytes the printer sends back."""
        self._buf += data
        out = bytearray()
        decode = self._escpos if self.command_set == ESCPOS else self._star
        while self._buf:
            used = decode(now, out)
            if used == 0:
                break  # incomplete command: wait for more bytes
            del self._buf[:used]
        return bytes(out)

    def _buffered(self, used: int, kick: bool) -> bool:
        """A buffered command of `used` bytes arrived: True to run it now, False if held."""
        if kick:
            self.kicks_received += 0 if self._replaying else 1
        if not self.offline:
            return True
        self._held += self._buf[:used]
        self.held_kicks += int(kick)
        return False

    def _pulse(self, drawer: int, on_ms: int, off_ms: int, realtime: bool, now: float) -> None:
        self.pulses.append(Pulse(drawer, on_ms, off_ms, realtime, now, late=self._replaying))
        self._last_pulse_at = now

    def _dle_eot(self, n: int, now: float) -> int | None:
        return dle_eot_reply(
            n,
            pin3_high=self.sensor_high(now),
            online=not self.offline,
            paper=self.paper,
            cover_open=self.cover_open,
            error=self.error,
        )

    def _escpos(self, now: float, out: bytearray) -> int:
        b = self._buf
        if b[0] == 0x1B:  # ESC
            if len(b) < 2:
                return 0
            if b[1] == 0x70:  # ESC p m t1 t2: Epson APG "ESC p: Generate pulse"
                if len(b) < 5:
                    return 0
                m, t1, t2 = b[2], b[3], b[4]
                if m in (0, 1, 48, 49):
                    # m 0/48 = pin 2, 1/49 = pin 5; ON t1 x 2 ms, OFF t2 x 2 ms, and if
                    # t2 < t1 the OFF time equals the ON time.
                    if self._buffered(5, kick=True):
                        self._pulse(m % 48 + 1, t1 * 2, max(t1, t2) * 2, False, now)
                    return 5
                return 2  # out-of-range m cancels the command; the rest is processed as data
            if b[1] in (0x3D, 0x74, 0x21, 0x61):  # ESC = n, ESC t n, ...: one parameter
                if len(b) < 3:
                    return 0
                self._buffered(3, kick=False)
                return 3
            self._buffered(2, kick=False)
            return 2
        if b[0] == 0x10:  # DLE
            if len(b) < 3:
                return 0
            if b[1] == 0x04:  # DLE EOT n: answered on receipt, even offline (Epson APG "DLE EOT")
                self.dle_eot_asked.append(b[2])
                if b[2] in self.answers_dle_eot:
                    reply = self._dle_eot(b[2], now)
                    if reply is not None:
                        out.append(reply)
                return 3
            if b[1] == 0x14:  # DLE DC4 fn m t: Epson APG "DLE DC4 fn=1: real-time pulse"
                if len(b) < 5:
                    return 0
                # Only fn = 1 pulses (m 0 = pin 2, 1 = pin 5; ON = OFF = t x 100 ms, 1 <= t <= 8),
                # executed on receipt even offline, but ignored in an error state (§1.2).
                if b[2] == 1 and b[3] in (0, 1) and 1 <= b[4] <= 8 and not self.error:
                    self._pulse(b[3] + 1, b[4] * 100, b[4] * 100, True, now)
                return 5
            self._buffered(2, kick=False)
            return 2
        if b[0] == 0x1D:  # GS
            if len(b) < 3:
                return 0
            # GS I and GS r are processed in buffer order, so an offline printer holds them
            # (Epson GS r notes, PROTOCOLS §2.1 "Other practical notes").
            if self._buffered(3, kick=False):
                if b[1] == 0x49:  # GS I n: Epson APG "GS I: Transmit printer ID"
                    out += self._printer_info(b[2])
                elif b[1] == 0x72 and b[2] in (2, 0x32):  # GS r 2: drawer, bit 0 = pin 3 HIGH
                    out.append(0x01 if self.sensor_high(now) else 0x00)
            return 3
        if self._buffered(1, kick=False):
            self.printed += 1
        return 1

    def _printer_info(self, n: int) -> bytes:
        # Printer information B (n = 65..69): header 5F, ASCII text, NUL (Epson APG "GS I").
        info = {0x41: "1.00", 0x42: self.vendor, 0x43: self.model, 0x44: self.serial}
        if n in info:
            return b"\x5f" + info[n].encode() + b"\x00"
        if n in (1, 0x31):
            return b"\x20"  # printer model ID of the TM-T88 class
        return b""

    def _star(self, now: float, out: bytearray) -> int:
        b = self._buf
        if b[0] == 0x1B:
            if len(b) < 2:
                return 0
            if b[1] == 0x07:  # ESC BEL n1 n2: STAR Line Mode "Set external device 1 pulse width"
                if len(b) < 4:
                    return 0
                # 10 ms units, 1..127; a 0 makes the printer ignore the command, more clamps.
                if self._buffered(4, kick=False) and b[2] and b[3]:
                    self._star_width = (min(b[2], 127), min(b[3], 127))
                return 4
            if b[1] == 0x06:  # ESC ACK SOH: STAR Line Mode "Automatic status request"
                if len(b) < 3:
                    return 0
                if b[2] == 0x01:  # answered on receipt (real-time), even offline
                    out += star_asb(
                        switch_set=self.sensor_high(now),
                        online=not self.offline,
                        paper=self.paper,
                        cover_open=self.cover_open,
                        error=self.error,
                    )
                return 3
            if b[1] == 0x2A:  # ESC * r D n NUL: STAR Line Mode p.3-93, raster drawer drive
                if len(b) < 6:
                    return 0
                if b[2:4] == b"rD":
                    n = b[4] - 0x30  # ASCII: 1 = device 1, 2 = device 2, 3 = both
                    if self._buffered(6, kick=n in (1, 2, 3)):
                        if n in (1, 3):
                            self._pulse(
                                1, self._star_width[0] * 10, self._star_width[1] * 10, False, now
                            )
                        elif n == 2:
                            self._pulse(2, 200, 200, False, now)
                else:
                    self._buffered(6, kick=False)
                return 6
            self._buffered(2, kick=False)
            return 2
        if b[0] == 0x1C:  # FS: drive external device 1 in real time (STAR dot-impact Rev 0.70)
            self._pulse(1, self._star_width[0] * 10, self._star_width[1] * 10, True, now)
            return 1
        if b[0] == 0x07:  # BEL: drive external device 1, buffered (in order)
            if self._buffered(1, kick=True):
                self._pulse(1, self._star_width[0] * 10, self._star_width[1] * 10, False, now)
            return 1
        if b[0] in (0x1A, 0x19):  # SUB / EM: external device 2, fixed 200 ms
            if self._buffered(1, kick=True):
                self._pulse(2, 200, 200, False, now)
            return 1
        if b[0] == 0x05:  # ENQ (STAR Command Spec Rev 0.70 App. 5-1): bit 7 = compulsion SW
            out.append(0x80 if self.sensor_high(now) else 0x00)
            return 1
        if b[0] == 0x04:  # EOT: bit 4 fixed 1, bit 3 = paper end
            out.append(0x10 | (0x08 if self.paper == RollPaper.OUT else 0))
            return 1
        if self._buffered(1, kick=False):
            self.printed += 1
        return 1
