"""The runtime mapping's overrides and audit rows, and console pairing codes, in SQLite.

They live in the agent's own SQLite file (state.path) beside the ledger, in tables of their
own with their own schema version (the ledger owns PRAGMA user_version), so either side can
migrate without the other. Calls are synchronous, as the ledger's: a commit in WAL mode with
synchronous=NORMAL is a page-cache write, and mapping changes are rare.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar, cast

from agent.core.errors import LedgerError
from agent.core.mapping import (
    Applied,
    Change,
    Kind,
    Outcome,
    Override,
    RuntimeMapping,
)
from agent.core.settings import PrinterSettings

# Each entry migrates from version i to i+1 (mapping_meta 'schema_version').
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE mapping_overrides (
        kind      TEXT NOT NULL,
        key       TEXT NOT NULL,
        value     TEXT,
        origin    TEXT NOT NULL,
        who       TEXT NOT NULL,
        revision  INTEGER NOT NULL,
        at        REAL NOT NULL,
        PRIMARY KEY (kind, key)
    );
    CREATE TABLE mapping_changes (
        revision  INTEGER PRIMARY KEY,
        at        REAL NOT NULL,
        origin    TEXT NOT NULL,
        who       TEXT NOT NULL,
        kind      TEXT NOT NULL,
        key       TEXT NOT NULL,
        action    TEXT NOT NULL,
        old       TEXT,
        new       TEXT
    );
    CREATE INDEX mapping_changes_key ON mapping_changes (kind, key);
    CREATE TABLE console_pairing (
        code_hash   TEXT PRIMARY KEY,
        expires_at  REAL NOT NULL
    );
    """,
)
SCHEMA = "schema_version"
P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="MappingStore")


