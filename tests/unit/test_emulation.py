"""The virtual printer decodes like the real one, whatever the chunking."""

import pytest

from agent.core.commands import CommandSet, drawer_kick, realtime_drawer_kick
from agent.devtools.emulation import VirtualPrinter


def feed_in_chunks(printer, data, size, now=100.0):
    out = b""
    for i in range(0, len(data), size):
        out += printer.feed(data[i : i + size], now)
    return out


@pytest.mark.parametrize("chunk", [1, 2, 3, 64])
def test_escpos_kicks_and_status_any_chunking(chunk):
    p = VirtualPrinter(CommandSet.ESCPOS, open_for_s=3)
    data = drawer_kick(CommandSet.ESCPOS, 2, 100, 500) + b"\x10\x04\x01" + b"\x1d\x49\x43"
    reply = feed_in_chunks(p, data, chunk)
    assert [(x.drawer, x.on_ms, x.off_ms) for x in p.pulses] == [(2, 100, 500)]
    assert reply[0] & 0x04 == 0  # pin 3 LOW: drawer open
    assert reply[1:] == b"_TM-T20III\x00"


def test_escpos_ignores_star_commands_and_star_ignores_escpos():
    escpos = VirtualPrinter(CommandSet.ESCPOS)
    escpos.feed(drawer_kick(CommandSet.STAR_LINE, 1, 100, 500) + b"\x1a", 0)
    assert escpos.pulses == []
    star = VirtualPrinter(CommandSet.STAR_LINE)
    star.feed(b"\x1b\x70\x00\x32\xfa", 0)
    assert star.pulses == []


def test_star_kick_and_asb():
    p = VirtualPrinter(CommandSet.STAR_LINE, open_for_s=2)
    asb = p.feed(drawer_kick(CommandSet.STAR_LINE, 1, 100, 500) + b"\x1a" + b"\x1b\x06\x01", 10)
    assert [(x.drawer, x.on_ms) for x in p.pulses] == [(1, 100), (2, 200)]
    # Star's drawers set the compulsion-switch bit while open (SDK CashDrawerOpenActiveHigh).
    assert len(asb) == 9 and asb[2] & 0x04 == 0x04
    assert p.feed(b"\x1b\x06\x01", 13)[2] & 0x04 == 0  # closed again after open_for_s


def test_realtime_pulse_and_other_dle_dc4_functions():
    p = VirtualPrinter(CommandSet.ESCPOS)
    p.feed(realtime_drawer_kick(1, 300) + b"\x10\x14\x08\x01\x03\x01\x02\x03\x04\x05", 0)
    assert [(x.drawer, x.on_ms, x.realtime) for x in p.pulses] == [(1, 300, True)]


def test_escpos_out_of_range_m_cancels_the_command():
    p = VirtualPrinter(CommandSet.ESCPOS)
    p.feed(b"\x1b\x70\x07\x32\x32", 0)
    assert p.pulses == []


@pytest.mark.parametrize(
    ("command_set", "query", "index", "mask", "closed"),
    [
        # Epson: pin 3 HIGH while closed (ePOS drawerOpenLevel default LOW = open).
        ("escpos", b"\x10\x04\x01", 0, 0x04, 0x04),  # DLE EOT 1 bit 2 = pin 3 HIGH
        ("escpos", b"\x1d\x72\x02", 0, 0x01, 0x01),  # GS r 2 bit 0 = pin 3 HIGH
        # Star: compulsion-switch bit clear while closed (SDK CashDrawerOpenActiveHigh).
        ("star-line", b"\x1b\x06\x01", 2, 0x04, 0x00),  # ASB status 1 bit 2
        ("star-line", b"\x05", 0, 0x80, 0x00),  # ENQ bit 7
    ],
)
def test_closed_drawer_reads_as_each_vendor_documents(command_set, query, index, mask, closed):
    p = VirtualPrinter(command_set)
    assert p.feed(query, 0)[index] & mask == closed
    p.feed(b"\x1b\x70\x00\x32\x32" if command_set == "escpos" else b"\x07", 1)
    assert p.feed(query, 1)[index] & mask == mask ^ closed  # open: the other level


def test_inverted_drawer_wiring_flips_the_sensor():
    normal, inverted = (
        VirtualPrinter("escpos"),
        VirtualPrinter("escpos", sensor_high_when_open=True),
    )
    assert normal.feed(b"\x10\x04\x01", 0)[0] & 0x04 == 0x04
    assert inverted.feed(b"\x10\x04\x01", 0)[0] & 0x04 == 0


def test_a_clone_that_answers_only_dle_eot_1():
    p = VirtualPrinter("escpos", answers_dle_eot=frozenset({1}))
    assert len(p.feed(b"\x10\x04\x01\x10\x04\x02\x10\x04\x03\x10\x04\x04", 0)) == 1


def test_unknown_command_set_is_refused():
    with pytest.raises(ValueError, match="unknown command set"):
        VirtualPrinter("zpl")


@pytest.mark.parametrize(
    ("state", "n2_bits"),
    [
        ({"cover_open": True}, 0x04),  # DLE EOT 2 bit 2: cover open
        ({"paper": "out"}, 0x20),  # bit 5: printing stopped by a paper end
        ({"error": True}, 0x40),  # bit 6: error occurred
        ({"online": False}, 0x00),  # offline for another cause (FEED button)
    ],
)
def test_offline_printer_holds_esc_p_and_answers_real_time_status(state, n2_bits):
    p = VirtualPrinter(CommandSet.ESCPOS)
    p.set_state(0, **state)
    reply = p.feed(b"\x10\x04\x01\x10\x04\x02" + drawer_kick(CommandSet.ESCPOS, 1, 100, 500), 1)
    assert reply[0] & 0x08 == 0x08  # DLE EOT 1 bit 3: offline
    assert reply[1] & 0x64 == n2_bits
    assert p.pulses == [] and (p.kicks_received, p.held_kicks) == (1, 1)
    p.set_state(5, online=True, cover_open=False, paper="ok", error=False)
    # Back online, the held ESC p runs: the late opening the pre-check exists to prevent.
    assert [(x.late, x.at) for x in p.pulses] == [(True, 5)]


def test_online_printer_runs_esc_p_at_once_and_counts_it():
    p = VirtualPrinter(CommandSet.ESCPOS)
    p.feed(drawer_kick(CommandSet.ESCPOS, 1, 100, 500), 1)
    assert [x.late for x in p.pulses] == [False]
    assert (p.kicks_received, p.held_kicks, p.held) == (1, 0, b"")


def test_realtime_pulse_runs_offline_but_not_in_error():
    cover = VirtualPrinter(CommandSet.ESCPOS, cover_open=True)
    cover.feed(realtime_drawer_kick(1, 300), 0)
    assert [(x.realtime, x.late) for x in cover.pulses] == [(True, False)]
    erroring = VirtualPrinter(CommandSet.ESCPOS, error=True)
    erroring.feed(realtime_drawer_kick(1, 300), 0)
    assert erroring.pulses == []  # DLE DC4 is ignored in error state (PROTOCOLS §1.2)


def test_star_offline_holds_bel_and_reports_cover_in_asb():
    p = VirtualPrinter(CommandSet.STAR_LINE, cover_open=True)
    asb = p.feed(b"\x1b\x06\x01" + drawer_kick(CommandSet.STAR_LINE, 1, 100, 500), 0)
    assert asb[2] & 0x28 == 0x28  # status 1: bit 3 offline, bit 5 cover open
    assert p.pulses == [] and p.held_kicks == 1
    p.set_state(1, cover_open=False)
    assert [x.late for x in p.pulses] == [True]
