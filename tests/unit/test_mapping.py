"""The runtime mapping: file layer + overrides, every operation, its audit row and refusals."""

from __future__ import annotations

import pytest

from agent.core.mapping import (
    ABSENT,
    FILE,
    MAX_PRINTERS,
    Actor,
    Applied,
    Override,
    Refused,
    RuntimeMapping,
    till_problem,
)
from agent.core.settings import validate, validate_printer

FILE_CONFIG = {
    "shop_id": "salon-42",
    "printers": {
        "front": {"host": "192.0.2.10", "model": "epson-tm-t20iii"},
        "back": {"host": "192.0.2.11", "model": "star-tsp143iiilan"},
    },
    "terminals": {"T1": "front", "T2": "back"},
}
CONSOLE = Actor("console", "console:token")
API = Actor("api", "token")
NEW_TABLE = {"host": "192.0.2.20", "model": "epson-tm-m30", "name": "Bar"}


def file_mapping() -> RuntimeMapping:
    s = validate(FILE_CONFIG, lambda _p: b"")
    return RuntimeMapping.build(s.printers, s.terminals)


def applied(outcome) -> Applied:
    assert isinstance(outcome, Applied), outcome
    return outcome


def refused(outcome) -> Refused:
    assert isinstance(outcome, Refused), outcome
    return outcome


def test_the_file_alone_is_the_effective_mapping_with_origin_file():
    m = file_mapping()
    assert m.revision == 0
    assert m.terminal_map() == {"T1": "front", "T2": "back"}
    assert {e.origin for e in m.printers.values()} == {FILE}
    assert m.printers["front"].table["host"] == "192.0.2.10"
    assert m.printers["front"].table["command_set"] == "escpos"
    assert m.entry_revision("printer", "front") == 0
    assert m.entry_revision("printer", "nope") == ABSENT
    assert m.problems == ()


# (operation, args, expected effective terminals, expected printers, change action, old, new)
OPERATIONS = [
    (
        "set_printer",
        ("bar", NEW_TABLE),
        {"T1": "front", "T2": "back"},
        {"front", "back", "bar"},
        "set",
        None,
        NEW_TABLE,
    ),
    (
        "set_terminal",
        ("T1", "back"),
        {"T1": "back", "T2": "back"},
        {"front", "back"},
        "set",
        "front",
        "back",
    ),
    (
        "set_terminal",
        ("Caisse 3", "front"),
        {"T1": "front", "T2": "back", "Caisse 3": "front"},
        {"front", "back"},
        "set",
        None,
        "front",
    ),
    ("remove_terminal", ("T2",), {"T1": "front"}, {"front", "back"}, "remove", "back", None),
]


@pytest.mark.parametrize(
    ("op", "args", "terminals", "printers", "action", "old", "new"), OPERATIONS
)
def test_each_operation_changes_the_effective_mapping_and_yields_its_audit_row(
    op, args, terminals, printers, action, old, new
):
    m = file_mapping()
    out = applied(getattr(m, op)(*args, actor=CONSOLE, at=1000.0))
    assert out.mapping.terminal_map() == terminals
    assert set(out.mapping.printers) == printers
    c = out.change
    assert (c.revision, c.at, c.origin, c.who, c.action) == (
        1,
        1000.0,
        "console",
        "console:token",
        action,
    )
    assert c.key == args[0]
    assert (dict(c.old) if isinstance(c.old, dict) else c.old) == old
    assert (dict(c.new) if hasattr(c.new, "keys") else c.new) == new
    assert out.mapping.revision == 1
    # The original is untouched: mappings are values.
    assert m.revision == 0
    assert m.terminal_map() == {"T1": "front", "T2": "back"}


def test_an_override_wins_and_carries_its_origin_until_reverted():
    m = file_mapping()
    moved = {"host": "192.0.2.99", "model": "epson-tm-t20iii", "drawer": 2}
    m1 = applied(m.set_printer("front", moved, actor=API, at=1.0)).mapping
    front = m1.printers["front"]
    assert (front.origin, front.revision, front.settings.host, front.settings.drawer) == (
        "api",
        1,
        "192.0.2.99",
        2,
    )
    assert front.file_table is not None
    assert front.file_table["host"] == "192.0.2.10"
    out = applied(m1.revert_printer("front", actor=CONSOLE, at=2.0))
    back = out.mapping.printers["front"]
    assert (back.origin, back.settings.host, back.settings.drawer) == (FILE, "192.0.2.10", 1)
    assert out.override is None  # the stored row goes away
    assert (out.change.action, out.change.revision) == ("revert", 2)
    assert out.change.new is not None
    assert out.change.new["host"] == "192.0.2.10"


