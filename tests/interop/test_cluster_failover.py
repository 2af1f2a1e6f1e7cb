"""Real clusters on loopback, the agent's node killed with kill -9 mid-stream: a 3-node NATS
cluster (JetStream, MQTT streams with 3 replicas) and a 2-node RabbitMQ cluster (session queues
mirrored to both nodes). Every event pulses once and is acked, and the agent is back on
another node within seconds."""

from __future__ import annotations

import pytest

from tests.brokers import NatsCluster, RabbitCluster
from tests.interop.failover import run_failover

pytestmark = pytest.mark.broker


@pytest.fixture
def cluster(tmp_path):
    nodes = NatsCluster(tmp_path / "cluster")
    nodes.start()
    yield nodes
    nodes.stop()


async def test_agent_node_killed_mid_stream_loses_and_doubles_nothing(
    cluster, tmp_path, agent_proc
):
    out = await run_failover(cluster.nodes, tmp_path, agents=agent_proc)
    print(f"\nNATS 3-node failover: {out.line()}")
    t = out.tally
    assert not t.doubled, t.doubled
    assert not t.lost, t.lost
    assert t.opened_once == out.events, t.line()
    assert out.all_final
    others = {f"127.0.0.1:{n.port}" for n in cluster.nodes[1:]}
    assert out.back_on in others, f"the agent never announced itself on another node: {out}"
    assert out.back_after_s is not None, out.line()  # how soon: bench_failover


@pytest.fixture
def rabbit_cluster(tmp_path, request):
    nodes = RabbitCluster(tmp_path / "rabbit", mirrored=request.param)
    nodes.start()
    yield nodes
    nodes.stop()


@pytest.mark.parametrize("rabbit_cluster", [True], indirect=True, ids=["mirrored"])
async def test_rabbitmq_agent_node_killed_mid_stream_loses_and_doubles_nothing(
    rabbit_cluster, tmp_path, agent_proc
):
    out = await run_failover(
        rabbit_cluster.nodes, tmp_path, agents=agent_proc, events=100, rate=10.0, kill_at=30
    )
    print(f"\nRabbitMQ 2-node failover: {out.line()}")
    t = out.tally
    assert not t.doubled, t.doubled
    assert not t.lost, t.lost
    assert t.opened_once == out.events, t.line()
    assert out.all_final
    assert out.back_on == f"127.0.0.1:{rabbit_cluster.nodes[1].port}", out.line()
    assert out.back_after_s is not None, out.line()  # how soon: bench_failover


@pytest.mark.parametrize("rabbit_cluster", [False], indirect=True, ids=["unmirrored"])
async def test_negative_control_an_unmirrored_session_queue_dies_with_its_node(
    rabbit_cluster, tmp_path, agent_proc
):
    """The same run without the mirroring policy: the surviving node refuses the agent's
    session while the queue's home node is down, so the checks above would fail."""
    out = await run_failover(
        rabbit_cluster.nodes,
        tmp_path,
        agents=agent_proc,
        events=30,
        rate=10.0,
        kill_at=10,
        final_timeout=15.0,
    )
    print(f"\nRabbitMQ 2-node, unmirrored: {out.line()}")
    assert out.back_on is None, out.line()
    assert out.tally.lost, out.line()
    assert not out.tally.doubled, out.tally.doubled
