"""The mapping store on real SQLite files: survives a restart, shares the ledger's file,
migrates on its own version, refuses a lost update, and fails only as LedgerError."""

from __future__ import annotations

import inspect
import os
import sqlite3
from pathlib import Path

import pytest

from agent.core.errors import LedgerError
from agent.core.mapping import Actor, Applied, RuntimeMapping
from agent.core.settings import validate
from agent.io.ledger import Ledger
from agent.io.mapping_store import MIGRATIONS, LiveMapping, MappingStore

CONFIG = {
    "shop_id": "salon-42",
    "printers": {"front": {"host": "192.0.2.10", "model": "epson-tm-t20iii"}},
    "terminals": {"T1": "front"},
}
WHO = Actor("console", "console:pairing")
BAR = {"host": "192.0.2.20", "model": "epson-tm-m30", "name": "Bar"}


def file_layer():
    s = validate(CONFIG, lambda _p: b"")
    return s.printers, s.terminals


def live(path: Path) -> LiveMapping:
    return LiveMapping.load(MappingStore.open(path), *file_layer())


def test_changes_survive_a_restart(tmp_path):
    db = tmp_path / "agent.db"
    lm = live(db)
    for op in (
        lambda m: m.set_printer("bar", BAR, actor=WHO, at=10.0),
        lambda m: m.set_terminal("T1", "bar", actor=WHO, at=11.0),
        lambda m: m.set_terminal("T2", "front", actor=Actor("api", "token"), at=12.0),
        lambda m: m.remove_terminal("T2", actor=WHO, at=13.0),
    ):
        assert isinstance(lm.apply(op), Applied)
    before = lm.current.to_json()
    lm.store.close()

    again = live(db)
    assert again.current.to_json() == before
    assert again.current.terminal_map() == {"T1": "bar"}
    assert again.current.printers["bar"].origin == "console"
    assert again.current.revision == 4
    rows = again.store.changes()
    assert [(c.revision, c.action, c.key) for c in rows] == [
        (4, "remove", "T2"),
        (3, "set", "T2"),
        (2, "set", "T1"),
        (1, "set", "bar"),
    ]
    assert rows[1].origin == "api"
    assert rows[2].old == "front"
    assert rows[3].new == BAR
    assert [c.key for c in again.store.changes(kind="terminal", key="T1")] == ["T1"]
    again.store.close()


def test_revert_deletes_the_override_row_and_a_restart_shows_the_file(tmp_path):
    db = tmp_path / "agent.db"
    lm = live(db)
    lm.apply(lambda m: m.set_printer("front", {**BAR, "drawer": 2}, actor=WHO, at=1.0))
    lm.apply(lambda m: m.revert_printer("front", actor=WHO, at=2.0))
    assert lm.store.overrides() == []
    lm.store.close()
    again = live(db)
    assert again.current.printers["front"].origin == "file"
    assert again.current.printers["front"].settings.drawer == 1
    assert again.current.revision == 2
    again.store.close()


def test_it_shares_the_ledgers_file_without_touching_its_schema(tmp_path):
    db = tmp_path / "agent.db"
    with Ledger.open(db) as ledger:
        ledger_version = ledger.schema_version
        with MappingStore.open(db) as store:
            assert store.schema_version == len(MIGRATIONS)
            lm = LiveMapping(store, store.load(*file_layer()))
            lm.apply(lambda m: m.set_terminal("T9", "front", actor=WHO, at=1.0))
        assert ledger.schema_version == ledger_version
        ledger.claim(
            event_id="e1",
            type_="sale",
            terminal_id="T9",
            printer_id="front",
            occurred_at=1.0,
            received_at=1.0,
            deadline=31.0,
        )
    with Ledger.open(db) as ledger, MappingStore.open(db) as store:
        assert ledger.get("e1") is not None
        assert store.revision() == 1


def test_a_newer_schema_is_refused_by_name(tmp_path):
    db = tmp_path / "agent.db"
    MappingStore.open(db).close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE mapping_meta SET value = 99 WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match="mapping schema version 99 is newer"):
        MappingStore.open(db)


def test_a_store_at_version_zero_is_migrated(tmp_path):
    """Negative control for the migration: a file from before the mapping has no tables."""
    db = tmp_path / "agent.db"
    Ledger.open(db).close()
    conn = sqlite3.connect(db)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert "mapping_overrides" not in names
    with MappingStore.open(db) as store:
        assert store.schema_version == 1
        assert store.overrides() == []