def test_removing_a_file_printer_keeps_a_tombstone_that_revert_undoes():
    m = applied(file_mapping().remove_terminal("T2", actor=CONSOLE, at=1.0)).mapping
    out = applied(m.remove_printer("back", actor=CONSOLE, at=2.0))
    assert "back" not in out.mapping.printers
    assert out.override is not None
    assert out.override.value is None  # tombstone: the file still has it
    again = applied(out.mapping.revert_printer("back", actor=CONSOLE, at=3.0)).mapping
    assert again.printers["back"].origin == FILE


def test_removing_a_console_printer_deletes_its_row():
    m = applied(file_mapping().set_printer("bar", NEW_TABLE, actor=CONSOLE, at=1.0)).mapping
    out = applied(m.remove_printer("bar", actor=CONSOLE, at=2.0))
    assert out.override is None
    assert "bar" not in out.mapping.printers
    assert ("printer", "bar") not in out.mapping.overrides


@pytest.mark.parametrize(
    ("setup", "op", "args", "code", "key", "tills"),
    [
        ([], "remove_printer", ("front",), "in_use", None, ("T1",)),
        ([], "remove_printer", ("nope",), "not_found", None, ()),
        ([], "set_printer", ("front", {"host": "192.0.2.1"}), "invalid", "printers.front", ()),
        (
            [],
            "set_printer",
            ("front", {"host": "h", "model": "epson-tm-t20iii", "drawer": 3}),
            "invalid",
            "drawer",
            (),
        ),
        ([], "set_printer", ("front", {"host": "h", "model": "nope"}), "invalid", "model", ()),
        (
            [],
            "set_printer",
            ("front", {"host": "h", "command_set": "escpos", "colour": 1}),
            "invalid",
            "colour",
            (),
        ),
        ([], "set_printer", ("bad id!", NEW_TABLE), "invalid", "printers.bad id!", ()),
        ([], "set_printer", ("front", ["not", "a", "table"]), "invalid", None, ()),
        ([], "set_terminal", ("T1", "nope"), "invalid", "printer_id", ()),
        ([], "set_terminal", ("", "front"), "invalid", "till", ()),
        ([], "set_terminal", ("a/b", "front"), "invalid", "till", ()),
        ([], "remove_terminal", ("T9",), "not_found", None, ()),
        ([], "revert_printer", ("front",), "not_found", None, ()),
        ([], "revert_terminal", ("T1",), "not_found", None, ()),
        # A console-only printer still linked cannot be reverted away.
        (
            [("set_printer", ("bar", NEW_TABLE)), ("set_terminal", ("T3", "bar"))],
            "revert_printer",
            ("bar",),
            "in_use",
            None,
            ("T3",),
        ),
        # The file's printer of T2 was removed: T2's file value cannot come back.
        (
            [("set_terminal", ("T2", "front")), ("remove_printer", ("back",))],
            "revert_terminal",
            ("T2",),
            "invalid",
            "printer_id",
            (),
        ),
    ],
)
def test_refusals_say_why_and_change_nothing(setup, op, args, code, key, tills):
    m = file_mapping()
    for step, step_args in setup:
        m = applied(getattr(m, step)(*step_args, actor=CONSOLE, at=1.0)).mapping
    r = refused(getattr(m, op)(*args, actor=CONSOLE, at=2.0))
    assert (r.code, r.key, r.tills) == (code, key, tills)
    assert r.reason


def test_the_in_use_refusal_names_the_tills():
    r = refused(file_mapping().remove_printer("front", actor=CONSOLE, at=1.0))
    assert "T1" in r.reason


@pytest.mark.parametrize(
    ("expect", "ok"),
    [(None, True), (0, True), (1, False), (ABSENT, False)],
)
def test_compare_and_set_on_the_entry_revision(expect, ok):
    out = file_mapping().set_terminal("T1", "back", actor=API, at=1.0, expect=expect)
    assert isinstance(out, Applied) is ok
    if not ok:
        assert refused(out).code == "conflict"


def test_create_only_with_absent_and_a_stale_revision_conflicts():
    m = file_mapping()
    m1 = applied(m.set_printer("bar", NEW_TABLE, actor=API, at=1.0, expect=ABSENT)).mapping
    assert (
        refused(m1.set_printer("bar", NEW_TABLE, actor=API, at=2.0, expect=ABSENT)).code
        == "conflict"
    )
    m2 = applied(m1.set_printer("bar", NEW_TABLE, actor=API, at=2.0, expect=1)).mapping
    assert refused(m2.set_printer("bar", NEW_TABLE, actor=API, at=3.0, expect=1)).code == "conflict"


def test_the_validation_is_the_settings_code():
    """Negative control for the 'same code' claim: what the file refuses, set_printer refuses."""
    table = {"host": "h", "model": "star-mpop", "drawer": 2}
    with pytest.raises(Exception, match="only drawer 1"):
        validate_printer("p", table)
    r = refused(file_mapping().set_printer("p", table, actor=API, at=1.0))
    assert r.key == "drawer"
    assert "only drawer 1" in r.reason


