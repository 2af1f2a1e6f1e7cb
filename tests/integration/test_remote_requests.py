"""Requests over MQTT (issue 11) on the raw contract: real mosquitto, the real agent, virtual
printers. Each change acts on the next event; bad input gets an error response, not a crash."""

import json
import random
import time
import uuid

import pytest

from agent.core.topics import Topics
from agent.devtools.emulator import VirtualPrinterServer
from agent.io import signing
from agent.io.mqtt_link import PosClient
from tests.conftest import running_agent
from tests.integration.test_core_path import (
    Shop,
    ack_of,
    event,
    make_settings_for_pos,
    pos,
    send,
)
from tests.waiting import eventually

__all__ = ["pos"]

pytestmark = pytest.mark.broker
TOPICS = Topics("t")
SECRET = b"s" * 40


def responses(pos):
    return [json.loads(p) for p, _ in pos.extra_topics[TOPICS.response("#")]]


async def ask(pos, name, body=None, *, raw=None, retain=False, qos=1):
    """Publish one request; return the next response (one request in flight at a time)."""
    if TOPICS.response("#") not in pos.extra_topics:
        await pos.watch(TOPICS.response("#"))
    tx = f"tx-{uuid.uuid4().hex[:8]}"
    payload = raw if raw is not None else json.dumps({**(body or {}), "transaction": tx}).encode()
    before = len(responses(pos))
    await pos.publish(TOPICS.request(name), payload, retain=retain, qos=qos)
    await pos.wait_for(lambda: len(responses(pos)) > before)
    answer = responses(pos)[before]
    if raw is None:
        assert answer["transaction"] == tx
    return answer


def signed(claims, secret=SECRET, kid="pos-1", ttl=30):
    now = int(time.time())
    return signing.sign_hs256({"iat": now, "exp": now + ttl, **claims}, kid, secret).encode()


async def test_terminals_set_acts_on_the_next_event_and_a_stale_revision_conflicts(
    mosquitto, tmp_path, printers, pos
):
    front, back = printers
    shop = Shop(mosquitto, tmp_path, front, back)
    async with running_agent(shop.settings) as agent:
        got = await ask(pos, "config/get")
        assert got["status"] == "ok"
        assert got["data"]["terminals"]["T1"]["printer_id"] == "front"
        revision = got["data"]["terminals"]["T1"]["revision"]
        moved = await ask(
            pos, "terminals/set", {"terminal_id": "T1", "printer_id": "back", "revision": revision}
        )
        assert moved["status"] == "ok", moved
        assert (moved["data"]["key"], moved["data"]["new"]) == ("T1", "back")
        ev = event("sale", "T1")
        await send(pos, ev)
        ack = await ack_of(pos, ev["event_id"])
        assert (ack["status"], ack["printer_id"]) == ("opened", "back")
        # A second till editor still holding the old revision is refused, not applied.
        stale = await ask(
            pos, "terminals/set", {"terminal_id": "T1", "printer_id": "front", "revision": revision}
        )
        assert stale["status"] == "error"
        assert stale["error"]["code"] == "conflict"
        assert agent.mapping.current.terminal_map()["T1"] == "back"
        audit = agent.mapping.store.changes(10)
        assert audit[0].origin == "mqtt"
    assert (len(front.pulses), len(back.pulses)) == (0, 1)


async def test_printer_set_remove_and_kick(mosquitto, tmp_path, printers, pos):
    front, back = printers
    shop = Shop(mosquitto, tmp_path, front, back)
    async with running_agent(shop.settings) as agent:
        table = {"host": "127.0.0.1", "port": back.port, "model": "epson-tm-m30"}
        added = await ask(pos, "printers/set", {"printer_id": "side", **table})
        assert added["status"] == "ok", added
        assert "side" in agent.mapping.current.printers
        bad = await ask(pos, "printers/set", {"printer_id": "x", "host": "h", "drawer": 9})
        assert (bad["status"], bad["error"]["code"]) == ("error", "invalid")
        assert "drawer" in bad["error"]["detail"]
        in_use = await ask(pos, "printers/remove", {"printer_id": "front"})
        assert in_use["error"]["code"] == "in_use"
        gone = await ask(pos, "printers/remove", {"printer_id": "side"})
        assert gone["status"] == "ok"
        kicked = await ask(pos, "printers/kick", {"printer_id": "front"})
        assert kicked["status"] == "ok", kicked
        assert kicked["data"]["status"] == "opened"
        assert kicked["data"]["drawer_open"] is True  # the virtual drawer sprang open
        unknown = await ask(pos, "printers/kick", {"printer_id": "nope"})
        assert unknown["error"]["code"] == "unknown_printer"
    assert len(front.pulses) == 1


