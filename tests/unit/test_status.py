"""Status replies: ESC/POS DLE EOT and Star ASB (PROTOCOLS §2.1, §2.5)."""

import pytest

from agent.core.commands import CommandSet
from agent.core.status import (
    Paper,
    PrinterStatus,
    StatusError,
    asb_length,
    open_level,
    parse_dle_eot,
    parse_star_asb,
    valid_dle_eot_byte,
    vendor_open_level,
)
from agent.devtools.emulation import RollPaper, dle_eot_reply, star_asb


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("12 12 12 12", PrinterStatus(True, Paper.OK, False, False, False)),
        ("16 12 12 12", PrinterStatus(True, Paper.OK, False, False, True)),
        ("1a 16 12 72", PrinterStatus(False, Paper.OUT, True, False, False)),
        ("12 12 12 1e", PrinterStatus(True, Paper.NEAR_END, False, False, False)),
        ("12 12 12 16", PrinterStatus(True, Paper.NEAR_END, False, False, False)),  # one bit only
        ("12 52 12 12", PrinterStatus(True, Paper.OK, False, True, False)),
        ("12 12 32 12", PrinterStatus(True, Paper.OK, False, True, False)),  # unrecoverable
    ],
)
def test_parse_dle_eot(reply, expected):
    assert parse_dle_eot(bytes.fromhex(reply)) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        # A clone that answers DLE EOT 1 only: online and drawer known, the rest unknown.
        ("16", PrinterStatus(True, None, None, None, True)),
        ("1a", PrinterStatus(False, None, None, None, False)),
        ("12 16", PrinterStatus(True, None, True, False, False)),
        ("12 12 32", PrinterStatus(True, None, False, True, False)),
    ],
)
def test_parse_partial_dle_eot(reply, expected):
    assert parse_dle_eot(bytes.fromhex(reply)) == expected


@pytest.mark.parametrize("reply", ["12 12 12 12 12", "00 12 12 12", "12 12 12 93", "", "00"])
def test_parse_dle_eot_refuses_non_status(reply):
    with pytest.raises(StatusError):
        parse_dle_eot(bytes.fromhex(reply))


@pytest.mark.parametrize(
    ("byte", "valid"),
    [(0x12, True), (0x16, True), (0x7E, True), (0x13, False), (0x92, False), (0x02, False)],
)
def test_valid_dle_eot_byte(byte, valid):
    assert valid_dle_eot_byte(byte) is valid


@pytest.mark.parametrize(("header", "length"), [(0x23, 9), (0x0F, 7), (0x21, 8), (0x2F, 15)])
def test_asb_length(header, length):
    assert asb_length(header) == length


def test_parse_star_asb_example_from_the_manual():
    # The IFBD-HE07 manual's example reply (PROTOCOLS §2.5): all clear, drawer switch open.
    status = parse_star_asb(bytes.fromhex("23 86 00 00 00 00 00 00 00 00 00"))
    assert status == PrinterStatus(True, Paper.OK, False, False, False)


@pytest.mark.parametrize(
    ("asb", "online", "paper", "cover", "pin_high"),
    [
        ("23 86 04 00 00 00 00 00 00", True, Paper.OK, False, True),
        ("23 86 28 00 00 00 00 00 00", False, Paper.OK, True, False),
        ("23 86 00 00 00 08 00 00 00", True, Paper.OUT, False, False),
        ("23 86 00 00 00 04 00 00 00", True, Paper.NEAR_END, False, False),
    ],
)
def test_parse_star_asb_bits(asb, online, paper, cover, pin_high):
    status = parse_star_asb(bytes.fromhex(asb))
    assert (status.online, status.paper, status.cover_open, status.drawer_pin_high) == (
        online,
        paper,
        cover,
        pin_high,
    )


@pytest.mark.parametrize("asb", ["23 86 00", "22 86 00 00 00 00 00 00 00", "23 86 00 00 00 00 00"])
def test_parse_star_asb_refuses_garbage(asb):
    with pytest.raises(StatusError):
        parse_star_asb(bytes.fromhex(asb))


@pytest.mark.parametrize(
    ("pin_high", "level", "open_"),
    [
        (True, "low", False),
        (False, "low", True),
        (True, "high", True),
        (False, "high", False),
        (None, "low", None),
    ],
)
def test_drawer_polarity(pin_high, level, open_):
    assert PrinterStatus(True, drawer_pin_high=pin_high).drawer_open(level) is open_


@pytest.mark.parametrize(
    ("command_set", "level"),
    [
        (CommandSet.ESCPOS, "low"),  # Epson ePOS drawerOpenLevel default
        (CommandSet.STAR_LINE, "high"),  # Star CashDrawerOpenActiveHigh default
        (CommandSet.STAR_PRNT, "high"),
        (CommandSet.STAR_GRAPHIC, "high"),
    ],
)
def test_vendor_open_level(command_set, level):
    assert vendor_open_level(command_set) == level
    assert open_level(None, command_set) == level
    other = "high" if level == "low" else "low"
    assert open_level(other, command_set) == other  # the per-printer override wins


@pytest.mark.parametrize("paper", list(RollPaper))
@pytest.mark.parametrize("high", [True, False])
@pytest.mark.parametrize("online", [True, False])
def test_agent_parsers_read_the_emulators_independent_encoders(paper, high, online):
    """Two encodings written separately from the manuals agree bit for bit."""
    replies = bytes(
        dle_eot_reply(n, pin3_high=high, online=online, paper=paper) for n in (1, 2, 3, 4)
    )
    escpos = parse_dle_eot(replies)
    assert (escpos.online, escpos.paper, escpos.drawer_pin_high) == (online, Paper(paper), high)
    star = parse_star_asb(star_asb(switch_set=high, online=online, paper=paper))
    assert (star.online, star.paper, star.drawer_pin_high) == (online, Paper(paper), high)
