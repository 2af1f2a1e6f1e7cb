"""SQLite persistence of discovered printers, in the agent's database file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from discovery.core.identity import identity_keys
from discovery.core.model import PrinterRecord

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS discovery_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS discovery_printers (
    identity    TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    port        INTEGER NOT NULL,
    vendor      TEXT,
    model       TEXT,
    command_set TEXT,
    mac         TEXT,
    serial      TEXT,
    name        TEXT,
    mdns_name   TEXT,
    sources     TEXT NOT NULL,
    first_seen  REAL NOT NULL,
    last_seen   REAL NOT NULL
);
"""
_COLUMNS = (
    "host, port, vendor, model, command_set, mac, serial, name, mdns_name, sources, "
    "first_seen, last_seen"
)


class StoreError(Exception):
    """The discovery tables are from a newer, unknown schema."""


class DiscoveryStore:
    """Own tables `discovery_printers` and `discovery_meta`; WAL so the agent's writers coexist."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(str(path), timeout=5.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._db:
            self._db.executescript(_SCHEMA)
            row = self._db.execute(
                "SELECT value FROM discovery_meta WHERE key = 'schema_version'"
            ).fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO discovery_meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif int(row[0]) > SCHEMA_VERSION:
                raise StoreError(f"discovery schema {row[0]} is newer than {SCHEMA_VERSION}")

    def upsert(self, record: PrinterRecord) -> None:
        """Store under the strongest identity; drop rows stored under its weaker keys."""
        keys = identity_keys(record)
        with self._db:
            self._db.executemany(
                "DELETE FROM discovery_printers WHERE identity = ?", [(k,) for k in keys[1:]]
            )
            self._db.execute(
                f"INSERT OR REPLACE INTO discovery_printers (identity, {_COLUMNS}) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    keys[0],
                    record.host,
                    record.port,
                    record.vendor,
                    record.model,
                    record.command_set,
                    record.mac,
                    record.serial,
                    record.name,
                    record.mdns_name,
                    json.dumps(sorted(record.sources)),
                    record.first_seen,
                    record.last_seen,
                ),
            )

    def all(self) -> list[PrinterRecord]:
        """Every stored printer, most recently seen first."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM discovery_printers ORDER BY last_seen DESC"  # noqa: S608
        ).fetchall()
        return [
            PrinterRecord(
                host=host,
                port=port,
                vendor=vendor,
                model=model,
                command_set=command_set,
                mac=mac,
                serial=serial,
                name=name,
                mdns_name=mdns_name,
                sources=frozenset(json.loads(sources)),
                first_seen=first_seen,
                last_seen=last_seen,
            )
            for (
                host,
                port,
                vendor,
                model,
                command_set,
                mac,
                serial,
                name,
                mdns_name,
                sources,
                first_seen,
                last_seen,
            ) in rows
        ]

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        self._db.close()
