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
    kept_after,
    ledger_row,
    lost_pubacks,
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
            lost_at = lost_pubacks(pos.pubacks, pos.republished, pos.republished_puback, pos.acks)
            broker_lost = [index[pos.pubacks[at][1]] for at in lost_at]
            # For each, its PUBACK's connection and how many PUBACKs kept followed it there.
            lost_where = [
                (pos.pubacks[at][0], kept_after(pos.pubacks, at, lost_at)) for at in lost_at
            ]
            late = sorted(
                {index[e] for e, note in pos.republished if note == "not in the ledger"}
                - set(broker_lost)
            )
            slow = [index[e] for e, note in pos.republished if note != "not in the ledger"]
            print(
                f"\nbroker kill -9 x{kills} during {EVENTS} events over {stream_s:.1f} s: "
                f"{t.line()} pos_publishes={pos.publishes} pos_puback_retries={pos.retries} "
                f"pos_connects={pos.connects} agent_onlines={len(pos.onlines())} "
                f"republished_lost_by_broker={broker_lost} (connection, kept after)={lost_where} "
                f"republished_late={late} republished_slow_ack={slow} "
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
    # What the broker PUBACKed and then lost must be the tail of a connection a kill -9
    # ended: no PUBACK after it there was kept. Mosquitto 2.0.11 writes its snapshot at the
    # end of a loop turn that changed something (loop.c); a message sent straight on to a
    # connected subscriber is no change (database.c counts queued ones, and PUBACKs
    # received), so it reaches the disk with the next change, and any later snapshot holds
    # it. The agent also reads in order: had it got a later one, it had this one. Anything
    # else missing is the agent's loss. Judged by PUBACK order, not by when the POS sent
    # it: a broker replaying a backlog after a restart PUBACKs dozens of events behind the
    # POS (CI once lost #331, sent 29 events before the kill after #360). 42 runs here: 12
    # lost one or two events, each the last PUBACK of its connection.
    for i, (connection, kept) in zip(broker_lost, lost_where, strict=True):
        assert connection < pos.connects, f"event #{i} lost on the connection no kill ended"
        assert kept == 0, f"event #{i} lost, and {kept} PUBACKed after it on its connection kept"


def test_kept_after_judges_by_connection_and_order():
    """The rule above on plain values: a lost tail passes; a loss with a kept PUBACK after
    it on its connection does not (the negative control), whatever other connections hold."""
    pubacks = [(1, "a"), (1, "b"), (1, "c"), (2, "d"), (2, "e")]
    assert kept_after(pubacks, 2, lost=[2]) == 0  # "c": the last on connection 1
    assert kept_after(pubacks, 1, lost=[1, 2]) == 0  # "b" and "c": a lost tail of two
    assert kept_after(pubacks, 1, lost=[1]) == 1  # "b" lost, "c" after it kept: the agent's
    assert kept_after(pubacks, 0, lost=[0, 2]) == 1  # "a" lost mid-stream
    assert kept_after(pubacks, 3, lost=[3]) == 1  # connection 2 only, not connection 1's tail


def test_lost_pubacks_tells_a_lost_copy_from_a_late_one():
    """Re-published while not in the ledger: lost if the agent acked fewer copies than
    the broker PUBACKed, only late if it acked both (the negative control)."""
    pubacks = [(1, "lost"), (1, "late"), (2, "lost"), (2, "late")]
    republished = [("lost", "not in the ledger"), ("late", "not in the ledger")]
    acks = {"lost": [{"status": "opened"}], "late": [{"status": "opened"}] * 2}
    assert lost_pubacks(pubacks, republished, [0, 1], acks) == [0]
    acks["lost"].append({"status": "duplicate"})
    assert lost_pubacks(pubacks, republished, [0, 1], acks) == []


async def test_a_duplicate_answer_names_the_outcome_of_a_lost_ack():
    """The POS learns an event's outcome from the `duplicate` answer to its re-publish when
    the broker lost the outcome ack; an answer for one still in progress is no outcome."""
    pos = ReliablePos(1, "pos-unit")  # never connected: only its bookkeeping is used
    pos.acks["e1"] = [{"status": "duplicate", "detail": "already handled: in progress"}]
    assert pos.final("e1") is None
    pos.acks["e1"].append({"status": "duplicate", "detail": "already handled: opened"})
    assert pos.final("e1")["status"] == "opened"
    pos.acks["e2"] = [{"status": "duplicate", "detail": "opened"}, {"status": "failed"}]
    assert pos.final("e2")["status"] == "failed"
