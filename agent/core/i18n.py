"""Message catalogues for the console: language negotiation and completeness checks (pure).

A catalogue is a flat mapping of message key to text; placeholders are `str.format` fields
(`{till}`), so the same values fill every language. Accept-Language is parsed per RFC 9110
§12.5.4 (weights, wildcard); a region (`fr-CH`) falls back to its language (`fr`).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_FORMATTER = string.Formatter()
# Accept-Language headers longer than this are cut before parsing (a bounded cost per request).
MAX_HEADER = 512


def negotiate(header: str | None, available: Sequence[str], default: str) -> str:
    """The best available language for an Accept-Language header (RFC 9110 §12.5.4)."""
    if not header:
        return default
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header[:MAX_HEADER].split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        weight = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                weight = float(params[2:])
            except ValueError:
                continue
        if not tag or not 0.0 < weight <= 1.0:
            continue
        ranked.append((-weight, index, tag))
    for _, _, tag in sorted(ranked):
        if tag == "*":
            return default
        for lang in (tag, tag.split("-", 1)[0]):
            if lang in available:
                return lang
    return default


def placeholders(text: str) -> frozenset[str]:
    """The `{name}` fields of a message (ValueError on a malformed one)."""
    return frozenset(name for _, name, _, _ in _FORMATTER.parse(text) if name is not None)


def problems(catalogues: Mapping[str, Mapping[str, object]]) -> list[str]:
    """Every key missing from a language, empty, not text, or with different placeholders."""
    found: list[str] = []
    keys: set[str] = set()
    for messages in catalogues.values():
        keys.update(messages)
    for lang, messages in sorted(catalogues.items()):
        for key in sorted(keys - set(messages)):
            found.append(f"{lang}: {key} is missing")
    for key in sorted(keys):
        seen: dict[str, frozenset[str]] = {}
        for lang, messages in sorted(catalogues.items()):
            if key not in messages:
                continue
            text = messages[key]
            if not isinstance(text, str) or not text.strip():
                found.append(f"{lang}: {key} is empty or not text")
                continue
            try:
                seen[lang] = placeholders(text)
            except ValueError as exc:
                found.append(f"{lang}: {key} has a malformed placeholder ({exc})")
        if len(set(seen.values())) > 1:
            spelled = "; ".join(f"{lang} {sorted(names)}" for lang, names in seen.items())
            found.append(f"{key}: placeholders differ ({spelled})")
    return found


@dataclass(frozen=True)
class Translator:
    """Texts of one language, falling back to the default language, then to the key."""

    lang: str
    messages: Mapping[str, str]
    fallback: Mapping[str, str]

    def __call__(self, key: str, /, **values: object) -> str:
        text = self.messages.get(key) or self.fallback.get(key) or key
        if not values:
            return text
        try:
            return text.format(**values)
        except (KeyError, IndexError, ValueError):
            return text
