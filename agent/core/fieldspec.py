"""Settings fields declared once, on the dataclass field; reading, redaction, schema follow (pure).

A settings key is a dataclass field whose metadata holds a ``doc``. The metadata keys are plain
strings so that a package which must not import the agent (discovery) can declare its own keys:

- ``doc``: one line for humans and for the JSON Schema (its presence makes the field a key);
- ``lo``/``hi``: inclusive bounds of a number; ``length``: (min, max or None) of a string;
- ``choices``: allowed strings, or a mapping from allowed string to stored value;
- ``pattern``: a compiled regular expression the whole string must match;
- ``secret``: never shown (redacted to ``"***"``, or to the sorted names of a table);
- ``from_file``: the value may also be given as ``<key>_file``, a path read at validation;
- ``derived``: no fixed default; the section rule supplies one from other keys (never required);
- ``custom``: read by hand in settings.py (cross-field rules); still redacted and in the schema;
- ``schema``: the JSON Schema of a custom key whose type says too little (tables of user names).

Adding a key is one line: ``name: int = setting(5, doc="...", lo=1, hi=9)``.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any

from agent.core.errors import ConfigError

MISSING: Any = dataclasses.MISSING


def setting(
    default: object = MISSING,
    *,
    doc: str,
    factory: Callable[[], object] | None = None,
    lo: float | None = None,
    hi: float | None = None,
    length: tuple[int, int | None] | None = None,
    choices: tuple[str, ...] | Mapping[str, object] = (),
    pattern: re.Pattern[str] | None = None,
    secret: bool = False,
    from_file: bool = False,
    derived: bool = False,
    custom: bool = False,
    schema: Mapping[str, object] | None = None,
) -> Any:
    """A dataclass field that is a settings key; see the module docstring for the metadata."""
    meta: dict[str, object] = {"doc": doc}
    for name, value in (
        ("lo", lo),
        ("hi", hi),
        ("length", length),
        ("pattern", pattern),
        ("schema", schema),
    ):
        if value is not None:
            meta[name] = value
    if choices:
        meta["choices"] = choices
    flags = {"secret": secret, "from_file": from_file, "derived": derived, "custom": custom}
    for name, flag in flags.items():
        if flag:
            meta[name] = True
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta, repr=not secret)
    return dataclasses.field(default=default, metadata=meta, repr=not secret)


class EnvValue(str):
    """A value that came from an environment variable, still text; coerced by type."""

    __slots__ = ("var",)
    var: str

    def __new__(cls, text: str, var: str) -> EnvValue:
        obj = super().__new__(cls, text)
        obj.var = var
        return obj


@dataclasses.dataclass(frozen=True)
class Key:
    """One settings key of a dataclass: its field and its resolved type."""

    field: dataclasses.Field[Any]
    hint: Any

    @property
    def name(self) -> str:
        return self.field.name

    @property
    def meta(self) -> Mapping[str, Any]:
        return self.field.metadata

    @property
    def default(self) -> object:
        if self.field.default is not MISSING:
            return self.field.default
        factory: Any = self.field.default_factory
        if factory is not MISSING:
            return factory()
        return MISSING


@cache
def keys_of(cls: Any) -> tuple[Key, ...]:
    """The settings keys of a dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    return tuple(Key(f, hints[f.name]) for f in dataclasses.fields(cls) if "doc" in f.metadata)


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """`X | None` -> (X, True); anything else -> (hint, False)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return hint, False


def _enum(hint: Any) -> type[enum.StrEnum] | None:
    return hint if isinstance(hint, type) and issubclass(hint, enum.StrEnum) else None


class Section:
    """Typed reads from one table; whatever was not read is an unknown key."""

    def __init__(self, raw: object, path: str, read_file: Callable[[str], bytes]) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(path or "<root>", "must be a table")
        self.raw: Mapping[str, object] = raw
        self.path = path
        self.read_file = read_file
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        value = self.raw.get(name)
        where = f"{self.path}.{name}" if self.path else name
        if isinstance(value, EnvValue):
            return f"{where} (from {value.var})"
        return where

    def get(self, name: str) -> object:
        self.seen.add(name)
        return self.raw.get(name)

    def has(self, name: str) -> bool:
        return name in self.raw

    def table(self, name: str) -> Section:
        self.seen.add(name)
        where = f"{self.path}.{name}" if self.path else name
        return Section(self.raw.get(name, {}), where, self.read_file)

    def done(self) -> None:
        for name in self.raw:
            if name not in self.seen:
                raise ConfigError(self.key(name), "unknown key")

    @contextmanager
    def closing(self) -> Iterator[Section]:
        """Yield self, then fail on any key nobody read."""
        yield self
        self.done()

    def text(
        self,
        name: str,
        default: str | None = None,
        *,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
        choices: tuple[str, ...] = (),
    ) -> str | None:
        value = self.get(name)
        if value is None:
            if required:
                raise ConfigError(self.key(name), "is required")
            return default
        if not isinstance(value, str):
            raise ConfigError(self.key(name), f"must be a string, not {_tname(value)}")
        if pattern is not None and not pattern.match(value):
            raise ConfigError(self.key(name), f"{value!r} must match {pattern.pattern}")
        if choices and value not in choices:
            raise ConfigError(self.key(name), f"{value!r} must be one of {', '.join(choices)}")
        return str(value)

    def integer(self, name: str, default: int, lo: float, hi: float) -> int:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, EnvValue):
            try:
                value = int(value)
            except ValueError:
                raise ConfigError(self.key(name), f"{value!r} is not an integer") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.key(name), f"must be an integer, not {_tname(value)}")
        if not lo <= value <= hi:
            raise ConfigError(self.key(name), f"{value} is outside {int(lo)}..{int(hi)}")
        return value

    def number(self, name: str, default: float, lo: float, hi: float) -> float:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, EnvValue):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(self.key(name), f"{value!r} is not a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(self.key(name), f"must be a number, not {_tname(value)}")
        if not lo <= value <= hi:
            raise ConfigError(self.key(name), f"{value} is outside {lo:g}..{hi:g}")
        return float(value)

    def flag(self, name: str, default: bool) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, EnvValue):
            lowered = value.lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ConfigError(self.key(name), f"{value!r} is not true or false")
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"must be true or false, not {_tname(value)}")
        return value

    def texts(self, name: str, default: tuple[str, ...] | None) -> tuple[str, ...] | None:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, EnvValue):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(self.key(name), "must be a list of strings")
        return tuple(value)

    def file(self, name: str, path: str) -> bytes:
        """The bytes of `path`, read for key `name`."""
        try:
            return self.read_file(path)
        except OSError as exc:
            raise ConfigError(
                self.key(name), f"cannot read {path}: {exc.strerror or exc}"
            ) from None

    def secret(self, name: str) -> str | None:
        """`name` inline or `name_file` read from disk (stripped UTF-8), never both."""
        inline = self.text(name)
        path = self.text(f"{name}_file")
        if inline is not None and path is not None:
            raise ConfigError(self.key(f"{name}_file"), f"set {name} or {name}_file, not both")
        if path is None:
            return inline
        data = self.file(f"{name}_file", path)
        try:
            return data.decode().strip()
        except UnicodeDecodeError:
            raise ConfigError(self.key(f"{name}_file"), f"{path} is not UTF-8 text") from None


def read_keys(
    sec: Section, cls: type, defaults: Mapping[str, object] | None = None
) -> dict[str, Any]:
    """Read every non-custom key of `cls` from `sec`; `defaults` overrides field defaults."""
    defaults = defaults or {}
    return {
        k.name: read_key(sec, k, defaults.get(k.name, k.default))
        for k in keys_of(cls)
        if not k.meta.get("custom")
    }


def read_key(sec: Section, key: Key, default: object) -> object:
    """One key, coerced by its type and checked against its metadata."""
    name, meta = key.name, key.meta
    hint, optional = _unwrap(key.hint)
    given = sec.raw.get(name) is not None or (meta.get("from_file") and sec.has(f"{name}_file"))
    if default is MISSING and not optional and not given:
        raise ConfigError(sec.key(name), "is required")
    value: object
    if meta.get("from_file"):
        value = sec.secret(name)
        value = default if value is None else value
    elif hint is bool:
        value = sec.flag(name, bool(default))
    elif hint is int and "choices" not in meta:
        value = sec.integer(name, _as(int, default), meta["lo"], meta["hi"])
    elif hint is float:
        value = sec.number(name, _as(float, default), meta["lo"], meta["hi"])
    elif typing.get_origin(hint) in (tuple, frozenset):
        value = _read_list(sec, key, typing.get_origin(hint), typing.get_args(hint)[0], default)
    else:
        value = _read_text(sec, key, hint, default)
    length = meta.get("length")
    if isinstance(value, str) and length is not None:
        _check_length(sec, name, value, length)
    return value


def _as(kind: type[Any], default: object) -> Any:
    assert isinstance(default, kind), default
    return default


def _read_text(sec: Section, key: Key, hint: Any, default: object) -> object:
    meta = key.meta
    choices = meta.get("choices", ())
    members = _enum(hint)
    if members is not None:
        choices = tuple(m.value for m in members)
    if isinstance(choices, Mapping):
        back = {v: k for k, v in choices.items()}
        text = sec.text(key.name, back.get(default), choices=tuple(choices))
        return default if text is None else choices[text]
    text = sec.text(
        key.name,
        None if default is MISSING else typing.cast("str | None", default),
        pattern=meta.get("pattern"),
        choices=tuple(choices),
    )
    return members(text) if members is not None and text is not None else text


def _read_list(sec: Section, key: Key, origin: Any, item: Any, default: object) -> object:
    given = sec.texts(key.name, None)
    if given is None:
        return default
    members = _enum(item)
    if members is not None:
        allowed = tuple(m.value for m in members)
        for name in given:
            if name not in allowed:
                raise ConfigError(sec.key(key.name), f"{name!r} is not one of {', '.join(allowed)}")
        return origin(members(n) for n in given)
    return origin(given)


def _check_length(sec: Section, name: str, value: str, length: tuple[int, int | None]) -> None:
    lo, hi = length
    if hi is None and len(value) < lo:
        problem = "must not be empty" if lo == 1 else f"must be at least {lo} characters"
        raise ConfigError(sec.key(name), problem)
    if hi is not None and not lo <= len(value) <= hi:
        raise ConfigError(sec.key(name), f"must be {lo}..{hi} characters")


def redact(obj: object) -> dict[str, object]:
    """The keys of a settings dataclass as plain JSON values, every secret replaced."""
    cls: Any = type(obj)
    return {k.name: _spelled(k, getattr(obj, k.name)) for k in keys_of(cls)}


def _spelled(key: Key, value: object) -> object:
    """A value as it would be written in the config file (secrets replaced)."""
    choices = key.meta.get("choices")
    if isinstance(choices, Mapping):
        return {v: k for k, v in choices.items()}.get(value, value)
    return _plain(value, key.meta.get("secret", False))


def _plain(value: object, secret: bool = False) -> object:
    if secret:
        if isinstance(value, Mapping):
            return sorted(value)
        return "***" if value else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, frozenset):
        items: list[Any] = [_plain(v) for v in value]
        return sorted(items)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def json_schema(cls: type) -> dict[str, object]:
    """JSON Schema (2020-12) of a settings dataclass, from the same field metadata."""
    properties: dict[str, object] = {}
    required: list[str] = []
    for k in keys_of(cls):
        prop = _schema_of(k)
        properties[k.name] = prop
        if k.meta.get("from_file"):
            properties[f"{k.name}_file"] = {
                "type": "string",
                "description": f"file holding {k.name} (instead of {k.name})",
            }
        _, optional = _unwrap(k.hint)
        fixed = k.default is not MISSING or k.meta.get("derived")
        if not fixed and not optional and not dataclasses.is_dataclass(k.hint):
            required.append(k.name)
    out: dict[str, object] = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }
    if required:
        out["required"] = required
    return out


def _schema_of(key: Key) -> dict[str, object]:
    meta = key.meta
    hint, _ = _unwrap(key.hint)
    prop: dict[str, object] = dict(meta.get("schema") or _type_schema(hint, meta))
    prop["description"] = meta["doc"]
    default = key.default
    if default is not MISSING and default is not None and not meta.get("secret"):
        plain = _spelled(key, default)
        if not isinstance(plain, dict) or plain:
            prop["default"] = plain
    if meta.get("secret"):
        prop["writeOnly"] = True
    return prop


def _type_schema(hint: Any, meta: Mapping[str, Any]) -> dict[str, object]:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return json_schema(hint)
    if hint is bool:
        return {"type": "boolean"}
    if hint in (int, float) and "choices" not in meta:
        return {
            "type": "integer" if hint is int else "number",
            "minimum": meta["lo"],
            "maximum": meta["hi"],
        }
    origin = typing.get_origin(hint)
    if origin in (tuple, frozenset):
        return {"type": "array", "items": _type_schema(typing.get_args(hint)[0], {})}
    out: dict[str, object] = {"type": "string"}
    members = _enum(hint)
    choices = meta.get("choices") or (tuple(m.value for m in members) if members else ())
    if choices:
        out["enum"] = list(choices)
    if "pattern" in meta:
        out["pattern"] = meta["pattern"].pattern
    if "length" in meta:
        lo, hi = meta["length"]
        out["minLength"] = lo
        if hi is not None:
            out["maxLength"] = hi
    return out


def table_paths(cls: type, trail: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Paths of the tables whose keys are names chosen by the user (printer ids, kids)."""
    for k in keys_of(cls):
        hint, _ = _unwrap(k.hint)
        if typing.get_origin(hint) is Mapping:
            yield (*trail, k.name)
        elif dataclasses.is_dataclass(hint) and isinstance(hint, type):
            yield from table_paths(hint, (*trail, k.name))


def _tname(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)
