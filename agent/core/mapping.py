"""Which printers exist and which till opens which drawer, changed while the agent runs (pure).

Two layers: the TOML file is the provisioned layer (never rewritten: under systemd and docker
it is read-only), and overrides made at run time (console, API, MQTT) sit on top of it. The
effective mapping is the file with every override applied; an override that removes a
printer or a till is kept as a tombstone, so "back to the file's value" (revert) is always
one step. Every change bumps one revision number and yields a `Change` for the audit trail.

Invariant kept by every operation: each effective till maps to an effective printer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from agent.core.errors import ConfigError
from agent.core.fieldspec import keys_of, redact
from agent.core.settings import PrinterSettings, validate_printer

Kind = Literal["printer", "terminal"]
Action = Literal["set", "remove", "revert"]
FILE = "file"
# Who may change the mapping at run time; "file" is only ever the provisioned layer.
RUNTIME_ORIGINS = ("console", "api", "mqtt")
# Revision of an entry that does not exist (If-None-Match: * in HTTP terms).
ABSENT = -1
# Bounds a runaway client cannot push the mapping past (a salon has a handful of each).
MAX_PRINTERS = 64
MAX_TERMINALS = 512
MAX_TILL_ID = 128


@dataclass(frozen=True)
class Actor:
    """Who asked for a change: its origin and a name for the audit trail."""

    origin: str
    who: str

    def __post_init__(self) -> None:
        if self.origin not in RUNTIME_ORIGINS:
            raise ValueError(f"origin must be one of {', '.join(RUNTIME_ORIGINS)}")


@dataclass(frozen=True)
class Override:
    """One runtime entry on top of the file: a value, or None for "removed"."""

    kind: Kind
    key: str
    value: Mapping[str, object] | str | None
    origin: str
    who: str
    revision: int
    at: float


@dataclass(frozen=True)
class Change:
    """One audit row: what changed, from what to what, when and by whom."""

    revision: int
    at: float
    origin: str
    who: str
    kind: Kind
    key: str
    action: Action
    old: Mapping[str, object] | str | None
    new: Mapping[str, object] | str | None

    def to_json(self) -> dict[str, object]:
        """Plain JSON for the API and the journal."""
        return {
            "revision": self.revision,
            "at": self.at,
            "origin": self.origin,
            "who": self.who,
            "kind": self.kind,
            "key": self.key,
            "action": self.action,
            "old": _plain(self.old),
            "new": _plain(self.new),
        }


@dataclass(frozen=True)
class Refused:
    """An operation that was not applied, and why.

    `code` is one of: invalid (bad table; `key` names the offending key), in_use (tills
    still map to the printer, listed in `tills`), not_found, conflict (revision mismatch),
    limit (too many entries).
    """

    code: str
    reason: str
    key: str | None = None
    tills: tuple[str, ...] = ()


@dataclass(frozen=True)
class PrinterEntry:
    """One effective printer: validated settings, the table they came from, their origin."""

    settings: PrinterSettings
    table: Mapping[str, object]
    origin: str
    revision: int
    # The file's table when this entry overrides a printer of the file.
    file_table: Mapping[str, object] | None = None

    @property
    def id(self) -> str:
        return self.settings.id

    @property
    def display_name(self) -> str:
        return self.settings.name or self.settings.id

    def to_json(self) -> dict[str, object]:
        """Plain JSON: the table as given, the resolved settings, and where it comes from."""
        return {
            "printer_id": self.id,
            "name": self.display_name,
            "origin": self.origin,
            "revision": self.revision,
            "overrides_file": self.file_table is not None,
            "table": _plain(self.table),
            "settings": {k: v for k, v in redact(self.settings).items() if k != "id"},
        }


@dataclass(frozen=True)
class TerminalEntry:
    """One effective till → printer link."""

    till: str
    printer_id: str
    origin: str
    revision: int
    file_printer: str | None = None

    def to_json(self) -> dict[str, object]:
        """Plain JSON view."""
        return {
            "till": self.till,
            "printer_id": self.printer_id,
            "origin": self.origin,
            "revision": self.revision,
            "overrides_file": self.file_printer is not None and self.origin != FILE,
        }


@dataclass(frozen=True)
class Applied:
    """A change that was applied: the new mapping, the audit row, the row to persist.

    `override` is the row to store for (kind, key), or None when the key's override row
    must be deleted (a revert, or removing an entry that only the runtime layer had).
    """

    mapping: RuntimeMapping
    change: Change
    override: Override | None


Outcome = Applied | Refused


def printer_table(settings: PrinterSettings) -> dict[str, object]:
    """A printer's settings spelled as a `[printers.<id>]` table that validates back to them.

    Unset keys are left out, and so is a key at its field default whenever the table
    without it validates to the same settings: a key that belongs to another transport
    (a tty's baudrate on a TCP printer) is refused when spelled out.
    """
    spelled = redact(settings)
    spelled.pop("id", None)
    table = {k: v for k, v in spelled.items() if v is not None}
    defaults = {k.name: _plain(k.default) for k in keys_of(PrinterSettings)}
    minimal = {k: v for k, v in table.items() if k not in defaults or v != defaults[k]}
    try:
        again = validate_printer(settings.id, minimal)
    except ConfigError:
        return table
    # A default the model overrides (pulse timings) must stay spelled out.
    for name, value in table.items():
        if name not in minimal and getattr(again, name) != getattr(settings, name):
            minimal[name] = value
    try:
        return minimal if validate_printer(settings.id, minimal) == settings else table
    except ConfigError:
        return table


def till_problem(till: object) -> str | None:
    """Why `till` cannot be a till id (the POS's terminal_id), or None."""
    if not isinstance(till, str) or not till:
        return "a till id must be a non-empty string"
    if len(till) > MAX_TILL_ID or not till.isprintable() or "/" in till:
        return f"a till id is 1..{MAX_TILL_ID} printable characters without '/'"
    return None


@dataclass(frozen=True)
class RuntimeMapping:
    """The file's layer, the runtime overrides, and the effective mapping derived from both."""

    file_printers: Mapping[str, PrinterSettings]
    file_terminals: Mapping[str, str]
    overrides: Mapping[tuple[Kind, str], Override]
    revision: int
    printers: Mapping[str, PrinterEntry] = field(compare=False)
    terminals: Mapping[str, TerminalEntry] = field(compare=False)
    # Overrides that no longer fit the file (a model renamed, a printer gone): ignored.
    problems: tuple[str, ...] = field(compare=False)

    @classmethod
    def build(
        cls,
        file_printers: Mapping[str, PrinterSettings],
        file_terminals: Mapping[str, str],
        overrides: Iterable[Override] = (),
        revision: int = 0,
    ) -> RuntimeMapping:
        """The mapping from the file's layer and the stored overrides."""
        by_key = {(o.kind, o.key): o for o in overrides}
        problems: list[str] = []
        printers: dict[str, PrinterEntry] = {}
        for pid, s in file_printers.items():
            printers[pid] = PrinterEntry(s, printer_table(s), FILE, 0)
        for (kind, key), o in sorted(by_key.items()):
            if kind != "printer":
                continue
            if o.value is None:
                printers.pop(key, None)
                continue
            if not isinstance(o.value, Mapping):
                problems.append(f"printer {key}: stored override is not a table; ignored")
                continue
            try:
                s = validate_printer(key, o.value)
            except ConfigError as exc:
                problems.append(f"printer {key}: stored override ignored: {exc}")
                continue
            base = file_printers.get(key)
            printers[key] = PrinterEntry(
                s,
                MappingProxyType(dict(o.value)),
                o.origin,
                o.revision,
                None if base is None else printer_table(base),
            )
        terminals: dict[str, TerminalEntry] = {}
        for till, pid in file_terminals.items():
            terminals[till] = TerminalEntry(till, pid, FILE, 0, pid)
        for (kind, key), o in sorted(by_key.items()):
            if kind != "terminal":
                continue
            if o.value is None:
                terminals.pop(key, None)
            elif isinstance(o.value, str):
                terminals[key] = TerminalEntry(
                    key, o.value, o.origin, o.revision, file_terminals.get(key)
                )
            else:
                problems.append(f"till {key}: stored override is not a printer id; ignored")
        for till, t in list(terminals.items()):
            if t.printer_id not in printers:
                problems.append(f"till {till}: printer {t.printer_id} does not exist; unmapped")
                del terminals[till]
        return cls(
            file_printers=MappingProxyType(dict(file_printers)),
            file_terminals=MappingProxyType(dict(file_terminals)),
            overrides=MappingProxyType(by_key),
            revision=revision,
            printers=MappingProxyType(printers),
            terminals=MappingProxyType(terminals),
            problems=tuple(problems),
        )

    # --- reads -------------------------------------------------------------------------

    def printer_settings(self) -> dict[str, PrinterSettings]:
        """Effective printers by id, as the dispatcher uses them."""
        return {pid: e.settings for pid, e in self.printers.items()}

    def terminal_map(self) -> dict[str, str]:
        """Effective till → printer id (the `GET /api/terminals` body)."""
        return {till: t.printer_id for till, t in self.terminals.items()}

    def tills_of(self, printer_id: str) -> tuple[str, ...]:
        """Tills whose drawer is on this printer, sorted."""
        return tuple(sorted(t for t, e in self.terminals.items() if e.printer_id == printer_id))

    def entry_revision(self, kind: Kind, key: str) -> int:
        """Revision of an effective entry: 0 from the file, ABSENT when it does not exist."""
        if kind == "printer":
            p = self.printers.get(key)
            return ABSENT if p is None else p.revision
        t = self.terminals.get(key)
        return ABSENT if t is None else t.revision

    def to_json(self) -> dict[str, object]:
        """Effective mapping with each entry's origin, for `GET /api/mapping` and check-config."""
        return {
            "revision": self.revision,
            "printers": {pid: e.to_json() for pid, e in sorted(self.printers.items())},
            "terminals": {t: e.to_json() for t, e in sorted(self.terminals.items())},
            "problems": list(self.problems),
        }

    # --- operations ----------------------------------------------------------------------

    def set_printer(
        self,
        printer_id: str,
        table: object,
        *,
        actor: Actor,
        at: float,
        expect: int | None = None,
    ) -> Outcome:
        """Add or replace a printer; validated by the same code as the file's tables."""
        refused = self._check_expect("printer", printer_id, expect)
        if refused:
            return refused
        if not isinstance(table, Mapping) or not all(isinstance(k, str) for k in table):
            return Refused("invalid", "a printer must be a table of keys", key=None)
        try:
            validate_printer(printer_id, table)
        except ConfigError as exc:
            return Refused("invalid", exc.problem, key=_short_key(exc.key, printer_id))
        if printer_id not in self.printers and len(self.printers) >= MAX_PRINTERS:
            return Refused("limit", f"at most {MAX_PRINTERS} printers")
        old = self.printers.get(printer_id)
        new_table = _json_copy(table)
        return self._apply(
            "printer", printer_id, "set", None if old is None else old.table, new_table, actor, at
        )

    def remove_printer(
        self, printer_id: str, *, actor: Actor, at: float, expect: int | None = None
    ) -> Outcome:
        """Take a printer out; refused while a till maps to it."""
        refused = self._check_expect("printer", printer_id, expect)
        if refused:
            return refused
        old = self.printers.get(printer_id)
        if old is None:
            return Refused("not_found", f"no printer {printer_id!r}")
        tills = self.tills_of(printer_id)
        if tills:
            return Refused(
                "in_use",
                f"printer {printer_id} opens the drawer of {', '.join(tills)}; "
                "link those tills to another printer first",
                tills=tills,
            )
        return self._apply("printer", printer_id, "remove", old.table, None, actor, at)

    def revert_printer(
        self, printer_id: str, *, actor: Actor, at: float, expect: int | None = None
    ) -> Outcome:
        """Drop the runtime override: back to the file's value (or gone, if the file has none)."""
        refused = self._check_expect("printer", printer_id, expect)
        if refused:
            return refused
        if ("printer", printer_id) not in self.overrides:
            return Refused("not_found", f"printer {printer_id} has no runtime change to undo")
        base = self.file_printers.get(printer_id)
        if base is None:
            tills = self.tills_of(printer_id)
            if tills:
                return Refused(
                    "in_use",
                    f"printer {printer_id} is not in the file and opens the drawer of "
                    f"{', '.join(tills)}",
                    tills=tills,
                )
        current = self.printers.get(printer_id)
        return self._apply(
            "printer",
            printer_id,
            "revert",
            None if current is None else current.table,
            None if base is None else printer_table(base),
            actor,
            at,
        )

    def set_terminal(
        self,
        till: str,
        printer_id: object,
        *,
        actor: Actor,
        at: float,
        expect: int | None = None,
    ) -> Outcome:
        """Link a till to a printer (new till or another printer)."""
        problem = till_problem(till)
        if problem:
            return Refused("invalid", problem, key="till")
        refused = self._check_expect("terminal", till, expect)
        if refused:
            return refused
        if not isinstance(printer_id, str) or printer_id not in self.printers:
            return Refused("invalid", f"printer {printer_id!r} does not exist", key="printer_id")
        if till not in self.terminals and len(self.terminals) >= MAX_TERMINALS:
            return Refused("limit", f"at most {MAX_TERMINALS} tills")
        old = self.terminals.get(till)
        return self._apply(
            "terminal", till, "set", None if old is None else old.printer_id, printer_id, actor, at
        )

    def remove_terminal(
        self, till: str, *, actor: Actor, at: float, expect: int | None = None
    ) -> Outcome:
        """Unlink a till: its events are then `unmapped`."""
        refused = self._check_expect("terminal", till, expect)
        if refused:
            return refused
        old = self.terminals.get(till)
        if old is None:
            return Refused("not_found", f"no till {till!r}")
        return self._apply("terminal", till, "remove", old.printer_id, None, actor, at)

    def revert_terminal(
        self, till: str, *, actor: Actor, at: float, expect: int | None = None
    ) -> Outcome:
        """Drop the till's runtime override: back to the file's printer (or unlinked)."""
        refused = self._check_expect("terminal", till, expect)
        if refused:
            return refused
        if ("terminal", till) not in self.overrides:
            return Refused("not_found", f"till {till} has no runtime change to undo")
        base = self.file_terminals.get(till)
        if base is not None and base not in self.printers:
            return Refused(
                "invalid",
                f"the file links {till} to printer {base}, which was removed; "
                "link the till to a printer instead",
                key="printer_id",
            )
        current = self.terminals.get(till)
        return self._apply(
            "terminal",
            till,
            "revert",
            None if current is None else current.printer_id,
            base,
            actor,
            at,
        )

    # --- helpers -------------------------------------------------------------------------

    def _check_expect(self, kind: Kind, key: str, expect: int | None) -> Refused | None:
        if expect is None:
            return None
        have = self.entry_revision(kind, key)
        if have == expect:
            return None
        now = "does not exist" if have == ABSENT else f"is at revision {have}"
        return Refused("conflict", f"{kind} {key} {now}; reload and try again")

    def _apply(
        self,
        kind: Kind,
        key: str,
        action: Action,
        old: Mapping[str, object] | str | None,
        new: Mapping[str, object] | str | None,
        actor: Actor,
        at: float,
    ) -> Applied:
        revision = self.revision + 1
        overrides = dict(self.overrides)
        row: Override | None
        in_file = key in (self.file_printers if kind == "printer" else self.file_terminals)
        if action == "revert" or (action == "remove" and not in_file):
            overrides.pop((kind, key), None)
            row = None
        else:
            row = Override(kind, key, new, actor.origin, actor.who, revision, at)
            overrides[(kind, key)] = row
        mapping = RuntimeMapping.build(
            self.file_printers, self.file_terminals, overrides.values(), revision
        )
        change = Change(revision, at, actor.origin, actor.who, kind, key, action, old, new)
        return Applied(mapping, change, row)


def _short_key(dotted: str, printer_id: str) -> str:
    """`printers.front.drawer` -> `drawer`; the table itself -> `printers.front`."""
    prefix = f"printers.{printer_id}."
    return dotted[len(prefix) :] if dotted.startswith(prefix) else dotted


def _json_copy(table: Mapping[str, object]) -> Mapping[str, object]:
    """A frozen deep copy through JSON, so a caller's later edit cannot change the record."""
    copied = json.loads(json.dumps(table))
    assert isinstance(copied, dict)
    return MappingProxyType(copied)


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return json.loads(json.dumps(dict(value)))
    return value