def test_two_writers_from_the_same_revision_cannot_both_commit(tmp_path):
    db = tmp_path / "agent.db"
    a, b = live(db), live(db)
    assert isinstance(a.apply(lambda m: m.set_terminal("T2", "front", actor=WHO, at=1.0)), Applied)
    with pytest.raises(LedgerError, match="UNIQUE"):
        b.apply(lambda m: m.set_terminal("T3", "front", actor=WHO, at=1.0))
    # The loser's view did not move: what it uses is what a restart would load.
    assert "T3" not in b.current.terminals
    a.store.close()
    b.store.close()
    with MappingStore.open(db) as store:
        assert set(store.load(*file_layer()).terminal_map()) == {"T1", "T2"}


def test_a_failed_save_leaves_the_current_mapping_and_listeners_untouched(tmp_path):
    db = tmp_path / "agent.db"
    lm = live(db)
    seen: list[int] = []
    lm.subscribe(lambda m, c: seen.append(c.revision))
    lm.apply(lambda m: m.set_terminal("T2", "front", actor=WHO, at=1.0))
    lm.store.close()  # every later statement fails: sqlite3.ProgrammingError
    with pytest.raises(LedgerError, match="closed"):
        lm.apply(lambda m: m.set_terminal("T3", "front", actor=WHO, at=2.0))
    assert seen == [1]
    assert set(lm.current.terminals) == {"T1", "T2"}


def test_a_refused_operation_writes_nothing(tmp_path):
    lm = live(tmp_path / "agent.db")
    out = lm.apply(lambda m: m.remove_printer("front", actor=WHO, at=1.0))
    assert not isinstance(out, Applied)
    assert lm.store.changes() == []
    assert lm.store.revision() == 0
    lm.store.close()


def test_pairing_codes_are_single_use_and_expire(tmp_path):
    with MappingStore.open(tmp_path / "agent.db") as store:
        store.add_pairing("h1", expires_at=600.0, now=0.0)
        store.add_pairing("h2", expires_at=600.0, now=0.0)
        assert store.redeem_pairing("h1", now=10.0)
        assert not store.redeem_pairing("h1", now=11.0)  # used
        assert not store.redeem_pairing("nope", now=11.0)
        assert not store.redeem_pairing("h2", now=600.0)  # expired
    # Another process (drawer-agent pair) writes, the agent redeems: same file.
    with MappingStore.open(tmp_path / "agent.db") as writer:
        writer.add_pairing("h3", expires_at=600.0, now=0.0)
    with MappingStore.open(tmp_path / "agent.db") as reader:
        assert reader.redeem_pairing("h3", now=1.0)


def test_an_unwritable_directory_is_a_ledger_error(tmp_path):
    if os.geteuid() == 0:
        target = Path("/proc/drawer-agent/agent.db")  # root ignores directory modes
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "sub" / "agent.db"
    with pytest.raises(LedgerError, match=str(target.parent.parent)):
        MappingStore.open(target)


def test_a_file_that_is_not_sqlite_is_a_ledger_error(tmp_path):
    db = tmp_path / "agent.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match="not a database"):
        MappingStore.open(db)


def test_read_only_refuses_garbage_and_creates_nothing(tmp_path):
    db = tmp_path / "agent.db"
    assert MappingStore.read_only(db) is None
    assert not db.exists()
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match="not a database"):
        MappingStore.read_only(db)


# One call per public method that touches SQL; a new one must be added here (checked below).
CALLS = {
    "schema_version": lambda s: s.schema_version,
    "revision": lambda s: s.revision(),
    "overrides": lambda s: s.overrides(),
    "load": lambda s: s.load(*file_layer()),
    "save": lambda s: s.save(
        RuntimeMapping.build(*file_layer()).set_terminal("T2", "front", actor=WHO, at=1.0)
    ),
    "changes": lambda s: s.changes(),
    "add_pairing": lambda s: s.add_pairing("h", 1.0, 0.0),
    "redeem_pairing": lambda s: s.redeem_pairing("h", 0.0),
}


def test_every_sql_method_is_covered_by_the_translation_check():
    public = {n for n, _ in inspect.getmembers(MappingStore) if not n.startswith("_")} - {
        "open",
        "read_only",
        "close",
    }
    assert public == set(CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_method_translates_sqlite_errors(tmp_path, name):
    store = MappingStore.open(tmp_path / "agent.db")
    store.close()
    with pytest.raises(LedgerError):
        CALLS[name](store)


def test_the_translation_check_sees_an_untranslated_method(tmp_path):
    """Negative control: a raw sqlite3 call on a closed connection escapes as sqlite3.Error."""
    store = MappingStore.open(tmp_path / "agent.db")
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store._conn.execute("SELECT 1")
