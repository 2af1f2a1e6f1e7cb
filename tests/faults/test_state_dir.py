"""A state directory the agent cannot write: at start, and while running."""

from __future__ import annotations

import resource
from pathlib import Path

import aiohttp
import pytest

from agent.devtools.emulator import VirtualPrinterServer
from tests.faults.harness import AgentProcess, ReliablePos, event, ledger_row, write_config

pytestmark = pytest.mark.broker


def _blocker(tmp_path: Path) -> Path:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be\n")
    return blocker / "ledger.db"


@pytest.mark.parametrize(
    "where",
    [_blocker, lambda _tmp: Path("/proc/drawer-agent/ledger.db")],
    ids=["file-in-the-way", "read-only-procfs"],
)
async def test_unusable_state_directory_at_start_exits_naming_the_ledger(
    mosquitto, tmp_path, agent_proc, where
):
    db = where(tmp_path)
    config = write_config(
        tmp_path / "agent.toml",
        broker_port=mosquitto.port,
        printers={"p": 9},
        terminals={"T1": "p"},
        db=db,
    )
    agent = AgentProcess(config)
    agent_proc.append(agent)
    await agent.start()
    code = await agent.wait_exit()
    print(f"\n{db}: exit {code}: {agent.log(3)}")
    assert code != 0
    assert str(db) in agent.log()


def _fsize(pid: int, limit: int | None) -> None:
    """Cap (or restore) how far the agent may write into any file: the disk is 'full'."""
    _soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard if limit is None else limit, hard))


async def test_ledger_unwritable_while_running_keeps_messages_with_the_broker(
    mosquitto, tmp_path, agent_proc
):
    db = tmp_path / "ledger.db"
    async with VirtualPrinterServer(name="p") as vp:
        config = write_config(
            tmp_path / "agent.toml",
            broker_port=mosquitto.port,
            printers={"p": vp.port},
            terminals={"T1": "p"},
            db=db,
        )
        agent = AgentProcess(config)
        agent_proc.append(agent)
        async with ReliablePos(mosquitto.port, "pos-state") as pos, aiohttp.ClientSession() as http:
            await agent.start()
            await pos.wait_online(set())
            url = f"http://127.0.0.1:{await agent.http_port()}/readyz"
            async with http.get(url) as resp:
                ready_before = resp.status
            assert agent.proc is not None
            _fsize(agent.proc.pid, 1)  # from now on every write to the ledger fails
            mark = len(agent.lines)
            ev = event("T1")
            pos.send(ev)
            await agent.wait_log(r"ledger error, message left with the broker", after=mark)
            async with http.get(url) as resp:
                ready_during, reason_during = resp.status, (await resp.json())["reason"]
            pulses_during = len(vp.pulses)
            acked_during = pos.final(ev["event_id"])
            in_ledger_during = ledger_row(db, ev["event_id"])
            alive_during = agent.proc.returncode is None
            _fsize(agent.proc.pid, None)  # space again
            recovered = await pos.wait_final([ev["event_id"]], 15)
            ack = pos.final(ev["event_id"]) or {"status": "no ack"}
            async with http.get(url) as resp:
                ready_after = resp.status
            reconnects = sum("disconnected from broker; reconnecting" in x for x in agent.lines)
    print(
        f"\nledger unwritable: readyz before={ready_before} during={ready_during} "
        f"({reason_during}) after={ready_after}; during: pulses={pulses_during} "
        f"ack={acked_during} {in_ledger_during}; after: {ack['status']} pulses={len(vp.pulses)} "
        f"recovered={recovered} stale-disconnect reconnects={reconnects}"
    )
    assert alive_during, "the agent exited when its ledger could not write"
    assert ready_before == 200 and ready_after == 200
    assert pulses_during == 0 and acked_during is None  # nothing done without a record
    assert in_ledger_during == "not in the ledger"
    # Redelivered once the ledger can write again, then pulsed once.
    assert recovered, f"never processed after the ledger recovered ({reconnects} reconnects)"
    assert ack["status"] == "opened" and len(vp.pulses) == 1
    assert ready_during == 503, f"/readyz said {ready_during} while the ledger could not write"
    assert "ledger" in reason_during, f"/readyz blamed {reason_during!r}, not the ledger"
