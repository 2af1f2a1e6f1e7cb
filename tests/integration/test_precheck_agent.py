"""Issue 9 end to end, real mosquitto: an MQTT event, the pre-kick status check, the ack.

Offline printers get no buffered kick (the ack says why), the real-time pulse where the
model has it, and printers on real kernel ttys (os.openpty, the virtual printer on the
master side) open from an MQTT event with the drawer sensor in the ack.
"""

import asyncio
import json
import uuid

import pytest

from agent.core.topics import Topics
from agent.devtools.demo import event
from agent.devtools.emulation import RollPaper, VirtualPrinter
from agent.devtools.emulator import PtyPrinter, VirtualPrinterServer
from agent.io.mqtt_link import PosClient
from tests.conftest import make_settings, running_agent

pytestmark = pytest.mark.broker
TOPICS = Topics("t")


def settings(tmp_path, mosquitto, printers, **sections):
    terminals = {f"T-{pid}": pid for pid in printers}
    return make_settings(tmp_path, mosquitto.port, printers, terminals, **sections)


async def opened_by_mqtt(cfg, terminals, timeout=10.0):
    """Publish one sale per terminal, as the POS does; the ack of each, by terminal."""
    async with PosClient(cfg.mqtt, TOPICS.acks, client_id=f"pos-{uuid.uuid4().hex[:6]}") as pos:
        sent = {t: event("sale", t) for t in terminals}
        for body in sent.values():
            await pos.publish(TOPICS.events, json.dumps(body).encode())
        return {
            t: (await pos.wait_ack(str(body["event_id"]), timeout=timeout))[0]
            for t, body in sent.items()
        }


def tcp(port, **extra):
    return {"host": "127.0.0.1", "port": port, "command_set": "escpos", **extra}


@pytest.mark.parametrize(
    ("state", "cause"),
    [
        ({"cover_open": True}, "cover open"),
        ({"paper": RollPaper.OUT}, "paper out"),
        ({"error": True}, "printer error"),
    ],
)
async def test_offline_printer_is_refused_or_gets_the_realtime_pulse(
    tmp_path, mosquitto, state, cause
):
    async with VirtualPrinterServer(name="rt") as rt, VirtualPrinterServer(name="plain") as plain:
        for vp in (rt, plain):
            await vp.set_state(**state)
        cfg = settings(
            tmp_path,
            mosquitto,
            {"rt": tcp(rt.port, realtime_pulse=True), "plain": tcp(plain.port)},
        )
        async with running_agent(cfg):
            acks = await opened_by_mqtt(cfg, ["T-rt", "T-plain"])
        # Back online: nothing waited in either printer's buffer.
        for vp in (rt, plain):
            await vp.set_state(cover_open=False, paper=RollPaper.OK, error=False)
    plain_ack, rt_ack = acks["T-plain"], acks["T-rt"]
    assert plain_ack["status"] == "failed" and cause in plain_ack["detail"]
    assert (plain.printer.kicks_received, plain.pulses) == (0, [])
    assert rt.printer.kicks_received == 0  # never an ESC p
    if state.get("error"):
        # DLE DC4 is ignored in error state (PROTOCOLS §1.2): refused too.
        assert rt_ack["status"] == "failed" and cause in rt_ack["detail"]
        assert rt.pulses == []
    else:
        assert rt_ack["status"] == "opened" and "realtime" in rt_ack["detail"]
        assert [p.realtime for p in rt.pulses] == [True]


async def test_online_printer_opens_normally(tmp_path, mosquitto):
    async with VirtualPrinterServer() as vp:
        cfg = settings(tmp_path, mosquitto, {"p": tcp(vp.port)})
        async with running_agent(cfg):
            ack = (await opened_by_mqtt(cfg, ["T-p"]))["T-p"]
    assert ack["status"] == "opened" and "realtime" not in ack["detail"]
    assert [(p.realtime, p.late) for p in vp.pulses] == [(False, False)]


