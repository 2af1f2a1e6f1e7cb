"""The pre-kick status check and the confirm check (pure), on replies the emulator encodes."""

import pytest

from agent.core.commands import CommandSet, drawer_kick, realtime_drawer_kick
from agent.core.precheck import (
    CAUSE_REQUEST,
    AfterKick,
    Decision,
    Verdict,
    check_confirm,
    decide,
    decide_reply,
    kick_bytes,
    needs_cause,
    parse,
    request,
)
from agent.core.status import Paper, PrinterStatus
from agent.devtools.emulation import RollPaper, dle_eot_reply, star_asb

ESCPOS, STAR = CommandSet.ESCPOS, CommandSet.STAR_LINE


def escpos_reply(*, online=True, cover=False, paper=RollPaper.OK, error=False, n=(1, 2)):
    offline = not online or cover or paper == RollPaper.OUT or error
    return bytes(
        dle_eot_reply(
            i, pin3_high=True, online=not offline, paper=paper, cover_open=cover, error=error
        )
        for i in n
    )


def star_reply(*, online=True, cover=False, paper=RollPaper.OK, error=False):
    offline = not online or cover or paper == RollPaper.OUT or error
    return star_asb(
        switch_set=False, online=not offline, paper=paper, cover_open=cover, error=error
    )


@pytest.mark.parametrize(
    ("command_set", "reply", "realtime", "verdict", "cause"),
    [
        (ESCPOS, escpos_reply(), False, Verdict.PROCEED, ""),
        (ESCPOS, escpos_reply(), True, Verdict.PROCEED, ""),
        (ESCPOS, escpos_reply(paper=RollPaper.NEAR_END), False, Verdict.PROCEED, ""),
        (ESCPOS, escpos_reply(cover=True), True, Verdict.REALTIME, "cover open"),
        (ESCPOS, escpos_reply(paper=RollPaper.OUT), True, Verdict.REALTIME, "paper out"),
        (ESCPOS, escpos_reply(cover=True), False, Verdict.REFUSE, "cover open"),
        (ESCPOS, escpos_reply(paper=RollPaper.OUT), False, Verdict.REFUSE, "paper out"),
        # DLE DC4 is ignored in error state (PROTOCOLS §1.2): refused even where allowed.
        (ESCPOS, escpos_reply(error=True), True, Verdict.REFUSE, "printer error"),
        (ESCPOS, escpos_reply(online=False), False, Verdict.REFUSE, "offline"),
        # A clone that answers DLE EOT 1 only: offline, cause unknown.
        (ESCPOS, escpos_reply(cover=True, n=(1,)), False, Verdict.REFUSE, "offline"),
        (ESCPOS, escpos_reply(cover=True, n=(1,)), True, Verdict.REALTIME, "offline"),
        (ESCPOS, escpos_reply(n=(1,)), False, Verdict.PROCEED, ""),
        (ESCPOS, b"", False, Verdict.NO_REPLY, ""),
        (ESCPOS, b"HTTP/1.1 400", False, Verdict.NO_REPLY, ""),  # not a status frame
        (STAR, star_reply(), False, Verdict.PROCEED, ""),
        (STAR, star_reply(cover=True), False, Verdict.REFUSE, "cover open"),
        (STAR, star_reply(paper=RollPaper.OUT), False, Verdict.REFUSE, "paper out"),
        (STAR, star_reply(error=True), False, Verdict.REFUSE, "printer error"),
        (STAR, star_reply()[:5], False, Verdict.NO_REPLY, ""),  # truncated ASB
    ],
)
def test_decide(command_set, reply, realtime, verdict, cause):
    decision = decide_reply(command_set, reply, realtime_allowed=realtime)
    assert decision == Decision(verdict, cause)
    assert decision.kicks is (verdict in (Verdict.PROCEED, Verdict.REALTIME))


def test_no_status_is_no_reply():
    assert decide(None, realtime_allowed=True).verdict is Verdict.NO_REPLY


def test_online_governs_even_with_stale_cause_bits():
    # Buffered commands run whenever the printer is online, whatever else it reports.
    status = PrinterStatus(online=True, paper=Paper.OUT, cover_open=True, error=True)
    assert decide(status, realtime_allowed=False).verdict is Verdict.PROCEED


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        (Verdict.PROCEED, drawer_kick(ESCPOS, 2, 100, 500)),
        (Verdict.REALTIME, realtime_drawer_kick(2, 100)),
        (Verdict.REFUSE, b""),
        (Verdict.NO_REPLY, b""),
    ],
)
def test_kick_bytes(verdict, expected):
    assert kick_bytes(Decision(verdict, "x"), ESCPOS, 2, 100, 500) == expected


def test_details_name_the_form_and_the_cause():
    assert "realtime" in Decision(Verdict.REALTIME, "paper out").detail()
    assert "cover open" in Decision(Verdict.REFUSE, "cover open").detail()
    assert Decision(Verdict.PROCEED).detail() == ""


def test_requests():
    assert request(ESCPOS) == b"\x10\x04\x01"
    assert CAUSE_REQUEST == b"\x10\x04\x02"
    assert request(STAR) == request(CommandSet.STAR_PRNT) == b"\x1b\x06\x01"


@pytest.mark.parametrize(
    ("command_set", "reply", "expected"),
    [
        (ESCPOS, escpos_reply(cover=True, n=(1,)), True),  # offline: ask DLE EOT 2
        (ESCPOS, escpos_reply(n=(1,)), False),  # online: one round trip only
        (ESCPOS, escpos_reply(cover=True), False),  # the cause is already there
        (ESCPOS, b"\x00", False),  # not a status byte
        (ESCPOS, None, False),
        (STAR, star_reply(cover=True), False),  # the ASB says everything
    ],
)
def test_needs_cause(command_set, reply, expected):
    assert needs_cause(command_set, reply) is expected


def test_parse_takes_the_leading_status_bytes_only():
    status = parse(ESCPOS, escpos_reply(cover=True) + b"\x00")
    assert (status.online, status.cover_open) == (False, True)


PROCEED, REALTIME = Decision(Verdict.PROCEED), Decision(Verdict.REALTIME, "cover open")


@pytest.mark.parametrize(
    ("decision", "command_set", "reply", "result"),
    [
        (PROCEED, ESCPOS, escpos_reply(n=(1,)), AfterKick.CLEAN),
        (PROCEED, ESCPOS, escpos_reply(cover=True, n=(1,)), AfterKick.HELD),
        (PROCEED, ESCPOS, b"", AfterKick.UNCONFIRMED),
        (PROCEED, ESCPOS, b"\x00", AfterKick.UNCONFIRMED),
        (REALTIME, ESCPOS, escpos_reply(cover=True, n=(1,)), AfterKick.CLEAN),
        (PROCEED, STAR, star_reply(), AfterKick.CLEAN),
        (PROCEED, STAR, star_reply(cover=True), AfterKick.HELD),
    ],
)
def test_check_confirm(decision, command_set, reply, result):
    check = check_confirm(decision, command_set, reply)
    assert check.result is result
    if result is AfterKick.HELD:
        assert "right after the kick" in check.detail and "buffer" in check.detail