@pytest.mark.parametrize(
    ("name", "raw", "code", "says"),
    [
        ("config/get", b"{not json", "malformed", "not JSON"),
        ("config/get", b"[1]", "malformed", "JSON object"),
        ("terminals/set", b'{"transaction": "TX", "terminal_id": "T1"}', "malformed", "printer_id"),
        (
            "terminals/set",
            b'{"transaction": "TX", "terminal_id": 5, "printer_id": "a"}',
            "malformed",
            "terminal_id",
        ),  # noqa: E501
        (
            "terminals/set",
            b'{"transaction": "TX", "terminal_id": "T1", "printer_id": "back", "revision": "7"}',
            "malformed",
            "revision",
        ),  # noqa: E501
        (
            "terminals/remove",
            b'{"transaction": "TX", "terminal_id": "T1", "extra": 1}',
            "malformed",
            "extra",
        ),  # noqa: E501
        ("config/delete", b'{"transaction": "TX"}', "unknown_request", "known"),
    ],
)
async def test_bad_requests_get_an_error_naming_the_problem(
    mosquitto, tmp_path, printers, pos, name, raw, code, says
):
    front, back = printers
    shop = Shop(mosquitto, tmp_path, front, back)
    async with running_agent(shop.settings) as agent:
        answer = await ask(pos, name, raw=raw)
        assert answer["status"] == "error"
        assert answer["error"]["code"] == code
        assert says in answer["error"]["detail"]
        # Still alive: the next event opens, the mapping is unchanged.
        ev = event("sale", "T1")
        await send(pos, ev)
        assert (await ack_of(pos, ev["event_id"]))["status"] == "opened"
        assert agent.mapping.current.revision == 0


async def test_retained_and_qos0_requests_are_refused(mosquitto, tmp_path, printers, pos):
    front, back = printers
    shop = Shop(mosquitto, tmp_path, front, back)
    await pos.watch(TOPICS.response("#"))
    # Already on the broker when the agent subscribes: delivered with the retain flag.
    await pos.publish(
        TOPICS.request("terminals/remove"),
        b'{"transaction": "r", "terminal_id": "T1"}',
        retain=True,
    )
    async with running_agent(shop.settings) as agent:
        await pos.wait_for(lambda: len(responses(pos)) == 1)
        assert responses(pos)[0]["transaction"] == "r"
        assert responses(pos)[0]["error"]["code"] == "retained"
        assert "T1" in agent.mapping.current.terminal_map()
        qos0 = await ask(pos, "terminals/remove", {"terminal_id": "T1"}, qos=0)
        assert qos0["error"]["code"] == "qos0"
        # Negative control: the same request, QoS 1 and not retained, is applied.
        done = await ask(pos, "terminals/remove", {"terminal_id": "T1"})
        assert done["status"] == "ok"
        assert "T1" not in agent.mapping.current.terminal_map()
    # Clear the retained request so it does not outlive the test on the broker.
    await pos.publish(TOPICS.request("terminals/remove"), b"", retain=True)


async def test_signed_requests_forged_unsigned_and_replayed_are_refused(
    mosquitto, tmp_path, printers, pos
):
    front, back = printers
    security = {"require_signed": True, "keys": {"pos-1": SECRET.decode()}}
    shop = Shop(mosquitto, tmp_path, front, back, security=security)
    async with running_agent(shop.settings) as agent:
        body = {"terminal_id": "T1", "printer_id": "back", "transaction": "TX"}
        unsigned = await ask(pos, "terminals/set", raw=json.dumps(body).encode())
        assert (unsigned["error"]["code"], unsigned["error"]["detail"][:8]) == (
            "signature",
            "unsigned",
        )
        forged = await ask(pos, "terminals/set", raw=signed(body, secret=b"x" * 40))
        assert forged["transaction"] == "TX"  # echoed for correlation, never trusted
        assert forged["error"]["code"] == "signature"
        assert "bad_signature" in forged["error"]["detail"]
        assert agent.mapping.current.terminal_map()["T1"] == "front"
        # Negative control: the right key is obeyed, and audited under its key id.
        token = signed(body)
        ok = await ask(pos, "terminals/set", raw=token)
        assert ok["status"] == "ok", ok
        assert agent.mapping.current.terminal_map()["T1"] == "back"
        assert agent.mapping.store.changes(1)[0].who == "pos-1"
        # The same token again, byte for byte (a client's retry), gets the first answer;
        # the same token in other bytes is a replay and is refused.
        again = await ask(pos, "terminals/set", raw=token)
        assert again == ok
        replay = await ask(pos, "terminals/set", raw=token + b"\n")
        assert replay["error"]["code"] == "signature"
        assert replay["error"]["detail"].startswith("replay")
        expired = await ask(pos, "terminals/set", raw=signed(body, ttl=-60))
        assert "expired" in expired["error"]["detail"]
        ev = event("sale", "T1")
        await send(pos, signed(ev))
        assert (await ack_of(pos, ev["event_id"]))["printer_id"] == "back"


