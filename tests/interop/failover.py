"""The cluster failover scenario, shared by its test and bench/bench_failover.py.

The agent is given every node and sits on the first; the POS publishes through the last; the
agent's node is killed with kill -9 in the middle of a steady stream of events.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.core.topics import Topics
from tests.brokers import Process
from tests.faults.harness import (
    AgentProcess,
    Fleet,
    ReliablePos,
    Tally,
    event,
    ledger_row,
    paced,
    tally,
    terminal,
    write_config,
)


@dataclass
class Outcome:
    tally: Tally
    all_final: bool
    back_on: str | None  # host:port of the node the agent announced itself on after the kill
    back_after_s: float | None  # kill -9 -> the agent's "online" on another node, at the POS
    ack_gap_s: float  # the longest stretch with no final ack arriving at the POS
    pulse_gap_s: float  # the longest stretch with no pulse at any printer (steady: 1/rate)
    latency_p50_ms: float  # publish -> final ack, every event
    latency_max_ms: float
    republished: int
    agent_connects: int
    events: int
    rate: float

    def line(self) -> str:
        return (
            f"{self.tally.line()} all_final={self.all_final} back_on={self.back_on} "
            f"back_after_s={self.back_after_s} ack_gap_s={self.ack_gap_s:.2f} "
            f"pulse_gap_s={self.pulse_gap_s:.2f} "
            f"p50={self.latency_p50_ms:.1f}ms max={self.latency_max_ms:.0f}ms "
            f"republished={self.republished} agent_connects={self.agent_connects}"
        )


async def run_failover(
    nodes: Sequence[Process],
    workdir: Path,
    *,
    events: int = 200,
    rate: float = 20.0,
    kill_at: int = 60,
    agents: list[AgentProcess] | None = None,
    agent_nodes: int | None = None,
    final_timeout: float = 90.0,
) -> Outcome:
    """`agent_nodes`: how many of the nodes the agent is given (all by default; 1 is the
    baseline of an agent that knows only the node that dies)."""
    shop = "fleet-failover"
    topics = Topics(shop)
    db = workdir / "ledger.db"
    first, pos_node = nodes[0], nodes[-1]
    async with Fleet(events) as fleet:
        config = write_config(
            workdir / "agent.toml",
            broker_port=first.port,
            printers=fleet.ports,
            terminals=fleet.terminals,
            db=db,
            shop_id=shop,
            client_id=f"drawer-agent-{shop}",
            urls=[n.url for n in nodes[: agent_nodes or len(nodes)]],
            protocol="3.1.1",
        )
        agent = AgentProcess(config)
        if agents is not None:
            agents.append(agent)
        pos = ReliablePos(
            pos_node.port,
            f"pos-{shop}",
            topics=topics,
            protocol="3.1.1",
            ack_timeout=15.0,
            on_republish=lambda eid: ledger_row(db, eid),
        )
        async with pos:
            await agent.start()
            await pos.wait_online(set())
            stream = [event(terminal(i)) for i in range(events)]
            killed_at = 0.0
            async for i, ev in paced(stream, rate):
                pos.send(ev)
                if i == kill_at:
                    await asyncio.to_thread(first.kill)
                    killed_at = time.monotonic()
            ids = [e["event_id"] for e in stream]
            done = await pos.wait_final(ids, timeout=final_timeout)
            t = tally(stream, fleet, pos, 60.0, db)
            old = f"127.0.0.1:{first.port}"
            back = [
                (at, s)
                for at, s in pos.status_at
                if at > killed_at and s.get("state") == "online" and s.get("broker") != old
            ]
            finals = sorted(pos.final_at.values())
            gaps = [b - a for a, b in zip(finals, finals[1:], strict=False)]
            pulses = sorted(p.at for vp in fleet.printers for p in vp.pulses)
            pulse_gaps = [b - a for a, b in zip(pulses, pulses[1:], strict=False)]
            lat = [(pos.final_at[e] - pos.sent_at[e]) * 1000 for e in ids if e in pos.final_at]
            connects = sum("connected to broker" in line for line in agent.lines)
            await agent.stop()
    return Outcome(
        tally=t,
        all_final=done,
        back_on=back[0][1].get("broker") if back else None,
        back_after_s=round(back[0][0] - killed_at, 2) if back else None,
        ack_gap_s=max(gaps, default=0.0),
        pulse_gap_s=max(pulse_gaps, default=0.0),
        latency_p50_ms=statistics.median(lat) if lat else 0.0,
        latency_max_ms=max(lat, default=0.0),
        republished=len(pos.republished),
        agent_connects=connects,
        events=events,
        rate=rate,
    )
