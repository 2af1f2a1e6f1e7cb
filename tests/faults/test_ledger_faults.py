"""A ledger that breaks under a running agent: it stays up, refuses to pulse, says why."""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from agent.devtools.emulator import VirtualPrinterServer
from tests.faults.harness import AgentProcess, ReliablePos, event, write_config
from tests.waiting import eventually

pytestmark = pytest.mark.broker

PAGE = 4096  # SQLite's default page size (sqlite.org/fileformat.html §1.3.2)


def _files(db: Path) -> tuple[Path, Path, Path]:
    return db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")


def _snapshot(db: Path) -> tuple[bytes, bytes]:
    """The database and its WAL, read twice until both reads agree (the agent is idle)."""
    main, wal, _shm = _files(db)
    while True:
        first = (main.read_bytes(), wal.read_bytes())
        if first == (main.read_bytes(), wal.read_bytes()):
            return first


def _overwrite(path: Path, data: bytes, at: int = 0, *, truncate: bool = True) -> None:
    with path.open("r+b") as f:
        f.seek(at)
        f.write(data)
        if truncate:
            f.truncate(at + len(data))
        f.flush()
        os.fsync(f.fileno())


def _reindex(db: Path) -> None:
    """Zero the WAL-index header: every connection rebuilds it from the WAL at its next
    transaction (sqlite.org/walformat.html §2.1), instead of trusting its cached pages.
    The file is memory-mapped by the agent: never shortened (that would be SIGBUS)."""
    _overwrite(_files(db)[2], b"\0" * 136, truncate=False)


def _corrupt(db: Path, keep: int) -> None:
    """Overwrite the file from byte `keep` on, and the whole WAL."""
    main, wal, _shm = _files(db)
    _overwrite(main, b"\xa5" * (main.stat().st_size - keep), keep)
    _overwrite(wal, b"\xa5" * wal.stat().st_size)
    _reindex(db)


def _restore(db: Path, saved: tuple[bytes, bytes]) -> None:
    main, wal, _shm = _files(db)
    _overwrite(main, saved[0])
    _overwrite(wal, saved[1])
    _reindex(db)