async def test_precheck_off_is_the_negative_control(tmp_path, mosquitto):
    # Without the pre-check an offline printer takes the ESC p and keeps it: the late kick.
    async with VirtualPrinterServer(open_for_s=5) as vp:
        await vp.set_state(cover_open=True)
        cfg = settings(tmp_path, mosquitto, {"p": tcp(vp.port, precheck=False)})
        async with running_agent(cfg):
            ack = (await opened_by_mqtt(cfg, ["T-p"]))["T-p"]
        assert vp.printer.held_kicks == 1
        await vp.set_state(cover_open=False)
        [late] = await vp.wait_for_pulses(1)
    assert late.late
    # Still caught after the fact: the confirm reply said offline, so the ack does not
    # claim a clean opening, it warns of exactly this.
    assert ack["status"] == "failed" and ack["detail"].startswith("delivery uncertain")


async def test_printer_going_offline_after_the_precheck_is_not_acked_opened(tmp_path, mosquitto):
    printer = VirtualPrinter("escpos")

    async def serve(reader, writer):
        # Answers the pre-check online, then its cover opens before the kick arrives.
        first = True
        while data := await reader.read(4096):
            if not first:
                printer.set_state(0, cover_open=True)
            first = False
            writer.write(printer.feed(data, 0))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        cfg = settings(tmp_path, mosquitto, {"p": tcp(port)}, health={"interval_s": 3600})
        async with running_agent(cfg):
            ack = (await opened_by_mqtt(cfg, ["T-p"]))["T-p"]
    finally:
        server.close()
        await server.wait_closed()
    assert ack["status"] == "failed"
    assert (
        ack["detail"].startswith("delivery uncertain") and "right after the kick" in ack["detail"]
    )
    assert printer.held_kicks == 1  # what the ack warns about


@pytest.mark.parametrize(
    ("command_set", "model"), [("escpos", "epson-tm-t20iii"), ("star-prnt", "star-mpop")]
)
async def test_mqtt_event_opens_a_drawer_on_a_tty_with_the_sensor_in_the_ack(
    tmp_path, mosquitto, command_set, model
):
    async with PtyPrinter(command_set, open_for_s=30) as vp:
        cfg = settings(tmp_path, mosquitto, {"tty": {"device": vp.path, "model": model}})
        async with running_agent(cfg):
            ack = (await opened_by_mqtt(cfg, ["T-tty"]))["T-tty"]
    assert ack["status"] == "opened", ack
    assert ack["drawer_open"] is True  # the sensor read back over the tty, vendor polarity
    [pulse] = vp.pulses
    assert pulse.drawer == 1 and not pulse.late


async def test_tty_printer_with_cover_open_is_refused_over_mqtt(tmp_path, mosquitto):
    async with PtyPrinter() as vp:
        await vp.set_state(cover_open=True)
        cfg = settings(tmp_path, mosquitto, {"tty": {"device": vp.path, "command_set": "escpos"}})
        async with running_agent(cfg):
            ack = (await opened_by_mqtt(cfg, ["T-tty"]))["T-tty"]
    assert ack["status"] == "failed" and "cover open" in ack["detail"]
    assert b"\x1b\x70" not in vp.received and vp.printer.kicks_received == 0


async def test_unplugged_tty_fails_at_the_deadline_without_a_kick(tmp_path, mosquitto):
    vp = PtyPrinter()
    vp.start()
    path = vp.path
    vp.unplug()
    cfg = settings(
        tmp_path,
        mosquitto,
        {"tty": {"device": path, "command_set": "escpos"}},
        security={"max_age_s": 2.0},
    )
    async with running_agent(cfg):
        ack = (await opened_by_mqtt(cfg, ["T-tty"]))["T-tty"]
    assert ack["status"] in ("failed", "expired")
    assert "unplugged" in ack["detail"] or "not present" in ack["detail"]
