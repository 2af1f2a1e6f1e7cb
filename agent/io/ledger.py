"""The SQLite ledger: every event, its outcome and timings; dedup and audit trail.

Calls are synchronous on purpose. In WAL mode with synchronous=NORMAL a commit is a
write to the OS page cache (no fsync), tens of microseconds, cheaper than a thread hop
on the hot path; it survives a kill -9 of the agent (the OS still has the pages) and
loses at most the last commits on power loss, which docs/security.md states.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from agent.core.acks import Ack, AckStatus
from agent.core.errors import LedgerError
from agent.core.kick import STORED, Job, Phase, Track, stored

# Each entry migrates from version i to i+1 (PRAGMA user_version).
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        event_id      TEXT PRIMARY KEY,
        source        TEXT NOT NULL DEFAULT 'mqtt',
        type          TEXT NOT NULL,
        terminal_id   TEXT,
        printer_id    TEXT,
        occurred_at   REAL NOT NULL,
        received_at   REAL NOT NULL,
        deadline      REAL NOT NULL,
        state         TEXT NOT NULL,
        status        TEXT,
        attempts      INTEGER NOT NULL DEFAULT 0,
        sent_at       REAL,
        finished_at   REAL,
        latency_ms    REAL,
        detail        TEXT NOT NULL DEFAULT '',
        drawer_open   INTEGER,
        acked         INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX events_received_at ON events (received_at);
    CREATE INDEX events_open_work ON events (state) WHERE state != 'final';
    CREATE TABLE rejections (
        id            INTEGER PRIMARY KEY,
        received_at   REAL NOT NULL,
        event_id      TEXT,
        reason        TEXT NOT NULL,
        size          INTEGER NOT NULL
    );
    CREATE INDEX rejections_received_at ON rejections (received_at);
    """,
    """
    CREATE TABLE audit (
        id            INTEGER PRIMARY KEY,
        at            REAL NOT NULL,
        kind          TEXT NOT NULL,
        printer_id    TEXT,
        detail        TEXT NOT NULL
    );
    CREATE INDEX audit_at ON audit (at);
    """,
)

# After each WAL restart the file is cut back to this (PRAGMA journal_size_limit), so a
# burst leaves a few MB on the SD card, not the 60 MB an 8-minute soak at 150 ev/s grew.
WAL_LIMIT_BYTES = 4 * 1024 * 1024
# Past this, a checkpoint also truncates the WAL while events keep coming: under steady
# writes a passive checkpoint never catches up with the last frame, so the WAL never
# restarts and journal_size_limit never applies.
WAL_CAP_BYTES = 16 * 1024 * 1024
P = ParamSpec("P")
R = TypeVar("R")
# SQLite result codes that mean the file itself is damaged (sqlite.org/rescode.html).
_DAMAGED = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})

# The `state` column holds the kick table's stored phases (agent.core.kick.STORED).
PENDING = STORED[Phase.PENDING]
SENDING = STORED[Phase.SENDING]
FINAL = Phase.FINAL.value


