"""mqtt.url with several nodes: the agent moves on, in order, when its broker goes away."""

import json
import uuid

import pytest

from agent.core.topics import Topics
from agent.devtools.emulator import VirtualPrinterServer
from tests.brokers import MosquittoBroker, Target
from tests.conftest import free_port, make_settings, running_agent
from tests.faults.harness import event
from tests.interop.test_broker_contract import pos_client
from tests.waiting import eventually

pytestmark = pytest.mark.broker


@pytest.fixture
def pair(tmp_path):
    brokers = [MosquittoBroker(tmp_path / f"b{i}") for i in range(2)]
    for b in brokers:
        b.start()
    yield brokers
    for b in brokers:
        b.stop()


async def status_of(target, shop):
    topics = Topics(shop)
    async with pos_client(target, shop, f"w{uuid.uuid4().hex[:4]}") as w:
        await w.watch(topics.agent_status)
        await w.wait_for(lambda: bool(w.extra_topics[topics.agent_status]), 10)
        return json.loads(w.extra_topics[topics.agent_status][-1][0])


async def test_lost_node_moves_the_agent_to_the_next_and_status_names_it(pair, tmp_path):
    a, b = (Target(f"m{i}", x, "5") for i, x in enumerate(pair))
    shop = f"s{uuid.uuid4().hex[:8]}"
    async with VirtualPrinterServer(name="p") as vp:
        settings = make_settings(
            tmp_path,
            a.port,
            {"p": {"host": "127.0.0.1", "port": vp.port, "command_set": "escpos"}},
            {"T1": "p"},
            shop_id=shop,
            mqtt={"url": [a.url, b.url]},
        )
        async with running_agent(settings) as agent:
            on_a = await status_of(a, shop)
            assert agent.link.broker == f"127.0.0.1:{a.port}"
            a.broker.kill()
            await eventually(
                lambda: (
                    agent.link.broker == f"127.0.0.1:{b.port}" and agent.link.connected.is_set()
                ),
                10,
                "the agent on the standby",
            )
            on_b = await status_of(b, shop)
            async with pos_client(b, shop) as pos:
                ev = event("T1")
                await pos.publish(Topics(shop).events, json.dumps(ev).encode())
                ack = (await pos.wait_ack(ev["event_id"]))[0]
            connects = agent.link.connects
    assert on_a["broker"] == f"127.0.0.1:{a.port}"
    assert on_b["state"] == "online" and on_b["broker"] == f"127.0.0.1:{b.port}"
    assert ack["status"] == "opened" and len(vp.pulses) == 1
    assert connects == 2


async def test_nodes_are_tried_in_order_until_one_answers(pair, tmp_path):
    dead = [free_port(), free_port()]
    live = Target("m1", pair[1], "3.1.1")
    shop = f"s{uuid.uuid4().hex[:8]}"
    urls = [f"mqtt://127.0.0.1:{p}" for p in dead] + [live.url, pair[0].url]
    settings = make_settings(
        tmp_path,
        0,
        {"p": {"host": "127.0.0.1", "port": free_port(), "command_set": "escpos"}},
        {"T1": "p"},
        shop_id=shop,
        mqtt={"url": urls, "protocol": "3.1.1"},
    )
    async with running_agent(settings) as agent:
        status = await status_of(live, shop)
        node = agent.link.node
    assert node == 2  # the third in the list: both dead ports were tried first, in order
    assert status["broker"] == f"127.0.0.1:{live.port}"