def test_the_printer_count_is_bounded():
    m = file_mapping()
    for i in range(MAX_PRINTERS - len(m.printers)):
        m = applied(m.set_printer(f"p{i}", NEW_TABLE, actor=API, at=1.0)).mapping
    assert refused(m.set_printer("one-more", NEW_TABLE, actor=API, at=2.0)).code == "limit"
    # Replacing an existing one is still fine at the limit.
    applied(m.set_printer("p0", NEW_TABLE, actor=API, at=2.0))


def test_stored_overrides_rebuild_the_same_mapping():
    m = file_mapping()
    for op, args in [
        ("set_printer", ("bar", NEW_TABLE)),
        ("set_terminal", ("T1", "bar")),
        ("remove_terminal", ("T2",)),
        ("remove_printer", ("back",)),
    ]:
        m = applied(getattr(m, op)(*args, actor=CONSOLE, at=1.0)).mapping
    rebuilt = RuntimeMapping.build(
        m.file_printers, m.file_terminals, m.overrides.values(), m.revision
    )
    assert rebuilt.terminal_map() == m.terminal_map() == {"T1": "bar"}
    assert set(rebuilt.printers) == {"front", "bar"}
    assert rebuilt.to_json() == m.to_json()


def test_overrides_that_no_longer_fit_the_file_are_ignored_and_reported():
    s = validate(FILE_CONFIG, lambda _p: b"")
    overrides = [
        Override("printer", "ghost", {"host": "h", "model": "renamed-model"}, "api", "t", 1, 1.0),
        Override("terminal", "T9", "ghost", "api", "t", 2, 1.0),
        Override("terminal", "T8", {"not": "a printer id"}, "api", "t", 3, 1.0),
    ]
    m = RuntimeMapping.build(s.printers, s.terminals, overrides, 3)
    assert "ghost" not in m.printers
    assert "T9" not in m.terminals
    assert "T8" not in m.terminals
    assert len(m.problems) == 3
    # Negative control: the same override with a valid model is applied.
    good = [
        Override("printer", "ghost", {"host": "h", "model": "epson-tm-t20iii"}, "api", "t", 1, 1.0)
    ]
    assert "ghost" in RuntimeMapping.build(s.printers, s.terminals, good, 1).printers


def test_a_changed_table_cannot_be_changed_behind_the_records_back():
    table = dict(NEW_TABLE)
    out = applied(file_mapping().set_printer("bar", table, actor=API, at=1.0))
    table["host"] = "192.0.2.66"
    assert out.mapping.printers["bar"].settings.host == "192.0.2.20"
    assert out.change.new["host"] == "192.0.2.20"


def test_change_json_is_plain():
    out = applied(file_mapping().set_printer("bar", NEW_TABLE, actor=API, at=1.0))
    j = out.change.to_json()
    assert j["new"] == NEW_TABLE
    assert j["old"] is None
    assert out.mapping.to_json()["printers"]["bar"]["origin"] == "api"


@pytest.mark.parametrize(
    ("till", "ok"),
    [
        ("T1", True),
        ("Caisse 1", True),
        ("", False),
        ("x" * 129, False),
        ("a\nb", False),
        (5, False),
    ],
)
def test_till_ids(till, ok):
    assert (till_problem(till) is None) is ok


def test_actor_origin_is_a_runtime_one():
    with pytest.raises(ValueError, match="origin"):
        Actor("file", "someone")


@pytest.mark.parametrize(
    "table",
    [
        {"host": "192.0.2.1", "model": "epson-tm-t20iii"},
        {"host": "192.0.2.1", "model": "epson-tm-t20iii", "drawer": 2, "pulse_on_ms": 200},
        {
            "host": "192.0.2.1",
            "model": "star-tsp143iiilan",
            "pulse_on_ms": 100,
            "pulse_off_ms": 500,
        },
        {"host": "192.0.2.1", "command_set": "escpos", "match": {"mac": "00:11:62:00:00:01"}},
        {"device": "/dev/usb/lp0", "model": "epson-tm-t20iii"},
        {"device": "/dev/ttyS0", "command_set": "escpos", "baudrate": 19200},
    ],
)
def test_a_file_printer_spelled_as_a_table_validates_back_to_itself(table):
    """A file entry's table is what revert, trials and the console start from."""
    from agent.core.mapping import printer_table

    s = validate_printer("p", table)
    spelled = printer_table(s)
    assert validate_printer("p", spelled) == s
    # Keys of the other transport are never spelled out (they would be refused).
    assert ("baudrate" in spelled) == ("baudrate" in table)
