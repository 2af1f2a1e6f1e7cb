"""The Python client end to end: real mosquitto, the real agent, real virtual printers.

The same scenarios run through the TypeScript client in test_typescript_client.py.
"""

import asyncio

import pytest
from drawer_agent_client import Client, NoAck, Rejected, RequestFailed

from tests.conftest import make_settings, running_agent
from tests.waiting import eventually

pytestmark = pytest.mark.broker
SECRET = b"k" * 40


def shop(tmp_path, mosquitto, front, back, *, signed=False):
    sections = {}
    if signed:
        sections["security"] = {"require_signed": True, "keys": {"pos-1": SECRET.decode()}}
    return make_settings(
        tmp_path,
        mosquitto.port,
        {
            "front": {"host": "127.0.0.1", "port": front.port, "model": "epson-tm-t20iii"},
            "back": {"host": "127.0.0.1", "port": back.port, "model": "star-tsp650ii"},
        },
        {"T1": "front", "T3": "back"},
        **sections,
    )


async def test_an_event_opens_the_drawer(mosquitto, tmp_path, printers):
    front, back = printers
    async with (
        running_agent(shop(tmp_path, mosquitto, front, back)),
        Client(mosquitto.url, "t") as c,
    ):
        ack = await c.publish({"type": "sale", "terminal_id": "T1"})
    assert ack.status == "opened" and ack.printer_id == "front"
    assert ack.event_id and ack.attempts == 1
    assert len(front.pulses) == 1 and back.pulses == []


async def test_a_signed_event_opens_and_a_forged_one_is_rejected(mosquitto, tmp_path, printers):
    front, back = printers
    async with running_agent(shop(tmp_path, mosquitto, front, back, signed=True)):
        async with Client(mosquitto.url, "t", key_id="pos-1", key=SECRET) as c:
            ack = await c.publish({"type": "sale", "terminal_id": "T3"})
        async with Client(mosquitto.url, "t", key_id="pos-1", key=b"x" * 40) as forger:
            with pytest.raises(Rejected) as refused:
                await forger.publish({"type": "sale", "terminal_id": "T3"})
        async with Client(mosquitto.url, "t") as unsigned:
            with pytest.raises(Rejected, match="unsigned"):
                await unsigned.publish({"type": "sale", "terminal_id": "T3"})
    assert ack.status == "opened"
    assert "bad_signature" in refused.value.reason
    assert len(back.pulses) == 1


async def test_a_duplicate_gives_duplicate(mosquitto, tmp_path, printers):
    front, back = printers
    async with (
        running_agent(shop(tmp_path, mosquitto, front, back)),
        Client(mosquitto.url, "t") as c,
    ):
        event_id, payload = c.prepare({"type": "refund", "terminal_id": "T1"})
        first = await c.publish_prepared(event_id, payload)
        again = await c.publish_prepared(event_id, payload)
    assert first.status == "opened"
    assert (again.status, again.detail) == ("duplicate", "already handled: opened")
    assert len(front.pulses) == 1


async def test_a_broker_restart_mid_publish_gives_one_pulse_and_one_opened(
    mosquitto, tmp_path, printers
):
    front, back = printers
    async with (
        running_agent(shop(tmp_path, mosquitto, front, back)) as agent,
        Client(mosquitto.url, "t", retry_every_s=1.0, timeout_s=30) as c,
    ):
        publishing = asyncio.create_task(c.publish({"type": "sale", "terminal_id": "T1"}))
        # The pulse is out; its ack waits ~0.4 s for the drawer sensor: kill -9 now.
        await front.wait_for_pulses(1)
        mosquitto.kill()
        mosquitto.start()  # at once: neither connection has run since the kill
        ack = await publishing
        assert c.connects >= 2
        # An ack for our retry can overtake the count of the first copy's outcome.
        await eventually(lambda: agent.reporter.statuses.get("opened", 0) >= 1, what="opening")
    # The agent's own ack may be lost with the broker: mosquitto PUBACKs before its snapshot
    # reaches disk (README, "For POS backend developers"). The client's retry then gets the
    # agent's answer for the id it already handled, which names the first outcome.
    assert (ack.status, ack.detail) in {
        ("opened", ack.detail),
        ("duplicate", "already handled: opened"),
    }
    assert len(front.pulses) == 1
    assert agent.reporter.statuses.get("opened") == 1


async def test_no_agent_means_no_ack_not_a_hang(mosquitto):
    async with Client(mosquitto.url, "nobody", retry_every_s=0.2, timeout_s=1.0) as c:
        with pytest.raises(NoAck) as missing:
            await c.publish({"type": "sale", "terminal_id": "T1"})
    assert missing.value.sent >= 3  # it kept re-publishing the same payload


async def test_a_config_change_over_mqtt_takes_effect_on_the_next_event(
    mosquitto, tmp_path, printers
):
    front, back = printers
    async with (
        running_agent(shop(tmp_path, mosquitto, front, back)),
        Client(mosquitto.url, "t") as c,
    ):
        config = await c.request("config/get")
        revision = config["terminals"]["T1"]["revision"]
        changed = await c.request(
            "terminals/set", {"terminal_id": "T1", "printer_id": "back", "revision": revision}
        )
        ack = await c.publish({"type": "sale", "terminal_id": "T1"})
        with pytest.raises(RequestFailed) as stale:
            await c.request(
                "terminals/set", {"terminal_id": "T1", "printer_id": "front", "revision": revision}
            )
        kicked = await c.request("printers/kick", {"printer_id": "front"})
    assert changed["revision"] == 1
    assert (ack.status, ack.printer_id) == ("opened", "back")
    assert stale.value.code == "conflict"
    assert (kicked["status"], kicked["drawer_open"]) == ("opened", True)
    assert (len(front.pulses), len(back.pulses)) == (1, 1)


async def test_a_forged_request_is_refused(mosquitto, tmp_path, printers):
    front, back = printers
    async with running_agent(shop(tmp_path, mosquitto, front, back, signed=True)) as agent:
        async with Client(mosquitto.url, "t", key_id="pos-1", key=b"x" * 40) as forger:
            with pytest.raises(RequestFailed) as forged:
                await forger.request("terminals/set", {"terminal_id": "T1", "printer_id": "back"})
        assert agent.mapping.current.terminal_map()["T1"] == "front"
        # Negative control: the real key is obeyed.
        async with Client(mosquitto.url, "t", key_id="pos-1", key=SECRET) as c:
            await c.request("terminals/set", {"terminal_id": "T1", "printer_id": "back"})
        assert agent.mapping.current.terminal_map()["T1"] == "back"
    assert forged.value.code == "signature"
    assert "bad_signature" in forged.value.detail


async def test_watch_gives_status_config_and_inventory(mosquitto, tmp_path, printers):
    front, back = printers
    async with (
        running_agent(shop(tmp_path, mosquitto, front, back)),
        Client(mosquitto.url, "t") as c,
    ):
        seen: dict[str, object] = {}
        async with asyncio.timeout(10):
            async for update in c.watch():
                seen.setdefault(update.kind, update.data)
                if {"status", "config", "inventory"} <= set(seen):
                    break
        assert c.latest("inventory") is not None
    assert seen["status"]["state"] == "online"
    assert sorted(seen["config"]["printers"]) == ["back", "front"]
    assert {p["printer_id"] for p in seen["inventory"]["printers"]} == {"back", "front"}
