"""Drawer sensor polarity under the default config: each vendor's SDK default, end to end.

The virtual printers encode the vendors' semantics themselves (agent/devtools/emulation.py);
the agent resolves the default from the command set (agent.core.status.vendor_open_level).
"""

import json

import pytest

from agent.core.topics import Topics
from agent.devtools.demo import event
from agent.devtools.emulator import VirtualPrinterServer
from agent.io.mqtt_link import PosClient
from tests.conftest import make_settings, running_agent
from tests.waiting import eventually


async def _probed(agent, pid):
    health = agent.prober.health[pid]
    return health if health.reachable else None


@pytest.mark.parametrize("command_set", ["escpos", "star-line"])
async def test_closed_drawer_reads_closed_by_default_and_open_after_a_kick(
    tmp_path, mosquitto, command_set
):
    async with (
        VirtualPrinterServer(command_set=command_set, open_for_s=30) as vp,
        VirtualPrinterServer(command_set=command_set, open_for_s=30) as inverted,
    ):
        printers = {
            # No drawer_open_level: the vendor default applies.
            "p1": {"host": "127.0.0.1", "port": vp.port, "command_set": command_set},
            # Negative control: the opposite polarity reads the same closed drawer as open.
            "p2": {
                "host": "127.0.0.1",
                "port": inverted.port,
                "command_set": command_set,
                "drawer_open_level": "low" if command_set.startswith("star") else "high",
            },
        }
        settings = make_settings(
            tmp_path,
            mosquitto.port,
            printers,
            {"T1": "p1"},
            health={"interval_s": 0.2, "drawer_open_alert_s": 60.0},
        )
        # Unset in the file: the vendor's default is what validation puts there.
        expected = "high" if command_set.startswith("star") else "low"
        assert settings.printers["p1"].drawer_open_level == expected
        topics = Topics(settings.shop_id)
        async with (
            running_agent(settings) as agent,
            PosClient(settings.mqtt, topics.acks, client_id="pos") as pos,
        ):
            closed = await eventually(lambda: _probed(agent, "p1"), what="first probe of p1")
            wrong = await eventually(lambda: _probed(agent, "p2"), what="first probe of p2")
            assert closed.drawer_open is False
            assert wrong.drawer_open is True
            ev = event("sale", "T1")
            await pos.publish(topics.events, json.dumps(ev).encode())
            [ack] = await pos.wait_ack(ev["event_id"])
            assert (ack["status"], ack["drawer_open"]) == ("opened", True)
            assert len(vp.pulses) == 1 and inverted.pulses == []