async def _ready(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    try:
        async with http.get(url) as resp:
            return resp.status, (await resp.json())["reason"]
    except aiohttp.ClientConnectionError as exc:
        return 0, f"no answer: {exc}"


async def _checkpointed(db: Path, timeout: float = 10.0) -> None:
    """Wait (bounded) until the agent's checkpoint has put the schema into the file itself."""
    await eventually(
        lambda: b"CREATE TABLE events" in db.read_bytes()[:PAGE], timeout, "the checkpoint"
    )


@dataclass
class Shop:
    """A running agent process with its virtual printer, a POS and an HTTP client."""

    agent: AgentProcess
    vp: VirtualPrinterServer
    pos: ReliablePos
    http: aiohttp.ClientSession
    readyz: str
    db: Path

    async def send_while_broken(
        self,
    ) -> tuple[dict[str, object], tuple[tuple[int, str], int, object, bool]]:
        """One event while the ledger is broken: readyz, pulses, its ack, agent alive."""
        mark = len(self.agent.lines)
        sent = event("T1")
        self.pos.send(sent)
        await self.agent.wait_log(r"ledger error, message left with the broker", after=mark)
        assert self.agent.proc is not None
        during = (
            await _ready(self.http, self.readyz),
            len(self.vp.pulses),
            self.pos.final(sent["event_id"]),
            self.agent.proc.returncode is None,
        )
        return sent, during

    async def after_repair(
        self, sent: dict[str, object]
    ) -> tuple[bool, dict[str, object], tuple[int, str]]:
        """Whether the event came back final once the ledger works, its ack, readyz."""
        recovered = await self.pos.wait_final([sent["event_id"]], 20)
        ack = self.pos.final(sent["event_id"]) or {"status": "no ack"}
        return recovered, ack, await _ready(self.http, self.readyz)


@contextlib.asynccontextmanager
async def running_shop(mosquitto, tmp_path, agent_proc, name) -> AsyncIterator[Shop]:
    """The agent as a process on a ledger in tmp_path, with one event already opened."""
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
        async with ReliablePos(mosquitto.port, name) as pos, aiohttp.ClientSession() as http:
            await agent.start()
            await pos.wait_online(set())
            url = f"http://127.0.0.1:{await agent.http_port()}/readyz"
            first = event("T1")
            pos.send(first)
            assert await pos.wait_final([first["event_id"]], 10)
            assert (pos.final(first["event_id"]) or {})["status"] == "opened"
            yield Shop(agent, vp, pos, http, url, db)


@pytest.mark.parametrize(
    ("keep", "expected"),
    [
        # Header and schema (page 1) intact, every table garbage: SQLITE_CORRUPT.
        (PAGE, "database disk image is malformed"),
        # Nothing intact, not even the header: SQLITE_NOTADB.
        (0, "file is not a database"),
    ],
    ids=["damaged-pages", "damaged-header"],
)
async def test_corrupted_ledger_under_a_running_agent(
    mosquitto, tmp_path, agent_proc, keep, expected
):
    async with running_shop(mosquitto, tmp_path, agent_proc, "pos-corrupt") as shop:
        agent, vp, http, url, db = shop.agent, shop.vp, shop.http, shop.readyz, shop.db
        ready_before = await _ready(http, url)
        await _checkpointed(db)
        good = _snapshot(db)
        _corrupt(db, keep)
        second, during = await shop.send_while_broken()
        ready_during, pulses_during, acked_during, alive_during = during
        _restore(db, good)
        recovered, ack, ready_after = await shop.after_repair(second)
    print(
        f"\ncorrupt ledger: readyz before={ready_before} during={ready_during} "
        f"after={ready_after}; during: pulses={pulses_during} ack={acked_during} "
        f"alive={alive_during}; after: {ack['status']} pulses={len(vp.pulses)}\n{agent.log(15)}"
    )
    assert ready_before[0] == 200
    assert alive_during, "the agent exited when its ledger was corrupted"
    assert pulses_during == 1 and acked_during is None  # no pulse, no false "opened"
    assert ready_during[0] == 503 and "ledger" in ready_during[1], ready_during
    assert recovered and ack["status"] == "opened" and len(vp.pulses) == 2
    assert ready_after[0] == 200
    assert expected in ready_during[1], ready_during


async def test_ledger_write_access_revoked_under_a_running_agent(mosquitto, tmp_path, agent_proc):
    """The kernel refuses every file write of the agent (RLIMIT_FSIZE 0: write(2) fails with
    EFBIG, which CPython gets as an error because it ignores SIGXFSZ). Root can still write
    through a chmod and a busy bind mount refuses a read-only remount, so this is how a
    running agent loses its write access here; the same holds for a full disk."""
    async with running_shop(mosquitto, tmp_path, agent_proc, "pos-revoked") as shop:
        agent, vp = shop.agent, shop.vp
        assert agent.proc is not None
        pid = agent.proc.pid
        soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, hard))
        try:
            second, during = await shop.send_while_broken()
        finally:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))
        ready_during, pulses_during, acked_during, alive_during = during
        recovered, ack, ready_after = await shop.after_repair(second)
    print(
        f"\nwrite access revoked: readyz during={ready_during} after={ready_after}; "
        f"during: pulses={pulses_during} ack={acked_during} alive={alive_during}; "
        f"after: {ack['status']} pulses={len(vp.pulses)}\n{agent.log(10)}"
    )
    assert alive_during, "the agent exited when it could no longer write its ledger"
    assert pulses_during == 1 and acked_during is None  # no pulse without its record
    assert ready_during[0] == 503 and "ledger" in ready_during[1], ready_during
    assert recovered and ack["status"] == "opened" and len(vp.pulses) == 2
    assert ready_after[0] == 200
