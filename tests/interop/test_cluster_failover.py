"""A real 3-node NATS cluster (JetStream, MQTT streams with 3 replicas): the agent's node
is killed with kill -9 mid-stream; every event pulses once and is acked, and the agent is
back on another node within seconds."""

from __future__ import annotations

import pytest

from tests.brokers import NatsCluster
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
    assert out.back_after_s is not None and out.back_after_s < 15.0, out.line()
