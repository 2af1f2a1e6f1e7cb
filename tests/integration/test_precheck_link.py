"""The pre-kick status check over real TCP: no kick byte ever reaches an offline printer.

The virtual printer holds buffered commands while offline and counts every kick command it
receives (agent.devtools.emulation, Epson TRG §3.4.3), so "no buffered late kick" is
checked on what the printer received, not on what the agent meant to send.
"""

import asyncio

import pytest

from agent.core import precheck
from agent.core.commands import CommandSet
from agent.core.precheck import AfterKick, Verdict
from agent.devtools.emulation import RollPaper, VirtualPrinter
from agent.devtools.emulator import Behaviour, VirtualPrinterServer
from agent.io import printer_link

ESCPOS, STAR = CommandSet.ESCPOS, CommandSet.STAR_LINE


class Decider:
    """The dispatcher's side of the callback: decide with the pure core, remember it."""

    def __init__(self, command_set, *, realtime, only_first=False, timeout=0.5):
        # DLE EOT 1 and 2 in one request here: this exercises the link's decide callback;
        # the dispatcher asks DLE EOT 2 only after an offline DLE EOT 1 (needs_cause).
        self.command_set = command_set
        self.realtime = realtime
        self.decisions = []
        reply = (
            printer_link.read_up_to(1 if only_first else 2, 0.1)
            if command_set is ESCPOS
            else printer_link.read_asb
        )
        self.check = printer_link.Precheck(
            precheck.request(command_set)
            + (b"" if only_first or command_set is not ESCPOS else precheck.CAUSE_REQUEST),
            reply,
            timeout,
            self.decide,
        )

    def decide(self, reply):
        decision = precheck.decide_reply(self.command_set, reply, realtime_allowed=self.realtime)
        self.decisions.append(decision)
        return precheck.kick_bytes(decision, self.command_set, 1, 100, 500)


def confirm_for(command_set):
    # The confirm asks what the pre-check asks: DLE EOT 2 names the cause when offline.
    if command_set is ESCPOS:
        request = precheck.request(ESCPOS) + precheck.CAUSE_REQUEST
        return printer_link.Confirm(request, printer_link.read_up_to(2, 0.1))
    return printer_link.Confirm(precheck.request(command_set), printer_link.read_asb)


async def kick(vp, decider, command_set=ESCPOS):
    return await printer_link.send(
        "127.0.0.1",
        vp.port,
        b"unused: the pre-check decides",
        connect_timeout=1,
        write_timeout=1,
        confirm=confirm_for(command_set),
        precheck=decider.check,
    )


async def test_online_printer_gets_the_normal_kick_and_a_clean_confirm():
    async with VirtualPrinterServer() as vp:
        decider = Decider(ESCPOS, realtime=True)
        sent = await kick(vp, decider)
        [pulse] = await vp.wait_for_pulses(1)
    assert decider.decisions[0].verdict is Verdict.PROCEED
    assert len(sent.status) == 2  # DLE EOT 1 and 2 answered (PROTOCOLS §2.1)
    assert sent.kicked and not pulse.realtime and not pulse.late
    assert precheck.check_confirm(decider.decisions[0], ESCPOS, sent.reply).result is (
        AfterKick.CLEAN
    )


@pytest.mark.parametrize(
    ("state", "cause"),
    [
        ({"cover_open": True}, "cover open"),
        ({"paper": RollPaper.OUT}, "paper out"),
        ({"error": True}, "printer error"),
        ({"online": False}, "offline"),
    ],
)
@pytest.mark.parametrize("command_set", [ESCPOS, STAR])
async def test_offline_printer_receives_no_kick_byte(command_set, state, cause):
    async with VirtualPrinterServer(command_set=command_set) as vp:
        await vp.set_state(**state)
        decider = Decider(command_set, realtime=False)
        sent = await kick(vp, decider, command_set)
        assert decider.decisions[0] == precheck.Decision(Verdict.REFUSE, cause)
        assert not sent.kicked
        # Nothing held, nothing received: closing the cover later opens no drawer.
        await vp.set_state(online=True, cover_open=False, paper=RollPaper.OK, error=False)
        assert (vp.printer.kicks_received, vp.printer.held, vp.pulses) == (0, b"", [])


