"""The agent kill -9'd at random moments (seeded) while events flow, restarted each time."""

from __future__ import annotations

import asyncio
import random

import pytest

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

pytestmark = pytest.mark.broker

EVENTS = 400
RATE = 70.0  # events per second: the stream outlasts the kills
KILLS = 4
SEED = 20260505
MAX_AGE_S = 60.0


async def test_agent_kill9_at_random_points_never_doubles_or_loses(mosquitto, tmp_path, agent_proc):
    rng = random.Random(SEED)
    db = tmp_path / "ledger.db"
    async with Fleet(EVENTS) as fleet:
        config = write_config(
            tmp_path / "agent.toml",
            broker_port=mosquitto.port,
            printers=fleet.ports,
            terminals=fleet.terminals,
            db=db,
            max_age_s=MAX_AGE_S,
        )
        agent = AgentProcess(config)
        agent_proc.append(agent)
        pos = ReliablePos(
            mosquitto.port,
            "pos-agent-kill",
            ack_timeout=15.0,
            on_republish=lambda e: ledger_row(db, e),
        )
        async with pos:
            await agent.start()
            runs = {await pos.wait_online(set())}
            events = [event(terminal(i)) for i in range(EVENTS)]

            async def stream() -> None:
                async for _, ev in paced(events, RATE):
                    pos.send(ev)

            async def killer() -> list[float]:
                delays = []
                for _ in range(KILLS):
                    delay = rng.uniform(0.05, 1.0)  # a random point of a running agent
                    delays.append(round(delay, 3))
                    await asyncio.sleep(delay)
                    await agent.kill()
                    await agent.start()  # same config, same ledger
                    runs.add(await pos.wait_online(runs))
                return delays

            streaming = asyncio.create_task(stream())
            delays = await killer()
            await streaming
            done = await pos.wait_final([e["event_id"] for e in events], timeout=40)
            t = tally(events, fleet, pos, MAX_AGE_S, db)
            print(
                f"\nagent kill -9 x{agent.kills} (seed {SEED}, after {delays} s of uptime) "
                f"during {EVENTS} events: {t.line()} pos_publishes={pos.publishes} "
                f"republished={pos.republished} agent_runs={len(runs)} all_final={done}"
            )
    assert agent.kills == KILLS and len(runs) == KILLS + 1
    assert not t.doubled, t.doubled
    assert not t.lost, t.lost
    assert not t.other, t.other
    assert t.expired_or_failed == 0, t.line()
    # Opened exactly once, or interrupted mid-write (at most one pulse, never resent).
    assert t.opened_once + t.interrupted_pulsed + t.interrupted_not_pulsed == EVENTS
    assert done