def _translated(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Every sqlite3 error of `method` leaves as LedgerError naming the file."""

    @functools.wraps(method)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: {exc}") from None

    return wrapper


class MappingStore:
    """Open with `MappingStore.open(path)`; use as a context manager to close it."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> MappingStore:
        """Open or create the tables in the agent's SQLite file and migrate them."""
        where = str(path)
        try:
            if where != ":memory:":
                Path(where).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(where, isolation_level=None, timeout=5.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            store = cls(conn, where)
            store._migrate()
        except sqlite3.Error as exc:
            raise LedgerError(f"{where}: {exc}") from None
        except OSError as exc:
            raise LedgerError(f"{where}: {exc}") from None
        return store

    @classmethod
    def read_only(cls, path: str | Path) -> MappingStore | None:
        """Open an existing file read-only (check-config); None when it has no mapping yet.

        Never creates the file nor its tables: check-config runs before the agent (systemd's
        ExecStartPre), possibly as another user, and must not leave a file behind.
        """
        where = Path(path)
        if not where.is_file():
            return None
        try:
            conn = sqlite3.connect(f"{where.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
            store = cls(conn, str(where))
            if store._version() == 0:
                conn.close()
                return None
        except sqlite3.Error as exc:
            raise LedgerError(f"{where}: {exc}") from None
        return store

    def __enter__(self) -> MappingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        self._conn.close()

    @property
    @_translated
    def schema_version(self) -> int:
        """Version of the mapping tables (0 before the first migration)."""
        return self._version()

    @_translated
    def revision(self) -> int:
        """The last revision recorded (0 when the mapping never changed at run time)."""
        row = self._conn.execute("SELECT MAX(revision) FROM mapping_changes").fetchone()
        return int(row[0] or 0)

    @_translated
    def overrides(self) -> list[Override]:
        """Every stored override, tombstones included."""
        cur = self._conn.execute(
            "SELECT kind, key, value, origin, who, revision, at FROM mapping_overrides"
            " ORDER BY kind, key"
        )
        out = []
        for kind, key, value, origin, who, revision, at in cur.fetchall():
            out.append(Override(cast("Kind", kind), key, _load(value), origin, who, revision, at))
        return out

    @_translated
    def load(
        self, file_printers: Mapping[str, PrinterSettings], file_terminals: Mapping[str, str]
    ) -> RuntimeMapping:
        """The effective mapping: the file's layer with the stored overrides on top."""
        return RuntimeMapping.build(
            file_printers, file_terminals, self.overrides(), self.revision()
        )

    @_translated
    def save(self, applied: Applied) -> None:
        """Record an applied change atomically: the override row and the audit row.

        Two writers that started from the same revision cannot both commit: the audit
        row's revision is the primary key, so the second one fails as a LedgerError.
        """
        c = applied.change
        with self._tx():
            self._conn.execute(
                "INSERT INTO mapping_changes (revision, at, origin, who, kind, key, action,"
                " old, new) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    c.revision,
                    c.at,
                    c.origin,
                    c.who,
                    c.kind,
                    c.key,
                    c.action,
                    _dump(c.old),
                    _dump(c.new),
                ),
            )
            o = applied.override
            if o is None:
                self._conn.execute(
                    "DELETE FROM mapping_overrides WHERE kind=? AND key=?", (c.kind, c.key)
                )
            else:
                self._conn.execute(
                    "INSERT OR REPLACE INTO mapping_overrides"
                    " (kind, key, value, origin, who, revision, at) VALUES (?,?,?,?,?,?,?)",
                    (o.kind, o.key, _dump(o.value), o.origin, o.who, o.revision, o.at),
                )

    @_translated
    def changes(
        self, limit: int = 100, *, kind: Kind | None = None, key: str | None = None
    ) -> list[Change]:
        """Newest audit rows first, optionally for one printer or till."""
        cur = self._conn.execute(
            "SELECT revision, at, origin, who, kind, key, action, old, new FROM mapping_changes"
            " WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR key = ?2)"
            " ORDER BY revision DESC LIMIT ?3",
            (kind, key, limit),
        )
        return [
            Change(rev, at, origin, who, kind_, key_, action, _load(old), _load(new))
            for rev, at, origin, who, kind_, key_, action, old, new in cur.fetchall()
        ]

    # --- pairing codes (drawer-agent pair writes, the console redeems) -----------------------

    @_translated
    def add_pairing(self, code_hash: str, expires_at: float, now: float) -> None:
        """Keep a pairing code's hash until it expires; expired ones are dropped."""
        with self._tx():
            self._conn.execute("DELETE FROM console_pairing WHERE expires_at <= ?", (now,))
            self._conn.execute(
                "INSERT OR REPLACE INTO console_pairing (code_hash, expires_at) VALUES (?,?)",
                (code_hash, expires_at),
            )

    @_translated
    def redeem_pairing(self, code_hash: str, now: float) -> bool:
        """True once for a live code: it is deleted as it is used."""
        with self._tx():
            n = self._conn.execute(
                "DELETE FROM console_pairing WHERE code_hash = ? AND expires_at > ?",
                (code_hash, now),
            ).rowcount
            self._conn.execute("DELETE FROM console_pairing WHERE expires_at <= ?", (now,))
        return bool(n)

    # --- internals -------------------------------------------------------------------------

    def _version(self) -> int:
        has = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='mapping_meta'"
        ).fetchone()
        if not has:
            return 0
        row = self._conn.execute(
            "SELECT value FROM mapping_meta WHERE name=?", (SCHEMA,)
        ).fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        with self._tx():
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS mapping_meta (name TEXT PRIMARY KEY, value INTEGER)"
            )
        version = self._version()
        if version > len(MIGRATIONS):
            raise LedgerError(
                f"{self.path}: mapping schema version {version} is newer than this agent "
                f"({len(MIGRATIONS)}); upgrade drawer-agent"
            )
        for target in range(version, len(MIGRATIONS)):
            with self._tx():
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.execute(
                    "INSERT OR REPLACE INTO mapping_meta (name, value) VALUES (?, ?)",
                    (SCHEMA, target + 1),
                )

    @contextmanager
    def _tx(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error:
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            raise


class LiveMapping:
    """The current mapping and its store: an operation is persisted, then takes effect.

    `current` is swapped only after the store committed, so what the agent uses is always
    what a restart would load. Listeners run after each swap (the dispatcher, the status).
    """

    def __init__(self, store: MappingStore, mapping: RuntimeMapping) -> None:
        self.store = store
        self.current = mapping
        self._listeners: list[Callable[[RuntimeMapping, Change], None]] = []

    @classmethod
    def load(
        cls,
        store: MappingStore,
        file_printers: Mapping[str, PrinterSettings],
        file_terminals: Mapping[str, str],
    ) -> LiveMapping:
        """The store's overrides on top of the file's layer."""
        return cls(store, store.load(file_printers, file_terminals))

    def subscribe(self, listener: Callable[[RuntimeMapping, Change], None]) -> None:
        """Call `listener(mapping, change)` after every applied change."""
        self._listeners.append(listener)

    def apply(self, operation: Callable[[RuntimeMapping], Outcome]) -> Outcome:
        """Run a pure operation on the current mapping; persist and publish what it applied.

        `operation` is e.g. `lambda m: m.set_terminal("T1", "front", actor=a, at=now)`.
        A LedgerError from the store leaves the current mapping unchanged.
        """
        outcome = operation(self.current)
        if isinstance(outcome, Applied):
            self.store.save(outcome)
            self.current = outcome.mapping
            for listener in self._listeners:
                listener(outcome.mapping, outcome.change)
        return outcome


def _dump(value: Mapping[str, object] | str | None) -> str | None:
    if value is None:
        return None
    return json.dumps(value if isinstance(value, str) else dict(value))


def _load(text: str | None) -> Mapping[str, object] | str | None:
    if text is None:
        return None
    value = json.loads(text)
    if isinstance(value, dict | str):
        return value
    return None
