"""Drawer-kick bytes for every command set and pin (PROTOCOLS §1, §7)."""

import pytest

from agent.core.commands import (
    CommandSet,
    check_pulse,
    drawer_kick,
    realtime_drawer_kick,
    status_requests,
)


@pytest.mark.parametrize(
    ("command_set", "drawer", "on_ms", "off_ms", "expected"),
    [
        (CommandSet.ESCPOS, 1, 100, 500, "1b 70 00 32 fa"),
        (CommandSet.ESCPOS, 2, 100, 500, "1b 70 01 32 fa"),
        (CommandSet.ESCPOS, 1, 50, 500, "1b 70 00 19 fa"),  # Epson's own example ESC p 0 25 250
        (CommandSet.ESCPOS, 1, 2, 2, "1b 70 00 01 01"),
        (CommandSet.ESCPOS, 2, 510, 510, "1b 70 01 ff ff"),
        (CommandSet.STAR_LINE, 1, 200, 200, "1b 07 14 14 07"),  # Star default 20/20
        (CommandSet.STAR_LINE, 1, 100, 500, "1b 07 0a 32 07"),
        (CommandSet.STAR_LINE, 2, 100, 500, "1a"),  # SUB: fixed 200 ms
        (CommandSet.STAR_PRNT, 1, 100, 500, "1b 07 0a 32 07"),
        (CommandSet.STAR_PRNT, 2, 100, 500, "1a"),
        (CommandSet.STAR_GRAPHIC, 1, 100, 500, "1b 07 0a 32 07"),
        (CommandSet.STAR_GRAPHIC, 2, 1270, 1270, "1a"),
    ],
)
def test_drawer_kick_bytes(command_set, drawer, on_ms, off_ms, expected):
    assert drawer_kick(command_set, drawer, on_ms, off_ms).hex(" ") == expected


@pytest.mark.parametrize(
    ("command_set", "drawer", "on_ms", "off_ms", "message"),
    [
        (CommandSet.ESCPOS, 3, 100, 500, "drawer must be 1 or 2"),
        (CommandSet.ESCPOS, 0, 100, 500, "drawer must be 1 or 2"),
        (CommandSet.ESCPOS, 1, 0, 500, "pulse on time 0 ms"),
        (CommandSet.ESCPOS, 1, 512, 500, "pulse on time 512 ms"),
        (CommandSet.ESCPOS, 1, 100, 600, "pulse off time 600 ms"),
        (CommandSet.STAR_LINE, 1, 5, 100, "pulse on time 5 ms"),
        (CommandSet.STAR_LINE, 1, 100, 1280, "pulse off time 1280 ms"),
    ],
)
def test_drawer_kick_refuses_what_cannot_be_sent(command_set, drawer, on_ms, off_ms, message):
    with pytest.raises(ValueError, match=message):
        drawer_kick(command_set, drawer, on_ms, off_ms)


def test_check_pulse_accepts_limits():
    assert check_pulse(CommandSet.ESCPOS, 2, 510) is None
    assert check_pulse(CommandSet.STAR_LINE, 10, 1270) is None


@pytest.mark.parametrize(
    ("drawer", "pulse_ms", "expected"),
    [
        (1, 100, "10 14 01 00 01"),
        (2, 300, "10 14 01 01 03"),
        (1, 5000, "10 14 01 00 08"),
        (2, 10, "10 14 01 01 01"),
    ],
)
def test_realtime_kick_is_only_fn_1(drawer, pulse_ms, expected):
    assert realtime_drawer_kick(drawer, pulse_ms).hex(" ") == expected


def test_status_requests_print_nothing():
    assert [r.hex(" ") for r in status_requests(CommandSet.ESCPOS)] == [
        "10 04 01",
        "10 04 02",
        "10 04 03",
        "10 04 04",
    ]
    for cs in (CommandSet.STAR_LINE, CommandSet.STAR_PRNT, CommandSet.STAR_GRAPHIC):
        assert [r.hex(" ") for r in status_requests(cs)] == ["1b 06 01"]


@pytest.mark.parametrize(("drawer", "pin"), [(1, 2), (2, 5)])
def test_escpos_bytes_match_python_escpos(drawer, pin, tmp_path, monkeypatch):
    """Our encoder and python-escpos 3.1's cashdraw agree on the same timing."""
    monkeypatch.setenv("ESCPOS_CAPABILITIES_PICKLE_DIR", str(tmp_path))
    from escpos.printer import Dummy

    dummy = Dummy()
    dummy.cashdraw(pin)  # python-escpos default: t1 = t2 = 50 (100 ms)
    assert dummy.output == drawer_kick(CommandSet.ESCPOS, drawer, 100, 100)