@dataclass(frozen=True)
class EventRow:
    """One row of the events table."""

    event_id: str
    source: str
    type: str
    terminal_id: str | None
    printer_id: str | None
    occurred_at: float
    received_at: float
    deadline: float
    state: str
    status: str | None
    attempts: int
    sent_at: float | None
    finished_at: float | None
    latency_ms: float | None
    detail: str
    drawer_open: bool | None
    acked: bool

    def to_json(self) -> dict[str, object]:
        """JSON view for the audit API."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def track(self) -> Track:
        """Where this row stands in the kick table."""
        return stored(self.state, self.status, self.deadline, self.attempts)

    def job(self) -> Job:
        """The job that resumes this row after a restart."""
        assert self.printer_id is not None
        return Job(
            event_id=self.event_id,
            printer_id=self.printer_id,
            terminal_id=self.terminal_id,
            received_at=self.received_at,
            deadline=self.deadline,
            source=self.source,
        )

    def ack(self) -> Ack:
        """The ack of this final row, as first published (resent when it never got out)."""
        return Ack(
            event_id=self.event_id,
            status=AckStatus(self.status or "failed"),
            terminal_id=self.terminal_id,
            printer_id=self.printer_id,
            attempts=self.attempts,
            latency_ms=self.latency_ms,
            detail=self.detail,
            drawer_open=self.drawer_open,
        )


_COLUMNS = ", ".join(EventRow.__dataclass_fields__)


def must_truncate(wal_bytes: int, *, idle: bool, limit: int, cap: int) -> bool:
    """A TRUNCATE checkpoint is due: idle with a WAL past `limit`, or past `cap` under load.

    A WAL within the limit is left as it is, on purpose: cut to nothing, the next commit
    must grow the file again, and in a shop the next commit is a sale's claim after an idle
    while. An event's four commits after an idle pause, p50 / p90: 0.66 / 1.05 ms on a
    truncated WAL, 0.52 / 0.74 ms on a kept one (bench/bench_commit.py, results/commit.md).
    """
    return wal_bytes > cap or (idle and wal_bytes > limit)


def _translated(method: Callable[Concatenate[Ledger, P], R]) -> Callable[Concatenate[Ledger, P], R]:
    """Every sqlite3 error of `method` leaves as LedgerError, and is remembered for readiness."""

    @functools.wraps(method)
    def wrapper(self: Ledger, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        except LedgerError as exc:
            self.fault = str(exc)
            raise

    return wrapper


class Ledger:
    """Open with `Ledger.open(path)`; use as a context manager to close it."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        self._checkpointer: sqlite3.Connection | None = None
        # A checkpoint runs in a worker thread: closing its connection under it crashes the
        # process inside sqlite3 (seen as a segfault at shutdown), so close() waits for it.
        self._checkpointing = threading.Lock()
        self.wal_limit_bytes = WAL_LIMIT_BYTES
        self.wal_cap_bytes = WAL_CAP_BYTES
        # Committed write transactions; the checkpoint task compares it to spot idle time.
        self.commits = 0
        # The last failure seen, until a readiness probe proves the ledger works again.
        self.fault: str | None = None
        self._damaged = False

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        background_checkpoints: bool = False,
        wal_limit_bytes: int = WAL_LIMIT_BYTES,
        wal_cap_bytes: int = WAL_CAP_BYTES,
    ) -> Ledger:
        """Open or create the ledger, migrate it, and check its integrity.

        With `background_checkpoints`, commits never run a WAL checkpoint (which fsyncs)
        on the caller's thread; the owner must call `checkpoint()` periodically, off the loop.
        """
        where = str(path)
        try:
            if where != ":memory:":
                Path(where).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(where, isolation_level=None, timeout=5.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # Per connection; the writer is the one that restarts (and so truncates) the WAL.
            conn.execute(f"PRAGMA journal_size_limit={int(wal_limit_bytes)}")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                conn.close()
                raise LedgerError(f"{where}: integrity check failed: {check}")
            ledger = cls(conn, where)
            ledger.wal_limit_bytes = wal_limit_bytes
            ledger.wal_cap_bytes = wal_cap_bytes
            ledger._migrate()
            # Prove the file is writable now rather than at the first event.
            with ledger._tx():
                conn.execute("CREATE TABLE IF NOT EXISTS write_probe (x)")
            ledger._probe_write()
            if background_checkpoints:
                conn.execute("PRAGMA wal_autocheckpoint=0")
                ledger._checkpointer = sqlite3.connect(
                    where, isolation_level=None, timeout=5.0, check_same_thread=False
                )
        except (sqlite3.Error, OSError) as exc:
            raise LedgerError(f"{where}: {exc}") from None
        return ledger

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections; safe to call twice."""
        with self._checkpointing:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
        self._conn.close()

    @_translated
    def checkpoint(self, *, idle: bool = False) -> int:
        """Copy the WAL into the database (run it in a thread); return the WAL's size after.

        PASSIVE never blocks a writer. TRUNCATE, which holds new writers while it copies
        the few frames the passive one left, runs only when the ledger was `idle` (nothing
        committed since the last call) and the WAL is past `wal_limit_bytes`, or the WAL is
        past `wal_cap_bytes`.
        """
        with self._checkpointing:
            if self._checkpointer is None:
                return 0
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
            size = self.wal_bytes()
            if must_truncate(size, idle=idle, limit=self.wal_limit_bytes, cap=self.wal_cap_bytes):
                self._checkpointer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                size = self.wal_bytes()
            return size

    def wal_bytes(self) -> int:
        """Size of the write-ahead log file (0 when absent)."""
        try:
            return os.stat(self.path + "-wal").st_size
        except OSError:
            return 0

    @property
    @_translated
    def schema_version(self) -> int:
        """Current schema version."""
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @_translated
    def claim(
        self,
        *,
        event_id: str,
        type_: str,
        terminal_id: str | None,
        printer_id: str | None,
        occurred_at: float,
        received_at: float,
        deadline: float,
        status: str | None = None,
        detail: str = "",
        source: str = "mqtt",
    ) -> EventRow | None:
        """Record a new event; return the existing row instead when event_id is known.

        With `status` the event is final at once (ignored, unmapped, expired); without it
        the event is pending dispatch.
        """
        state = FINAL if status else PENDING
        try:
            with self._tx():
                self._conn.execute(
                    "INSERT INTO events (event_id, source, type, terminal_id, printer_id,"
                    " occurred_at, received_at, deadline, state, status, detail, finished_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        event_id,
                        source,
                        type_,
                        terminal_id,
                        printer_id,
                        occurred_at,
                        received_at,
                        deadline,
                        state,
                        status,
                        detail,
                        received_at if status else None,
                    ),
                )
        except sqlite3.IntegrityError:
            return self.get(event_id)
        return None

    @_translated
    def mark_sending(self, event_id: str, attempt: int) -> None:
        """An attempt is about to write to the printer: from now on it is never resent."""
        self._update(
            "UPDATE events SET state=?, attempts=? WHERE event_id=?", (SENDING, attempt, event_id)
        )

    @_translated
    def mark_not_sent(self, event_id: str) -> None:
        """The last attempt failed before any byte was written; a restart may resume it."""
        self._update("UPDATE events SET state=? WHERE event_id=?", (PENDING, event_id))

    @_translated
    def finish(
        self,
        event_id: str,
        *,
        status: str,
        attempts: int,
        finished_at: float,
        sent_at: float | None = None,
        latency_ms: float | None = None,
        detail: str = "",
        drawer_open: bool | None = None,
    ) -> None:
        """Record the final outcome of an event."""
        self._update(
            "UPDATE events SET state=?, status=?, attempts=?, sent_at=?, finished_at=?,"
            " latency_ms=?, detail=?, drawer_open=? WHERE event_id=?",
            (
                FINAL,
                status,
                attempts,
                sent_at,
                finished_at,
                latency_ms,
                detail,
                None if drawer_open is None else int(drawer_open),
                event_id,
            ),
        )

    @_translated
    def mark_acked(self, event_id: str) -> None:
        """The ack for this event reached the broker."""
        self._update("UPDATE events SET acked=1 WHERE event_id=?", (event_id,))

    @_translated
    def reject(self, *, event_id: str | None, reason: str, size: int, received_at: float) -> None:
        """Keep a refused message in the audit trail without claiming its event_id."""
        self._update(
            "INSERT INTO rejections (received_at, event_id, reason, size) VALUES (?,?,?,?)",
            (received_at, event_id, reason, size),
        )

    @_translated
    def audit(self, *, kind: str, printer_id: str | None, detail: str, at: float) -> None:
        """Record something that changed how drawers are reached (an address move, ...)."""
        self._update(
            "INSERT INTO audit (at, kind, printer_id, detail) VALUES (?,?,?,?)",
            (at, kind, printer_id, detail),
        )

    @_translated
    def recent_audit(self, limit: int = 100) -> list[dict[str, object]]:
        """Newest audit entries first."""
        cur = self._conn.execute(
            "SELECT at, kind, printer_id, detail FROM audit ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [
            dict(zip(("at", "kind", "printer_id", "detail"), r, strict=True))
            for r in cur.fetchall()
        ]

    @_translated
    def get(self, event_id: str) -> EventRow | None:
        """One event by id."""
        rows = self._select("WHERE event_id=?", (event_id,))
        return rows[0] if rows else None

    @_translated
    def unfinished(self) -> list[EventRow]:
        """Events a previous run accepted but did not finish, oldest first."""
        return self._select("WHERE state != 'final' ORDER BY received_at", ())

    @_translated
    def unacked(self, limit: int = 1000) -> list[EventRow]:
        """Final events whose ack never reached the broker, oldest first."""
        return self._select(
            "WHERE state = 'final' AND acked = 0 AND source = 'mqtt' ORDER BY received_at LIMIT ?",
            (limit,),
        )

    @_translated
    def recent(self, limit: int = 100, since: float | None = None) -> list[EventRow]:
        """Newest events first: the audit trail."""
        return self._select(
            "WHERE received_at >= ? ORDER BY received_at DESC LIMIT ?",
            (since if since is not None else 0.0, limit),
        )

    @_translated
    def recent_rejections(self, limit: int = 100) -> list[dict[str, object]]:
        """Newest refused messages first."""
        cur = self._conn.execute(
            "SELECT received_at, event_id, reason, size FROM rejections ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            dict(zip(("received_at", "event_id", "reason", "size"), r, strict=True))
            for r in cur.fetchall()
        ]

    @_translated
    def count(self) -> int:
        """Number of events held."""
        return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    @_translated
    def prune(self, before: float) -> int:
        """Delete final events, rejections and audit entries before `before`; return how many."""
        with self._tx():
            n = self._conn.execute(
                "DELETE FROM events WHERE state='final' AND received_at < ?", (before,)
            ).rowcount
            n += self._conn.execute(
                "DELETE FROM rejections WHERE received_at < ?", (before,)
            ).rowcount
            n += self._conn.execute("DELETE FROM audit WHERE at < ?", (before,)).rowcount
        return int(n)

    def writable(self) -> bool:
        """True while a write transaction can commit (readiness)."""
        return self.problem() is None

    def problem(self) -> str | None:
        """Why the ledger cannot record an event now, or None; clears a fault that is over."""
        try:
            self._probe_write()
            if self._damaged:
                # Damage is only seen when a damaged page is read: check them all once.
                check = self._conn.execute("PRAGMA quick_check(1)").fetchone()[0]
                if check != "ok":
                    return f"{self.path}: integrity check failed: {check}"
        except sqlite3.Error as exc:
            return str(self._failed(exc))
        except LedgerError as exc:
            return str(exc)
        self.fault = None
        self._damaged = False
        return None

    def _failed(self, exc: sqlite3.Error) -> LedgerError:
        """Remember a failure for readiness and translate it."""
        self.fault = f"{self.path}: {exc}"
        self._damaged = self._damaged or getattr(exc, "sqlite_errorname", "") in _DAMAGED
        return LedgerError(self.fault)

    def _probe_write(self) -> None:
        # A real write: a no-op UPDATE commits even on a full disk. In WAL mode every
        # commit appends a frame, so this fails whenever an event's claim would.
        with self._tx():
            self._conn.execute(
                "INSERT OR REPLACE INTO write_probe (rowid, x) VALUES (1, ?)", (time.time(),)
            )

    def _migrate(self) -> None:
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise LedgerError(
                f"{self.path}: schema version {version} is newer than this agent "
                f"({len(MIGRATIONS)}); upgrade drawer-agent"
            )
        for target in range(version, len(MIGRATIONS)):
            with self._tx():
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version={target + 1}")

    @contextmanager
    def _tx(self) -> Iterator[None]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        try:
            yield
        except BaseException:
            self._rollback()
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # A failed COMMIT may already have rolled back; keep the real cause in the error.
            self._rollback()
            raise self._failed(exc) from None
        self.commits += 1

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _update(self, sql: str, args: tuple[object, ...]) -> None:
        with self._tx():
            self._conn.execute(sql, args)

    def _select(self, where: str, args: tuple[object, ...]) -> list[EventRow]:
        cur = self._conn.execute(f"SELECT {_COLUMNS} FROM events {where}", args)  # noqa: S608
        out = []
        for r in cur.fetchall():
            row = list(r)
            row[15] = None if row[15] is None else bool(row[15])
            row[16] = bool(row[16])
            out.append(EventRow(*row))
        return out
