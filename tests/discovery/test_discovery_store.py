"""SQLite persistence in a shared database file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from discovery import PrinterRecord
from discovery.io.store import SCHEMA_VERSION, DiscoveryStore, StoreError


def record(**fields: object) -> PrinterRecord:
    base: dict[str, object] = {
        "host": "127.0.1.10",
        "port": 9100,
        "vendor": "Epson",
        "model": "TM-T20III",
        "command_set": "escpos",
        "mac": None,
        "serial": None,
        "name": "kitchen",
        "sources": frozenset({"snmp", "probe"}),
        "first_seen": 1.0,
        "last_seen": 2.0,
    }
    base.update(fields)
    return PrinterRecord(**base)  # type: ignore[arg-type]


def test_round_trip_and_identity_promotion(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    # The agent's own tables live in the same file; ours must not disturb them.
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, event TEXT)")
        db.execute("INSERT INTO ledger (event) VALUES ('kick')")
    store = DiscoveryStore(path)
    store.upsert(record())
    # The same device, now known by MAC and seen at a new address: one row, not two.
    moved = record(host="127.0.1.11", mac="00:26:ab:12:34:56", mdns_name="EPSON", last_seen=3.0)
    store.upsert(record(mac="00:26:ab:12:34:56"))
    store.upsert(moved)
    store.close()

    reopened = DiscoveryStore(path)
    assert reopened.all() == [moved]
    reopened.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT event FROM ledger").fetchall() == [("kick",)]
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute(
            "SELECT value FROM discovery_meta WHERE key = 'schema_version'"
        ).fetchone() == (str(SCHEMA_VERSION),)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    DiscoveryStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE discovery_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer"):
        DiscoveryStore(path)
