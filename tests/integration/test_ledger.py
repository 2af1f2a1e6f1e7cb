"""The SQLite ledger on real files: dedup across restarts, migrations, retention, bad files."""

import sqlite3

import pytest

from agent.core.errors import LedgerError
from agent.io.ledger import MIGRATIONS, Ledger


def claim(ledger, event_id, received_at=100.0, status=None):
    return ledger.claim(
        event_id=event_id,
        type_="sale",
        terminal_id="T1",
        printer_id="front",
        occurred_at=received_at,
        received_at=received_at,
        deadline=received_at + 30,
        status=status,
    )


def test_claim_is_once_across_restarts(tmp_path):
    path = tmp_path / "state" / "ledger.db"
    with Ledger.open(path) as ledger:
        assert claim(ledger, "e1") is None
        ledger.mark_sending("e1", 1)
        ledger.finish(
            "e1", status="opened", attempts=1, finished_at=101.0, sent_at=100.5, latency_ms=0.5
        )
    with Ledger.open(path) as ledger:
        again = claim(ledger, "e1")
        assert again is not None
        assert (again.status, again.state, again.attempts) == ("opened", "final", 1)
        assert ledger.count() == 1
        assert ledger.schema_version == len(MIGRATIONS)


def test_unfinished_and_unacked(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        claim(ledger, "pending")
        claim(ledger, "sending")
        ledger.mark_sending("sending", 1)
        claim(ledger, "done", status="ignored")
        assert [r.event_id for r in ledger.unfinished()] == ["pending", "sending"]
        assert [r.event_id for r in ledger.unacked()] == ["done"]
        ledger.mark_acked("done")
        assert ledger.unacked() == []


def test_prune_keeps_recent_and_unfinished(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        claim(ledger, "old", received_at=10.0, status="opened")
        claim(ledger, "old-pending", received_at=10.0)
        claim(ledger, "new", received_at=1000.0, status="opened")
        ledger.reject(event_id=None, reason="x", size=3, received_at=10.0)
        assert ledger.prune(before=500.0) == 2
        assert {r.event_id for r in ledger.recent(10)} == {"old-pending", "new"}
        assert ledger.recent_rejections() == []


def test_rejections_do_not_claim_the_event_id(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        ledger.reject(event_id="e9", reason="bad signature", size=10, received_at=1.0)
        assert claim(ledger, "e9") is None
        assert ledger.recent_rejections()[0]["reason"] == "bad signature"


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "l.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    with pytest.raises(LedgerError, match=str(path)):
        Ledger.open(path)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "l.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(LedgerError, match="newer than this agent"):
        Ledger.open(path)


@pytest.mark.parametrize("path", ["/proc/drawer-agent-test.db", "/proc/drawer-agent-test/l.db"])
def test_read_only_filesystem_is_a_clear_error(path):
    # /proc is read-only even for root, unlike a chmod'ed directory.
    with pytest.raises(LedgerError, match="drawer-agent-test"):
        Ledger.open(path)


def test_unwritable_ledger_is_a_clear_error(tmp_path):
    # A directory where the file should be is unwritable for root too.
    (tmp_path / "l.db").mkdir()
    with pytest.raises(LedgerError, match="l.db"):
        Ledger.open(tmp_path / "l.db")


def test_writable_reports_a_full_disk(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        assert ledger.writable()
        ledger._conn.execute("PRAGMA max_page_count=1")  # the file cannot grow: as if full
        with pytest.raises(LedgerError, match="full"):
            for i in range(100):
                claim(ledger, f"fill-{i}")
        assert ledger.count() < 100


async def test_background_checkpoints_keep_the_wal_bounded(tmp_path):
    import asyncio

    path = tmp_path / "l.db"
    with Ledger.open(path, background_checkpoints=True) as ledger:
        sizes = []
        for round_ in range(3):
            for i in range(1500):
                claim(ledger, f"r{round_}-{i}", status="opened")
            await asyncio.to_thread(ledger.checkpoint)
            sizes.append((tmp_path / "l.db-wal").stat().st_size)
        assert ledger.count() == 4500
    # Without checkpoints the WAL would hold all 4500 inserts; with them it is reused.
    assert sizes[2] <= sizes[0] * 1.5


# --- the WAL stays bounded (issue 12) ------------------------------------------------------


def fill(ledger, prefix, n):
    for i in range(n):
        claim(ledger, f"{prefix}-{i}", status="opened")


def test_an_idle_checkpoint_truncates_a_wal_past_the_limit_and_a_busy_one_does_not(tmp_path):
    limit = 64 * 1024
    with Ledger.open(
        tmp_path / "l.db", background_checkpoints=True, wal_limit_bytes=limit
    ) as ledger:
        fill(ledger, "a", 300)
        busy = ledger.checkpoint(idle=False)  # negative control: passive leaves the file
        assert busy == ledger.wal_bytes() > limit
        fill(ledger, "b", 300)
        assert ledger.checkpoint(idle=True) == ledger.wal_bytes() == 0
        assert ledger.count() == 600  # nothing lost by the truncation


def test_an_idle_checkpoint_keeps_a_wal_within_the_limit(tmp_path):
    # Cut to nothing, the next commit (a sale after an idle while) must grow the file again.
    with Ledger.open(tmp_path / "l.db", background_checkpoints=True) as ledger:
        fill(ledger, "a", 10)
        kept = ledger.checkpoint(idle=True)
        assert 0 < kept == ledger.wal_bytes() <= ledger.wal_limit_bytes
        claim(ledger, "next")
        assert ledger.wal_bytes() == kept  # restarted in place, not grown
        assert ledger.count() == 11


def test_past_the_cap_a_busy_checkpoint_truncates_too(tmp_path):
    with Ledger.open(tmp_path / "l.db", background_checkpoints=True, wal_cap_bytes=1) as ledger:
        fill(ledger, "a", 300)
        assert ledger.checkpoint(idle=False) == 0
    with Ledger.open(tmp_path / "m.db", background_checkpoints=True) as ledger:
        fill(ledger, "a", 300)
        assert 0 < ledger.wal_bytes() < ledger.wal_cap_bytes
        assert ledger.checkpoint(idle=False) > 0  # under the cap: not truncated


@pytest.mark.parametrize(("limit", "bounded"), [(64 * 1024, True), (-1, False)])
def test_journal_size_limit_cuts_the_wal_back_at_its_restart(tmp_path, limit, bounded):
    cap = 1 << 40  # only the limit acts here
    path = tmp_path / "l.db"
    with Ledger.open(
        path, background_checkpoints=True, wal_limit_bytes=limit, wal_cap_bytes=cap
    ) as ledger:
        fill(ledger, "a", 3000)
        grown = ledger.wal_bytes()
        assert grown > 4 * 64 * 1024
        ledger.checkpoint()  # complete (no other writer), so the next write restarts the WAL
        claim(ledger, "after")
        # -1 (no limit) is the negative control: the restarted WAL keeps its old size.
        assert (ledger.wal_bytes() <= 64 * 1024) is bounded


def test_commits_counts_write_transactions(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        before = ledger.commits
        fill(ledger, "a", 3)
        claim(ledger, "a-0")  # a duplicate rolls back: not a commit
        assert ledger.commits == before + 3
