"""Every failure of the SQLite file leaves the ledger as LedgerError, and readiness names it."""

from __future__ import annotations

import inspect
import resource
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.core.errors import LedgerError
from agent.io.ledger import Ledger

PAGE = 4096  # SQLite's default page size (sqlite.org/fileformat.html §1.3.2)
EVENT = {
    "type_": "sale",
    "terminal_id": "T1",
    "printer_id": "front",
    "occurred_at": 100.0,
    "received_at": 100.0,
    "deadline": 130.0,
}
# One call per public method; a new public method must be added here (checked below).
CALLS: dict[str, Callable[[Ledger], object]] = {
    "claim": lambda led: led.claim(event_id="new", **EVENT),
    "mark_sending": lambda led: led.mark_sending("e1", 1),
    "mark_not_sent": lambda led: led.mark_not_sent("e1"),
    "finish": lambda led: led.finish("e1", status="opened", attempts=1, finished_at=101.0),
    "mark_acked": lambda led: led.mark_acked("e1"),
    "reject": lambda led: led.reject(event_id="x", reason="r", size=1, received_at=100.0),
    "audit": lambda led: led.audit(kind="k", printer_id=None, detail="d", at=100.0),
    "recent_audit": lambda led: led.recent_audit(),
    "get": lambda led: led.get("e1"),
    "unfinished": lambda led: led.unfinished(),
    "unacked": lambda led: led.unacked(),
    "recent": lambda led: led.recent(),
    "recent_rejections": lambda led: led.recent_rejections(),
    "count": lambda led: led.count(),
    "prune": lambda led: led.prune(1e12),
    "schema_version": lambda led: led.schema_version,
}
# Not page reads: lifecycle, readiness itself, the WAL's file size; a checkpoint copies only
# intact WAL frames, so damaged pages are never read by it.
NOT_SQL = {"open", "close", "checkpoint", "writable", "problem", "wal_bytes"}


def _damage(db: Path) -> None:
    """Overwrite every page but the first in the file, the whole WAL, and the WAL-index
    header, so the connection re-reads pages from disk (sqlite.org/walformat.html §2.1)."""
    with db.open("r+b") as f:
        f.seek(PAGE)
        f.write(b"\xa5" * (db.stat().st_size - PAGE))
    wal = db.with_name(db.name + "-wal")
    wal.write_bytes(b"\xa5" * wal.stat().st_size)
    with db.with_name(db.name + "-shm").open("r+b") as f:
        f.write(b"\0" * 136)  # memory-mapped by the connection: never shortened


@pytest.fixture
def damaged(tmp_path: Path) -> Iterator[Ledger]:
    db = tmp_path / "ledger.db"
    with Ledger.open(db, background_checkpoints=True) as ledger:
        ledger.claim(event_id="e1", **EVENT)
        ledger.checkpoint()
        assert b"CREATE TABLE events" in db.read_bytes()[:PAGE]
        assert ledger.problem() is None
        _damage(db)
        yield ledger


def test_the_call_table_covers_every_public_method():
    public = {
        name
        for name, member in inspect.getmembers(Ledger)
        if not name.startswith("_") and (callable(member) or isinstance(member, property))
    }
    assert public - NOT_SQL == set(CALLS)


@pytest.mark.parametrize("name", sorted(set(CALLS) - {"schema_version"}))  # page 1 is intact
def test_a_damaged_file_is_a_ledger_error_from_every_method(damaged, name):
    with pytest.raises(LedgerError, match="malformed") as info:
        CALLS[name](damaged)
    assert not isinstance(info.value, sqlite3.Error)
    assert info.value.__cause__ is None  # the sqlite3 exception does not leak as the cause


def test_negative_control_an_intact_file_raises_nothing(tmp_path):
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        ledger.claim(event_id="e1", **EVENT)
        for call in CALLS.values():
            call(ledger)
        assert ledger.problem() is None


def test_readiness_names_the_damage_until_the_file_is_good_again(tmp_path):
    db = tmp_path / "ledger.db"
    with Ledger.open(db, background_checkpoints=True) as ledger:
        ledger.claim(event_id="e1", **EVENT)
        ledger.checkpoint()
        files = [db, db.with_name(db.name + "-wal")]
        saved = [p.read_bytes() for p in files]
        _damage(db)
        with pytest.raises(LedgerError):
            ledger.get("e1")
        assert "malformed" in (ledger.problem() or "")
        assert not ledger.writable()
        for path, data in zip(files, saved, strict=True):
            path.write_bytes(data)
        with db.with_name(db.name + "-shm").open("r+b") as f:
            f.write(b"\0" * 136)
        assert ledger.problem() is None
        assert ledger.writable()
        assert ledger.get("e1") is not None


def test_readiness_recovers_when_writes_fit_again(tmp_path):
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        try:
            resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))
            with pytest.raises(LedgerError):
                ledger.claim(event_id="big", **EVENT)
            problem = ledger.problem()
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        assert problem is not None and str(ledger.path) in problem
        assert ledger.problem() is None
