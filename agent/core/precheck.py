"""Whether to kick now, judged from the printer's real-time status read just before (pure).

ESC p and Star BEL are buffered commands: a printer that is offline (cover open, paper out,
error) keeps them in its receive buffer and executes them when it is back online, which
may be minutes later, long after the ack said `opened`. Real-time status requests are
answered on receipt even offline (PROTOCOLS §2.1 `DLE EOT`, §2.5 `ESC ACK SOH`), so one
round trip before the kick tells whether a buffered kick would run now.

The rules, in order:
- no status reply: nothing is written; the attempt counts as unreachable (retried until
  the deadline), since a printer that stopped reading would also hold the kick;
- online: the normal kick;
- offline and the model has `DLE DC4 1 m t` (executed on receipt even offline, §1.2):
  the real-time pulse, unless the printer reports an error, in which state it ignores
  DLE DC4 (§1.2 "ignored in error state");
- otherwise: no kick, with the cause (cover open, paper out, printer error, offline).

After the kick, the confirm reply (the same real-time status) is checked too: see
`check_confirm`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from agent.core.commands import (
    ACK,
    DLE,
    EOT,
    ESC,
    SOH,
    CommandSet,
    drawer_kick,
    realtime_drawer_kick,
)
from agent.core.status import (
    Paper,
    PrinterStatus,
    StatusError,
    parse_dle_eot,
    parse_star_asb,
    valid_dle_eot_byte,
)

# The detail of an ack whose pulse was the real-time form.
REALTIME_DETAIL = "realtime: the printer was offline ({cause}), so DLE DC4 1 was sent"


class Verdict(enum.StrEnum):
    """What the pre-check decided."""

    PROCEED = "proceed"  # online: the normal (buffered) kick
    REALTIME = "realtime"  # offline: the real-time pulse, which is not buffered
    REFUSE = "refuse"  # offline and no real-time pulse possible: no kick at all
    NO_REPLY = "no_reply"  # no status reply: nothing written, retry until the deadline


@dataclass(frozen=True)
class Decision:
    """The pre-check's verdict and, when the printer is offline, why."""

    verdict: Verdict
    cause: str = ""

    @property
    def kicks(self) -> bool:
        """True when a pulse is written."""
        return self.verdict in (Verdict.PROCEED, Verdict.REALTIME)

    def detail(self) -> str:
        """What the ack's `detail` says about the pre-check (empty for a normal kick)."""
        if self.verdict is Verdict.REALTIME:
            return REALTIME_DETAIL.format(cause=self.cause)
        if self.verdict is Verdict.REFUSE:
            return (
                f"the printer is offline ({self.cause}); a kick would wait in its buffer "
                "and open the drawer late, so none was sent"
            )
        if self.verdict is Verdict.NO_REPLY:
            return "no status reply before the kick; nothing sent"
        return ""


def request(command_set: CommandSet) -> bytes:
    """The real-time status request sent before the kick: one reply, one round trip.

    ESC/POS: `DLE EOT 1` (online, drawer; every ESC/POS printer answers it, §2.1). Only
    when it says offline is `CAUSE_REQUEST` sent too, for the cause. Star: `ESC ACK SOH`,
    whose ASB carries all of it (§2.5).
    """
    if command_set is CommandSet.ESCPOS:
        return bytes((DLE, EOT, 1))
    return bytes((ESC, ACK, SOH))


# DLE EOT 2, "offline cause": cover open, stopped by a paper end, error (§2.1 n=2).
CAUSE_REQUEST = bytes((DLE, EOT, 2))


def needs_cause(command_set: CommandSet, reply: bytes | None) -> bool:
    """True when an ESC/POS printer said offline in DLE EOT 1 and the cause is not asked yet."""
    return (
        command_set is CommandSet.ESCPOS
        and reply is not None
        and len(reply) == 1
        and valid_dle_eot_byte(reply[0])
        and bool(reply[0] & 0x08)
    )