def retained_of(pos, topic):
    return [json.loads(p) for p, _ in pos.extra_topics[topic] if p]


async def test_config_and_inventory_are_retained_republished_on_change_and_reconnect(
    mosquitto, tmp_path, printers, pos
):
    front, back = printers
    shop = Shop(mosquitto, tmp_path, front, back)
    async with running_agent(shop.settings) as agent:
        await pos.watch(TOPICS.config)
        await pos.watch(TOPICS.inventory)
        await pos.wait_for(
            lambda: retained_of(pos, TOPICS.config) and retained_of(pos, TOPICS.inventory)
        )
        config = retained_of(pos, TOPICS.config)[-1]
        assert config["revision"] == 0
        assert config["terminals"]["T1"] == {
            "till": "T1",
            "printer_id": "front",
            "origin": "file",
            "revision": 0,
            "overrides_file": False,
        }
        inventory = retained_of(pos, TOPICS.inventory)[-1]
        entry = {p["printer_id"]: p for p in inventory["printers"]}["back"]
        assert entry["brand"].startswith("Star")
        assert entry["command_set"] == "star-line"
        assert entry["address"] == f"127.0.0.1:{back.port}"
        assert entry["tills"] == ["T3"] and entry["configured"] is True

        # The probe's answer reaches the inventory: online, drawer closed.
        def front_entry():
            return {p["printer_id"]: p for p in retained_of(pos, TOPICS.inventory)[-1]["printers"]}[
                "front"
            ]

        await pos.wait_for(lambda: front_entry()["online"] is True)
        assert front_entry()["drawer_open"] is False
        assert front_entry()["brand"] == "Epson"
        # A change is republished with its revision and origin.
        moved = await ask(pos, "terminals/set", {"terminal_id": "T1", "printer_id": "back"})
        assert moved["status"] == "ok"
        await pos.wait_for(lambda: retained_of(pos, TOPICS.config)[-1]["revision"] == 1)
        assert retained_of(pos, TOPICS.config)[-1]["terminals"]["T1"]["origin"] == "mqtt"
        # Cleared behind the agent's back: a fresh reader finds no config (negative control)...
        await pos.publish(TOPICS.config, b"", retain=True)
        assert await retained_config(mosquitto) is None
        # ...until the agent's next connect, which publishes it again.
        connects = agent.link.connects
        mosquitto.kill()
        mosquitto.start()
        await eventually(lambda: agent.link.connects > connects, what="the agent's reconnect")
        again = await eventually(lambda: retained_config(mosquitto), what="config republished")
        assert again["revision"] == 1


async def retained_config(mosquitto):
    """What a fresh subscriber gets on agent/config: the retained body, or None."""
    sentinel = f"test/sentinel/{uuid.uuid4().hex[:6]}"
    async with PosClient(
        make_settings_for_pos(mosquitto), TOPICS.acks, client_id=f"r-{uuid.uuid4().hex[:6]}"
    ) as reader:
        await reader.publish(sentinel, b"x", retain=True)
        await reader.watch(TOPICS.config)
        # Retained messages come in subscription order: once the sentinel's is here,
        # the config's would have come before it.
        await reader.watch(sentinel)
        await reader.wait_for(lambda: reader.extra_topics[sentinel])
        await reader.publish(sentinel, b"", retain=True)
        got = retained_of(reader, TOPICS.config)
    return got[-1] if got else None


async def test_discovery_start_sweeps_and_the_inventory_lists_the_new_printer(
    mosquitto, tmp_path, printers, pos
):
    front, back = printers
    # Discovery probes port 9100: a loopback address of its own keeps it free of others'.
    host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"
    async with VirtualPrinterServer(host=host, port=9100, name="found") as found:
        discovery = {
            "enabled": True,
            "subnets": [f"{host}/32"],
            "mdns": False,
            "snmp": False,
            "interval_s": 0,
        }
        shop = Shop(mosquitto, tmp_path, front, back, discovery=discovery)
        async with running_agent(shop.settings):
            await pos.watch(TOPICS.inventory)
            # The console's rules: a subnet wider than a /22 is refused, not narrowed.
            wide = await ask(pos, "discovery/start", {"subnets": ["10.0.0.0/8"]})
            assert wide["error"]["code"] == "invalid"
            assert "wider" in wide["error"]["detail"]
            started = await ask(pos, "discovery/start")
            assert started == {
                "transaction": started["transaction"],
                "status": "ok",
                "data": {"started": True},
            }

            def unconfigured():
                latest = retained_of(pos, TOPICS.inventory)
                return [p for p in latest[-1]["printers"] if not p["configured"]] if latest else []

            await pos.wait_for(lambda: bool(unconfigured()))
            assert unconfigured()[0]["address"] == f"{host}:{found.port}"
            assert unconfigured()[0]["origin"] == "discovered"
