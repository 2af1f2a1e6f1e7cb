"""The device transport on real kernel ttys: os.openpty() pairs, the virtual printer on the
master side, the agent's DeviceLink on the slave (/dev/pts/N) as on /dev/ttyUSB0 or rfcomm."""

import asyncio
import os
import subprocess
import sys

import pytest

from agent.core import precheck
from agent.core.commands import CommandSet, drawer_kick
from agent.core.errors import PrinterUnreachable
from agent.core.precheck import Verdict
from agent.core.transport import DeviceKind
from agent.devtools.emulation import RollPaper
from agent.devtools.emulator import PtyPrinter
from agent.io import printer_link
from agent.io.device_link import DeviceLink

ESCPOS, STAR = CommandSet.ESCPOS, CommandSet.STAR_PRNT
KICK = drawer_kick(ESCPOS, 1, 100, 500)
CONFIRM = printer_link.Confirm(b"\x10\x04\x01", 1)


def prechecked(command_set, *, realtime, decisions):
    def decide(reply):
        decision = precheck.decide_reply(command_set, reply, realtime_allowed=realtime)
        decisions.append(decision)
        return precheck.kick_bytes(decision, command_set, 1, 100, 500)

    reply = printer_link.read_up_to(2, 0.1) if command_set is ESCPOS else printer_link.read_asb
    request = precheck.request(command_set)
    if command_set is ESCPOS:
        request += precheck.CAUSE_REQUEST
    return printer_link.Precheck(request, reply, 0.3, decide)


async def test_pulse_and_confirm_over_a_tty():
    async with PtyPrinter() as vp:
        link = DeviceLink(vp.path)
        assert link.kind is DeviceKind.TTY
        sent = await link.send(KICK, connect_timeout=1, write_timeout=1, confirm=CONFIRM)
        [pulse] = await vp.wait_for_pulses(1)
    assert sent.confirmed and sent.reply[0] & 0x04 == 0  # pin 3 LOW: open (Epson default)
    assert (pulse.drawer, pulse.on_ms, pulse.off_ms) == (1, 100, 500)


async def test_status_exchange_over_a_tty_reads_the_drawer():
    async with PtyPrinter(open_for_s=30) as vp:
        link = DeviceLink(vp.path, baudrate=115200, flow_control="xonxoff")
        closed = await link.exchange(b"\x10\x04\x01", 1, timeout=1)
        await link.send(KICK, connect_timeout=1, write_timeout=1)
        await vp.wait_for_pulses(1)
        opened = await link.exchange(b"\x10\x04\x01", 1, timeout=1)
    assert (closed[0] & 0x04, opened[0] & 0x04) == (0x04, 0)


async def test_star_mpop_over_a_tty_bel_and_asb():
    async with PtyPrinter(STAR) as vp:
        link = DeviceLink(vp.path)
        decisions = []
        sent = await link.send(
            b"",
            connect_timeout=1,
            write_timeout=1,
            confirm=printer_link.Confirm(b"\x1b\x06\x01", printer_link.read_asb),
            precheck=prechecked(STAR, realtime=False, decisions=decisions),
        )
        [pulse] = await vp.wait_for_pulses(1)
    assert decisions[0].verdict is Verdict.PROCEED and len(sent.status) == 9
    assert sent.confirmed and len(sent.reply) == 9 and pulse.drawer == 1


@pytest.mark.parametrize(
    ("state", "cause"),
    [({"cover_open": True}, "cover open"), ({"paper": RollPaper.OUT}, "paper out")],
)
async def test_precheck_over_a_tty_sends_no_kick_to_an_offline_printer(state, cause):
    async with PtyPrinter() as vp:
        await vp.set_state(**state)
        decisions = []
        sent = await DeviceLink(vp.path).send(
            b"",
            connect_timeout=1,
            write_timeout=1,
            confirm=CONFIRM,
            precheck=prechecked(ESCPOS, realtime=False, decisions=decisions),
        )
        await vp.set_state(cover_open=False, paper=RollPaper.OK)
    assert decisions == [precheck.Decision(Verdict.REFUSE, cause)] and not sent.kicked
    assert (vp.printer.kicks_received, vp.printer.held, vp.pulses) == (0, b"", [])
    assert b"\x1b\x70" not in vp.received  # no ESC p byte ever reached the tty


async def test_precheck_over_a_tty_uses_the_realtime_pulse_where_allowed():
    async with PtyPrinter() as vp:
        await vp.set_state(cover_open=True)
        decisions = []
        await DeviceLink(vp.path).send(
            b"",
            connect_timeout=1,
            write_timeout=1,
            confirm=CONFIRM,
            precheck=prechecked(ESCPOS, realtime=True, decisions=decisions),
        )
        [pulse] = await vp.wait_for_pulses(1)
    assert decisions[0].verdict is Verdict.REALTIME and pulse.realtime
    assert vp.printer.kicks_received == 0


async def test_unplugged_tty_is_unreachable_and_retryable():
    vp = PtyPrinter()
    vp.start()
    path = vp.path
    vp.unplug()  # the master closes: the slave /dev/pts/N goes away
    with pytest.raises(PrinterUnreachable) as info:
        await DeviceLink(path).send(KICK, connect_timeout=1, write_timeout=1)
    assert not isinstance(info.value, printer_link.DeliveryUncertain)
    assert "unplugged" in info.value.reason or "not present" in info.value.reason