def parse(command_set: CommandSet, reply: bytes) -> PrinterStatus:
    """Decode the pre-check (or confirm) reply; StatusError when it is not a status frame.

    For ESC/POS only the leading well-formed DLE EOT bytes count (§2.1 pattern 0xx1xx10).
    """
    if command_set is CommandSet.ESCPOS:
        count = 0
        while count < min(len(reply), 2) and valid_dle_eot_byte(reply[count]):
            count += 1
        return parse_dle_eot(reply[: max(1, count)])
    return parse_star_asb(reply)


def causes(status: PrinterStatus) -> str:
    """Why a printer is offline, as far as its status says."""
    found = []
    if status.cover_open:
        found.append("cover open")
    if status.paper is Paper.OUT:
        found.append("paper out")
    if status.error:
        found.append("printer error")
    return ", ".join(found) or "offline"


def decide(status: PrinterStatus | None, *, realtime_allowed: bool) -> Decision:
    """The pre-check: kick, real-time pulse, or no kick (see the module docstring)."""
    if status is None:
        return Decision(Verdict.NO_REPLY)
    if status.online:
        return Decision(Verdict.PROCEED)
    cause = causes(status)
    # DLE DC4 fn=1 "is ignored in error state" (§1.2): an erroring printer would not pulse.
    if realtime_allowed and not status.error:
        return Decision(Verdict.REALTIME, cause)
    return Decision(Verdict.REFUSE, cause)


def decide_reply(
    command_set: CommandSet, reply: bytes | None, *, realtime_allowed: bool
) -> Decision:
    """`decide` on a raw reply: None or a frame that is not status counts as no reply."""
    if not reply:
        return decide(None, realtime_allowed=realtime_allowed)
    try:
        status = parse(command_set, reply)
    except StatusError:
        return decide(None, realtime_allowed=realtime_allowed)
    return decide(status, realtime_allowed=realtime_allowed)


def kick_bytes(
    decision: Decision,
    command_set: CommandSet,
    drawer: int,
    pulse_on_ms: int,
    pulse_off_ms: int,
) -> bytes:
    """The bytes to write for this decision: the kick, the real-time pulse, or nothing."""
    if decision.verdict is Verdict.PROCEED:
        return drawer_kick(command_set, drawer, pulse_on_ms, pulse_off_ms)
    if decision.verdict is Verdict.REALTIME:
        return realtime_drawer_kick(drawer, pulse_on_ms)
    return b""


class AfterKick(enum.StrEnum):
    """What the confirm reply after the kick says about it."""

    CLEAN = "clean"  # online after the kick: it ran (or the real-time pulse was expected)
    UNCONFIRMED = "unconfirmed"  # no (readable) reply: nothing known either way
    HELD = "held"  # offline right after a buffered kick: it may be waiting in the buffer


@dataclass(frozen=True)
class ConfirmCheck:
    """The verdict on the confirm reply and the ack detail it calls for."""

    result: AfterKick
    detail: str = ""


def check_confirm(decision: Decision, command_set: CommandSet, reply: bytes | None) -> ConfirmCheck:
    """Judge the confirm reply read right after the kick.

    A real-time status reply proves the printer read the kick before it (§2.1, §2.5). If
    it says offline after a buffered kick (PROCEED), the printer went offline between the
    pre-check and the kick, and the kick may sit in its buffer until the cover is closed:
    the ack must not say `opened`. Chosen: `failed` with "delivery uncertain" (the
    contract's word for "maybe pulsed, maybe later, never retried"), naming the cause.
    After a real-time pulse the printer is expected to still be offline: that is clean.
    """
    if not reply:
        return ConfirmCheck(AfterKick.UNCONFIRMED)
    try:
        status = parse(command_set, reply)
    except StatusError:
        return ConfirmCheck(AfterKick.UNCONFIRMED, "unconfirmed: the status reply was not readable")
    if status.online or decision.verdict is Verdict.REALTIME:
        return ConfirmCheck(AfterKick.CLEAN)
    cause = causes(status)
    return ConfirmCheck(
        AfterKick.HELD,
        "the printer reported offline"
        + ("" if cause == "offline" else f" ({cause})")
        + " right after the kick, which may wait in its buffer and open the drawer when it "
        "is back online",
    )
