"""Console languages: Accept-Language negotiation and the catalogue completeness checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.core.i18n import Translator, negotiate, placeholders, problems

MESSAGES = Path(__file__).resolve().parents[2] / "agent" / "io" / "web" / "messages"
LANGS = ("en", "fr")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("", "en"),
        ("fr", "fr"),
        ("fr-CH, fr;q=0.9, en;q=0.8", "fr"),
        ("fr-FR", "fr"),
        ("de-DE, fr;q=0.5, en;q=0.4", "fr"),
        ("en;q=0.2, fr;q=0.9", "fr"),
        ("de, *;q=0.1", "en"),
        ("de, it", "en"),
        ("fr;q=0", "en"),  # q=0 means "not acceptable" (RFC 9110 §12.4.2)
        ("fr;q=abc, en", "en"),
        ("EN-gb", "en"),
        ("fr;q=0.5, fr-BE;q=0.6", "fr"),
        ("x" * 10_000 + ", fr", "en"),  # past MAX_HEADER: cut, so the tail is not read
    ],
)
def test_negotiation(header, expected):
    assert negotiate(header, LANGS, "en") == expected


def test_placeholders():
    assert placeholders("Till {till} is on {printer}") == {"till", "printer"}
    assert placeholders("No fields") == set()
    with pytest.raises(ValueError, match="expected"):
        placeholders("broken {till")


def test_problems_finds_missing_keys_mismatched_placeholders_and_empties():
    found = problems(
        {
            "en": {"a": "Till {till}", "b": "Save", "c": "x", "d": "{oops"},
            "fr": {"a": "Caisse {caisse}", "c": " ", "d": "ok"},
        }
    )
    assert "fr: b is missing" in found
    assert any(p.startswith("a: placeholders differ") for p in found)
    assert "fr: c is empty or not text" in found
    assert any(p.startswith("en: d has a malformed placeholder") for p in found)


def test_problems_is_empty_for_matching_catalogues():
    """Negative control for the check above."""
    assert problems({"en": {"a": "Till {till}"}, "fr": {"a": "Caisse {till}"}}) == []


def load(lang: str) -> dict[str, str]:
    return json.loads((MESSAGES / f"{lang}.json").read_text(encoding="utf-8"))


def test_the_shipped_catalogues_are_complete_and_consistent():
    catalogues = {lang: load(lang) for lang in LANGS}
    assert len(catalogues["en"]) > 50
    assert problems(catalogues) == []


# Words French spells as English does; any other identical text is an untranslated string.
SAME_IN_BOTH = {
    "lang.en",
    "lang.fr",
    "find.port",
    "journal.title",
    "nav.journal",
    "origin.api",
    "origin.console",
    "shop.agent",
    "shop.version",
    "till.actions",
}


def test_the_french_is_not_the_english():
    en, fr = load("en"), load("fr")
    same = {k for k in en if en[k] == fr.get(k)}
    assert same == SAME_IN_BOTH


def test_translator_falls_back_and_fills_placeholders():
    t = Translator("fr", {"a": "Caisse {till}"}, {"a": "Till {till}", "b": "Save"})
    assert t("a", till="T1") == "Caisse T1"
    assert t("b") == "Save"
    assert t("missing") == "missing"
    assert t("a") == "Caisse {till}"
    assert t("a", other=1) == "Caisse {till}"  # a bad call never crashes a page
