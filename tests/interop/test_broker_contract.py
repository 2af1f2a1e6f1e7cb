"""The agent's MQTT contract, unchanged, on every broker: mosquitto 2 (MQTT 5 and 3.1.1),
RabbitMQ 3.x's MQTT plugin and NATS 2.9+ with JetStream (MQTT 3.1.1).

One suite, parametrized over `target` (tests/interop/conftest.py); each test has its own shop,
so the brokers are started once per session and shared.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest

from agent.core.settings import validate
from agent.core.topics import Topics
from agent.devtools.emulator import VirtualPrinterServer
from agent.io.mqtt_link import PosClient
from tests.brokers import Target
from tests.conftest import make_settings, running_agent
from tests.faults.harness import (
    AgentProcess,
    Fleet,
    ReliablePos,
    event,
    ledger_row,
    paced,
    tally,
    terminal,
    write_config,
)
from tests.faults.test_state_dir import _fsize

pytestmark = pytest.mark.broker


def new_shop() -> str:
    return f"s{uuid.uuid4().hex[:10]}"


def agent_settings(target: Target, tmp_path: Path, shop: str, printer_port: int, **sections):
    return make_settings(
        tmp_path,
        target.port,
        {"p": {"host": "127.0.0.1", "port": printer_port, "command_set": "escpos"}},
        {"T1": "p"},
        shop_id=shop,
        mqtt={"url": target.url, "protocol": target.protocol},
        **sections,
    )


def pos_client(target: Target, shop: str, name: str = "pos") -> PosClient:
    raw = {"shop_id": shop, "mqtt": {"url": target.url, "protocol": target.protocol}}
    settings = validate(raw, lambda p: b"").mqtt
    return PosClient(settings, Topics(shop).acks, client_id=f"{name}-{shop}")


def agent_config(target: Target, tmp_path: Path, shop: str, printers, terminals) -> Path:
    return write_config(
        tmp_path / "agent.toml",
        broker_port=target.port,
        printers=printers,
        terminals=terminals,
        db=tmp_path / "ledger.db",
        shop_id=shop,
        client_id=f"drawer-agent-{shop}",
        protocol=target.protocol,
    )


async def test_core_path_and_ack_contract(target, tmp_path):
    shop = new_shop()
    topics = Topics(shop)
    async with (
        VirtualPrinterServer(name="p") as vp,
        pos_client(target, shop) as pos,
        running_agent(agent_settings(target, tmp_path, shop, vp.port)),
    ):
        sale = event("T1")
        await pos.publish(topics.events, json.dumps(sale).encode())
        opened = (await pos.wait_ack(sale["event_id"]))[0]
        await pos.publish(topics.events, json.dumps(sale).encode())  # a POS retry
        dup = (await pos.wait_ack(sale["event_id"], count=2))[1]
        unmapped = event("T9")
        await pos.publish(topics.events, json.dumps(unmapped).encode())
        unmapped_ack = (await pos.wait_ack(unmapped["event_id"]))[0]
        await pos.publish(topics.events, b"[1,2,3]")
        bad = (await pos.wait_ack(None))[0]
    print(f"\n{target.id}: {opened['status']} {opened['latency_ms']} ms, {dup['status']}")
    assert opened["status"] == "opened" and opened["printer_id"] == "p"
    assert (dup["status"], dup["detail"]) == ("duplicate", "already handled: opened")
    assert unmapped_ack["status"] == "unmapped"
    assert bad["status"] == "rejected" and "not an object" in bad["detail"]
    assert len(vp.pulses) == 1


async def test_retained_status_names_the_node_and_last_will_says_offline(
    target, tmp_path, agent_proc
):
    shop = new_shop()
    topics = Topics(shop)
    printer_topic = topics.printer_status("p")
    async with VirtualPrinterServer(name="p") as vp:
        agent = AgentProcess(agent_config(target, tmp_path, shop, {"p": vp.port}, {"T1": "p"}))
        agent_proc.append(agent)
        await agent.start()
        async with pos_client(target, shop, "watch") as live:
            await live.watch(topics.agent_status)
            await live.wait_for(lambda: _states(live, topics.agent_status)[-1:] == ["online"], 20)
        # A subscriber that arrives later gets the retained status, on the exact topic.
        async with pos_client(target, shop, "late") as late:
            await late.watch(topics.agent_status)
            await late.watch(printer_topic)
            await late.wait_for(lambda: bool(late.extra_topics[printer_topic]), 10)
            await late.wait_for(lambda: bool(late.extra_topics[topics.agent_status]), 10)
            status = json.loads(late.extra_topics[topics.agent_status][-1][0])
            retained_flag = late.extra_topics[topics.agent_status][-1][1]
            printer = json.loads(late.extra_topics[printer_topic][-1][0])
        # The same retained status through a wildcard, which RabbitMQ 3.10 does not serve
        # (this shop's own, so other tests' retained statuses on the shared broker stay out).
        async with pos_client(target, shop, "wild") as wild:
            pattern = f"shops/{shop}/+/status"
            await wild.watch(pattern)
            wildcard_got = await _within(wild.wait_for(lambda: bool(wild.extra_topics[pattern]), 3))
            # A live message on an established wildcard subscription arrives everywhere.
            async with pos_client(target, shop, "watch2") as live:
                await live.watch(topics.agent_status)
                await agent.kill()
                await live.wait_for(lambda: "offline" in _states(live, topics.agent_status), 15)
                await wild.wait_for(lambda: "offline" in _states(wild, pattern), 10)
        async with pos_client(target, shop, "after") as after:
            await after.watch(topics.agent_status)
            await after.wait_for(lambda: bool(after.extra_topics[topics.agent_status]), 10)
            final = json.loads(after.extra_topics[topics.agent_status][-1][0])
    print(f"\n{target.id}: status={status} printer={printer} wildcard retained={wildcard_got}")
    assert status["state"] == "online" and retained_flag
    assert status["broker"] == f"127.0.0.1:{target.port}"
    assert printer["online"] is True
    assert final == {"state": "offline"}  # the last will, retained
    assert wildcard_got == target.broker.quirks.retained_on_wildcard


async def test_events_sent_while_the_agent_is_down_pulse_once_on_return(target, tmp_path):
    shop = new_shop()
    topics = Topics(shop)
    async with VirtualPrinterServer(name="p") as vp, pos_client(target, shop) as pos:
        settings = agent_settings(target, tmp_path, shop, vp.port)
        first = event("T1")
        async with running_agent(settings):  # creates the persistent session
            await pos.publish(topics.events, json.dumps(first).encode())
            await pos.wait_ack(first["event_id"])
        queued = [event("T1") for _ in range(5)]
        for ev in queued:
            await pos.publish(topics.events, json.dumps(ev).encode())
        await pos.publish(topics.events, json.dumps(first).encode())  # already handled
        async with running_agent(settings):
            acks = [(await pos.wait_ack(ev["event_id"], timeout=20))[0] for ev in queued]
            dup = (await pos.wait_ack(first["event_id"], count=2, timeout=20))[1]
        # Once more: nothing acked comes back a second time.
        async with running_agent(settings):
            probe = event("T1")
            await pos.publish(topics.events, json.dumps(probe).encode())
            await pos.wait_ack(probe["event_id"])
    assert [a["status"] for a in acks] == ["opened"] * 5
    assert dup["status"] == "duplicate"
    assert len(vp.pulses) == 7
    assert all(len(pos.acks[ev["event_id"]]) == 1 for ev in queued), [
        pos.acks[e["event_id"]] for e in queued
    ]


async def test_puback_waits_for_the_ledger(target, tmp_path, agent_proc):
    shop = new_shop()
    db = tmp_path / "ledger.db"
    async with VirtualPrinterServer(name="p") as vp:
        agent = AgentProcess(agent_config(target, tmp_path, shop, {"p": vp.port}, {"T1": "p"}))
        agent_proc.append(agent)
        pos = ReliablePos(target.port, f"pos-{shop}", topics=Topics(shop), protocol=target.protocol)
        async with pos:
            await agent.start()
            await pos.wait_online(set())
            assert agent.proc is not None
            _fsize(agent.proc.pid, 1)  # every ledger write fails from now on
            mark = len(agent.lines)
            ev = event("T1")
            pos.send(ev)
            await agent.wait_log(r"ledger error, message left with the broker", after=mark)
            during = (len(vp.pulses), pos.final(ev["event_id"]), ledger_row(db, ev["event_id"]))
            _fsize(agent.proc.pid, None)
            # Only a broker that still holds the un-PUBACKed message can deliver it again.
            recovered = await pos.wait_final([ev["event_id"]], 45)
            ack = pos.final(ev["event_id"]) or {"status": "no ack"}
    print(f"\n{target.id}: during={during} after={ack['status']} recovered={recovered}")
    assert during == (0, None, "not in the ledger")
    assert recovered and ack["status"] == "opened"
    assert len(vp.pulses) == 1


EVENTS = 60
RATE = 20.0  # events per second
KILL_AT = 25


async def test_broker_restart_mid_stream_loses_and_doubles_nothing(target, tmp_path, agent_proc):
    shop = new_shop()
    db = tmp_path / "ledger.db"
    async with Fleet(EVENTS) as fleet:
        agent = AgentProcess(agent_config(target, tmp_path, shop, fleet.ports, fleet.terminals))
        agent_proc.append(agent)
        pos = ReliablePos(
            target.port,
            f"pos-{shop}",
            topics=Topics(shop),
            protocol=target.protocol,
            ack_timeout=15.0,
            on_republish=lambda eid: ledger_row(db, eid),
        )
        async with pos:
            await agent.start()
            await pos.wait_online(set())
            events = [event(terminal(i)) for i in range(EVENTS)]
            down_s = 0.0
            async for i, ev in paced(events, RATE):
                pos.send(ev)
                if i == KILL_AT:
                    k0 = time.monotonic()
                    await asyncio.to_thread(target.broker.restart)
                    down_s = time.monotonic() - k0
            done = await pos.wait_final([e["event_id"] for e in events], timeout=60)
            t = tally(events, fleet, pos, 60.0, db)
    print(
        f"\n{target.id}: broker kill -9 + restart ({down_s:.1f} s down) in {EVENTS} events: "
        f"{t.line()} republished={len(pos.republished)} pos_connects={pos.connects}"
    )
    assert pos.connects >= 2, "the POS never saw the broker go away"
    assert not t.doubled, t.doubled
    assert not t.lost, t.lost
    assert t.opened_once == EVENTS, t.line()
    assert done


def _states(client: PosClient, topic: str) -> list[str]:
    out = []
    for payload, _retained in client.extra_topics.get(topic, []):
        try:
            out.append(json.loads(payload).get("state"))
        except ValueError:
            continue
    return out


async def _within(waiting) -> bool:
    try:
        await waiting
    except TimeoutError:
        return False
    return True
