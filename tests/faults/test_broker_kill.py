"""Mosquitto kill -9 and restart, three times, during a stream of 500 events.

Judged at the printers: one virtual printer per event, so a pulse count is an event's count.
"""

from __future__ import annotations

import asyncio
import time

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

EVENTS = 500
RATE = 150.0  # events per second
KILLS_AT = (100, 230, 360)  # kill -9 the broker right after publishing event #n
DOWN_S = 0.4  # how long the broker stays dead each time
MAX_AGE_S = 60.0
ACK_TIMEOUT_S = 8.0  # the POS re-publishes an event the agent has not acked by then


async def test_broker_kill9_cycles_lose_and_double_nothing(mosquitto, tmp_path, agent_proc):
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
            "pos-broker-kill",
            ack_timeout=ACK_TIMEOUT_S,
            on_republish=lambda eid: ledger_row(db, eid),
        )
        async with pos:
            await agent.start()
            await pos.wait_online(set())
            events = [event(terminal(i)) for i in range(EVENTS)]
            index = {e["event_id"]: i for i, e in enumerate(events)}
            t0 = time.monotonic()
            kills = 0
            async for i, ev in paced(events, RATE):
                pos.send(ev)
                if i in KILLS_AT:
                    await asyncio.to_thread(mosquitto.kill)
                    kills += 1
                    await asyncio.sleep(DOWN_S)  # the outage itself, not a synchronisation
                    await asyncio.to_thread(mosquitto.start)
            stream_s = time.monotonic() - t0
            done = await pos.wait_final([e["event_id"] for e in events], timeout=40)
            t = tally(events, fleet, pos, MAX_AGE_S, db)
            # Re-published because the agent never acked them although the broker PUBACKed:
            # lost by the broker (not in the ledger), or only slow (already in the ledger).
            broker_lost = [index[e] for e, note in pos.republished if note == "not in the ledger"]
            slow = [index[e] for e, note in pos.republished if note != "not in the ledger"]
            print(
                f"\nbroker kill -9 x{kills} during {EVENTS} events over {stream_s:.1f} s: "
                f"{t.line()} pos_publishes={pos.publishes} pos_puback_retries={pos.retries} "
                f"pos_connects={pos.connects} agent_onlines={len(pos.onlines())} "
                f"republished_lost_by_broker={broker_lost} republished_slow_ack={slow} "
                f"all_final={done}"
            )
    assert kills == len(KILLS_AT)
    # The POS's own reconnect backoff can span two outages, so it reconnects at least once.
    assert pos.connects >= 2, "the POS never saw the broker go away"
    assert len(pos.onlines()) == 1  # the agent process itself never restarted
    assert not t.doubled, t.doubled
    assert not t.lost, t.lost
    assert not t.other, t.other
    # Before agent/io/mqtt_link.py cleaned paho's writer off a closed socket, about one run
    # in ten ended here: the event published just before a kill was acked "opened
    # (unconfirmed)" while its printer connection never completed (a stale selector entry
    # on a reused fd). 25 runs in a row now end with none.
    assert not t.unconfirmed_not_pulsed, t.unconfirmed_not_pulsed
    assert t.opened_once == EVENTS, t.line()
    assert t.pulses == EVENTS
    assert done
    # A message the broker PUBACKed and then lost can only be one published in the last
    # instants before a kill -9 (mosquitto acks before its snapshot is written); anything
    # else missing from the ledger would be the agent's loss.
    for i in broker_lost:
        assert any(k - 10 <= i <= k for k in KILLS_AT), f"event #{i} lost away from a kill"