async def test_missing_device_is_unreachable():
    with pytest.raises(PrinterUnreachable, match="not present") as info:
        await DeviceLink("/dev/receipt-printer-none").send(KICK, connect_timeout=1, write_timeout=1)
    assert info.value.where == "/dev/receipt-printer-none"


async def test_unplug_while_held_open_is_seen_and_the_next_kick_is_unreachable():
    vp = PtyPrinter()
    vp.start()
    link = DeviceLink(vp.path, keep_open=True)
    try:
        await link.send(KICK, connect_timeout=1, write_timeout=1, confirm=CONFIRM)
        await vp.wait_for_pulses(1)
        vp.unplug()
        with pytest.raises(PrinterUnreachable) as info:
            await link.send(KICK, connect_timeout=1, write_timeout=1, confirm=CONFIRM)
        assert not isinstance(info.value, printer_link.DeliveryUncertain)
    finally:
        await link.close()
        vp.unplug()


def fill_until_blocked(path):
    """Write junk to the tty until the kernel refuses more: the printer is not reading."""
    fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
    total = 0
    try:
        while True:
            total += os.write(fd, b"A" * 1024)
    except BlockingIOError:
        return fd, total


async def test_stalled_printer_blocks_the_write_which_is_uncertain_not_retried():
    async with PtyPrinter() as vp:
        vp.pause()
        fd, filled = fill_until_blocked(vp.path)
        # More than the pty can ever hold (the kernel may free a little room after the fill
        # as it moves buffers along), so the write surely blocks part-way.
        payload = b"A" * (512 * 1024) + KICK
        try:
            with pytest.raises(printer_link.DeliveryUncertain, match="write blocked") as info:
                await DeviceLink(vp.path).send(payload, connect_timeout=1, write_timeout=0.3)
        finally:
            os.close(fd)
    assert filled > 0 and vp.pulses == []
    assert "the rest was discarded" in info.value.reason


async def test_stalled_printer_with_precheck_gets_no_kick():
    async with PtyPrinter() as vp:
        vp.pause()
        fd, _ = fill_until_blocked(vp.path)
        decisions = []
        try:
            sent = await DeviceLink(vp.path).send(
                b"",
                connect_timeout=1,
                write_timeout=0.3,
                precheck=prechecked(ESCPOS, realtime=True, decisions=decisions),
            )
        finally:
            os.close(fd)
    assert decisions[0].verdict is Verdict.NO_REPLY and not sent.kicked
    assert vp.printer.kicks_received == 0


async def test_keep_open_holds_one_open_across_kicks():
    async with PtyPrinter() as vp:
        held = DeviceLink(vp.path, keep_open=True)
        each = DeviceLink(vp.path)
        try:
            for link in (held, held):
                await link.send(KICK, connect_timeout=1, write_timeout=1, confirm=CONFIRM)
        finally:
            await held.close()  # held open, it would lock `each` out (flock, see below)
        for link in (each, each):
            await link.send(KICK, connect_timeout=1, write_timeout=1, confirm=CONFIRM)
        await vp.wait_for_pulses(4)
    assert (held.opens, each.opens) == (1, 2)


async def test_second_opener_is_refused_while_a_kick_holds_the_tty():
    async with PtyPrinter() as vp:
        held = DeviceLink(vp.path, keep_open=True)
        try:
            await held.exchange(b"\x10\x04\x01", 1, timeout=1)
            with pytest.raises(PrinterUnreachable, match="busy"):
                await DeviceLink(vp.path).send(KICK, connect_timeout=1, write_timeout=1)
        finally:
            await held.close()
    assert vp.pulses == []


async def test_plain_character_device_path_without_termios():
    # The usblp code path (os.open, no pyserial) on a tty stand-in: no usblp in CI.
    async with PtyPrinter() as vp:
        link = DeviceLink(vp.path, kind=DeviceKind.USBLP)
        sent = await link.send(KICK, connect_timeout=1, write_timeout=1, confirm=CONFIRM)
        await vp.wait_for_pulses(1)
    assert sent.confirmed


async def test_emulate_pty_cli_prints_a_path_that_takes_a_kick():
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        "emulate",
        "--pty",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        path = line.split(" on ", 1)[1].split(";")[0]
        assert path.startswith("/dev/pts/")
        sent = await DeviceLink(path).send(
            KICK, connect_timeout=1, write_timeout=1, confirm=CONFIRM
        )
        assert sent.confirmed
        while b"pulse" not in (log := await asyncio.wait_for(proc.stderr.readline(), 10)):
            assert log, "emulator exited"
    finally:
        proc.terminate()
        await proc.wait()


async def test_cli_kick_of_a_configured_tty_printer(tmp_path):
    async with PtyPrinter() as vp:
        cfg = tmp_path / "shop.toml"
        cfg.write_text(
            'shop_id = "s"\n[state]\n'
            f'path = "{tmp_path / "l.db"}"\n'
            f'[printers.front]\ndevice = "{vp.path}"\nmodel = "epson-tm-t20iii"\n'
            '[terminals]\nT1 = "front"\n'
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent",
            "kick",
            "front",
            "--config",
            str(cfg),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert f"on {vp.path}" in out.decode()
    assert len(vp.pulses) == 1