@pytest.mark.parametrize(
    ("state", "cause"), [({"cover_open": True}, "cover open"), ({"paper": "out"}, "paper out")]
)
async def test_offline_printer_with_realtime_pulse_gets_dle_dc4_and_no_esc_p(state, cause):
    async with VirtualPrinterServer() as vp:
        await vp.set_state(**state)
        decider = Decider(ESCPOS, realtime=True)
        sent = await kick(vp, decider)
        [pulse] = await vp.wait_for_pulses(1)
        await vp.set_state(cover_open=False, paper=RollPaper.OK)
    assert decider.decisions[0] == precheck.Decision(Verdict.REALTIME, cause)
    assert pulse.realtime and sent.kicked
    assert (vp.printer.kicks_received, vp.printer.held_kicks, len(vp.pulses)) == (0, 0, 1)
    # Still offline after the real-time pulse: expected, so the opening is clean.
    assert precheck.check_confirm(decider.decisions[0], ESCPOS, sent.reply).result is (
        AfterKick.CLEAN
    )


async def test_error_state_refuses_even_the_realtime_pulse():
    async with VirtualPrinterServer() as vp:
        await vp.set_state(error=True)
        decider = Decider(ESCPOS, realtime=True)
        sent = await kick(vp, decider)
    assert decider.decisions[0] == precheck.Decision(Verdict.REFUSE, "printer error")
    assert not sent.kicked and vp.pulses == [] and vp.printer.kicks_received == 0


async def test_negative_control_without_the_precheck_an_offline_printer_kicks_late():
    async with VirtualPrinterServer(open_for_s=5) as vp:
        await vp.set_state(cover_open=True)
        payload = precheck.kick_bytes(precheck.Decision(Verdict.PROCEED), ESCPOS, 1, 100, 500)
        sent = await printer_link.send(
            "127.0.0.1",
            vp.port,
            payload,
            connect_timeout=1,
            write_timeout=1,
            confirm=confirm_for(ESCPOS),
        )
        assert vp.pulses == [] and vp.printer.held_kicks == 1
        # ...and the confirm reply says offline: the check catches it.
        check = precheck.check_confirm(precheck.Decision(Verdict.PROCEED), ESCPOS, sent.reply)
        assert check.result is AfterKick.HELD
        await vp.set_state(cover_open=False)
        [late] = await vp.wait_for_pulses(1)
    assert late.late


async def test_clone_answering_dle_eot_1_only_is_kicked_when_online():
    async with VirtualPrinterServer() as vp:
        vp.printer.answers_dle_eot = frozenset({1})
        decider = Decider(ESCPOS, realtime=False)
        sent = await kick(vp, decider)
        await vp.wait_for_pulses(1)
    assert len(sent.status) == 1
    assert decider.decisions[0].verdict is Verdict.PROCEED


async def test_silent_printer_gets_no_kick():
    async with VirtualPrinterServer(behaviour=Behaviour.SILENT) as vp:
        decider = Decider(ESCPOS, realtime=True, timeout=0.2)
        sent = await kick(vp, decider)
    assert sent.status is None and not sent.kicked
    assert decider.decisions[0].verdict is Verdict.NO_REPLY


async def test_printer_going_offline_after_the_precheck_is_caught_by_the_confirm():
    printer = VirtualPrinter(ESCPOS)
    chunks = 0

    async def serve(reader, writer):
        nonlocal chunks
        while data := await reader.read(4096):
            chunks += 1
            if chunks == 2:
                # The cover opens between the status reply and the kick.
                printer.set_state(0, cover_open=True)
            writer.write(printer.feed(data, 0))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:

        class Port:
            port = server.sockets[0].getsockname()[1]

        decider = Decider(ESCPOS, realtime=False)
        sent = await kick(Port, decider)
    finally:
        server.close()
        await server.wait_closed()
    assert decider.decisions[0].verdict is Verdict.PROCEED
    check = precheck.check_confirm(decider.decisions[0], ESCPOS, sent.reply)
    assert check.result is AfterKick.HELD
    assert "cover open" in check.detail and printer.held_kicks == 1


async def test_reset_during_the_precheck_is_retryable():
    async with VirtualPrinterServer(behaviour=Behaviour.RESET) as vp:
        decider = Decider(ESCPOS, realtime=False)
        with pytest.raises(printer_link.PrinterUnreachable) as info:
            await kick(vp, decider)
    assert not isinstance(info.value, printer_link.DeliveryUncertain)
    assert decider.decisions == []
