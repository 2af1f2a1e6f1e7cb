"""Mapping changes while the agent runs: the next event uses them, no restart; what was
queued finishes on the printer it was queued for; a restart keeps them."""

import time

import pytest

from agent.core.mapping import Actor, Applied
from agent.devtools.emulator import VirtualPrinterServer
from tests.conftest import make_settings, running_agent
from tests.integration.test_core_path import Shop, ack_of, event, pos, send

__all__ = ["pos"]  # the POS fixture of the core-path tests

pytestmark = pytest.mark.broker
INSTALLER = Actor("console", "installer")


def apply(agent, op):
    outcome = agent.mapping.apply(op)
    assert isinstance(outcome, Applied), outcome
    return outcome


async def test_a_till_moved_to_another_printer_opens_it_on_the_next_event(
    mosquitto, tmp_path, printers, pos
):
    front, back = printers
    shop = Shop(mosquitto, tmp_path, front, back)
    async with running_agent(shop.settings) as agent:
        first = event("sale", "T1")
        await send(pos, first)
        assert (await ack_of(pos, first["event_id"]))["printer_id"] == "front"
        apply(agent, lambda m: m.set_terminal("T1", "back", actor=INSTALLER, at=time.time()))
        second = event("sale", "T1")
        await send(pos, second)
        ack = await ack_of(pos, second["event_id"])
        assert (ack["status"], ack["printer_id"]) == ("opened", "back")
    assert (len(front.pulses), len(back.pulses)) == (1, 1)
    # A restart loads the change from the agent's SQLite file: T1 stays on back.
    async with running_agent(shop.settings):
        third = event("sale", "T1")
        await send(pos, third)
        assert (await ack_of(pos, third["event_id"]))["printer_id"] == "back"
    assert (len(front.pulses), len(back.pulses)) == (1, 2)


async def test_a_printer_added_live_gets_its_own_lane_and_probe(mosquitto, tmp_path, printers, pos):
    front, back = printers
    shop = Shop(mosquitto, tmp_path, front, back)
    async with VirtualPrinterServer(name="new") as new, running_agent(shop.settings) as agent:
        table = {"host": "127.0.0.1", "port": new.port, "model": "epson-tm-m30"}
        apply(agent, lambda m: m.set_printer("side", table, actor=INSTALLER, at=time.time()))
        apply(agent, lambda m: m.set_terminal("T9", "side", actor=INSTALLER, at=time.time()))
        ev = event("sale", "T9")
        await send(pos, ev)
        ack = await ack_of(pos, ev["event_id"])
        assert (ack["status"], ack["printer_id"]) == ("opened", "side")
        assert len(new.pulses) == 1
        assert "side" in agent.prober.health
    assert front.pulses == [] and back.pulses == []


async def test_an_unlinked_till_is_unmapped_at_once(mosquitto, tmp_path, printers, pos):
    front, back = printers
    shop = Shop(mosquitto, tmp_path, front, back)
    async with running_agent(shop.settings) as agent:
        apply(agent, lambda m: m.remove_terminal("T3", actor=INSTALLER, at=time.time()))
        ev = event("sale", "T3")
        await send(pos, ev)
        assert (await ack_of(pos, ev["event_id"]))["status"] == "unmapped"
    assert back.pulses == []


async def test_an_agent_started_with_no_printer_takes_one_added_live(mosquitto, tmp_path, pos):
    """A fresh install set up from the console: the file names no printer and no till."""
    settings = make_settings(tmp_path, mosquitto.port, {}, {})
    async with VirtualPrinterServer(name="first") as first, running_agent(settings) as agent:
        table = {"host": "127.0.0.1", "port": first.port, "model": "epson-tm-t20iii"}
        apply(agent, lambda m: m.set_printer("front", table, actor=INSTALLER, at=time.time()))
        apply(agent, lambda m: m.set_terminal("T1", "front", actor=INSTALLER, at=time.time()))
        ev = event("sale", "T1")
        await send(pos, ev)
        ack = await ack_of(pos, ev["event_id"])
        assert (ack["status"], ack["printer_id"]) == ("opened", "front")
    assert len(first.pulses) == 1
