"""A printer that moves keeps opening its drawer: real zeroconf on loopback, real agent."""

import json
import time
import uuid
from datetime import UTC, datetime

import pytest

from agent.core.settings import validate
from agent.core.topics import Topics
from agent.devtools.emulator import VirtualPrinterServer
from agent.io.mqtt_link import PosClient
from tests.conftest import make_settings, running_agent
from tests.discovery.discovery_peers import mdns_registrar, service_info
from tests.waiting import eventually

pytestmark = pytest.mark.broker
TOPICS = Topics("t")
INSTANCE = f"Front TM-T20III {uuid.uuid4().hex[:6]}"


def event():
    return {
        "event_id": f"m-{uuid.uuid4().hex[:8]}",
        "type": "sale",
        "terminal_id": "T1",
        "occurred_at": datetime.now(UTC).isoformat(),
    }


async def test_mdns_printer_that_moves_keeps_opening(mosquitto, tmp_path):
    settings = make_settings(
        tmp_path,
        mosquitto.port,
        {"front": {"command_set": "escpos", "match": {"mdns_name": INSTANCE}}},
        {"T1": "front"},
        discovery={"interfaces": ["127.0.0.1"], "mdns": True},
        health={"interval_s": 30},
    )
    mqtt = validate({"shop_id": "t", "mqtt": {"url": mosquitto.url}}, lambda p: b"").mqtt
    async with (
        VirtualPrinterServer(host="127.0.0.1") as first,
        VirtualPrinterServer(host="127.0.0.2") as second,
        mdns_registrar() as zc,
        running_agent(settings) as agent,
        PosClient(mqtt, TOPICS.acks, client_id="pos-follow") as pos,
    ):
        assert agent.dispatcher.resolve("front") is None  # match-only: unknown until seen
        await zc.async_register_service(service_info(INSTANCE, "127.0.0.1", port=first.port))
        await eventually(lambda: agent.dispatcher.resolve("front") == ("127.0.0.1", first.port))
        one = event()
        await pos.publish(TOPICS.events, json.dumps(one).encode())
        assert (await pos.wait_ack(one["event_id"]))[0]["status"] == "opened"

        # DHCP hands the printer another address: the advertisement follows, so does the agent.
        moved_at = time.time()
        await zc.async_update_service(service_info(INSTANCE, "127.0.0.2", port=second.port))
        await eventually(lambda: agent.dispatcher.resolve("front") == ("127.0.0.2", second.port))
        two = event()
        await pos.publish(TOPICS.events, json.dumps(two).encode())
        assert (await pos.wait_ack(two["event_id"]))[0]["status"] == "opened"
        audit = agent.ledger.recent_audit()
    assert len(first.pulses) == 1
    assert len(second.pulses) == 1
    assert audit[0]["kind"] == "address_change"
    assert f"to 127.0.0.2:{second.port}" in audit[0]["detail"]
    assert audit[0]["at"] >= moved_at
