"""The model catalogue encodes the facts, not just the names (PROTOCOLS §1.4)."""

import pytest

from agent.core import catalogue
from agent.core.commands import CommandSet

REQUIRED = [
    "epson-tm-t20ii",
    "epson-tm-t20iii",
    "epson-tm-t88v",
    "epson-tm-t88vi",
    "epson-tm-t88vii",
    "epson-tm-m30ii",
    "epson-tm-m30iii",
    "star-tsp100iii",
    "star-tsp100iv",
    "star-tsp650ii",
    "star-tsp700ii",
    "star-tsp800ii",
    "star-mcprint2",
    "star-mcprint3",
    "star-mpop",
    "bixolon-srp-350ii",
    "bixolon-srp-350iii",
    "bixolon-srp-330ii",
    "citizen-ct-s310ii",
    "citizen-ct-s801iii",
    "generic-escpos-80mm",
]


@pytest.mark.parametrize("model_id", REQUIRED)
def test_required_models_exist(model_id):
    assert catalogue.get(model_id) is not None


def test_ids_are_unique():
    assert len(catalogue.ids()) == len(catalogue.MODELS)


@pytest.mark.parametrize(
    ("model_id", "command_set"),
    [
        ("star-tsp100iii", CommandSet.STAR_GRAPHIC),
        ("star-tsp100iv", CommandSet.STAR_PRNT),
        ("star-tsp650ii", CommandSet.STAR_LINE),
        ("star-mcprint3", CommandSet.STAR_PRNT),
        ("epson-tm-m30iii", CommandSet.ESCPOS),
        ("bixolon-srp-350iii", CommandSet.ESCPOS),
    ],
)
def test_command_sets(model_id, command_set):
    assert catalogue.get(model_id).command_set is command_set


def test_tsp100_is_raster_only_and_mpop_has_one_integrated_drawer():
    tsp = catalogue.get("star-tsp100iii")
    assert tsp.raster_only and tsp.command_set is not CommandSet.ESCPOS
    assert "9100" in tsp.notes
    mpop = catalogue.get("star-mpop")
    assert mpop.integrated_drawer and mpop.drawers == 1
    assert all(not m.raster_only for m in catalogue.MODELS if m.id != "star-tsp100iii")


def test_realtime_pulse_only_on_escpos():
    assert all(m.command_set is CommandSet.ESCPOS for m in catalogue.MODELS if m.realtime_pulse)


@pytest.mark.parametrize(
    ("vendor", "model", "expected"),
    [
        ("Star", "TSP654II (STR_T-001)", "star-tsp650ii"),
        (None, "TSP143", "star-tsp100iii"),
        ("Star", "TSP143IV (STR-001)", "star-tsp100iv"),
        ("Star", "TSP143IV", "star-tsp100iv"),
        (None, "MCP31 (STR-001)", "star-mcprint3"),
        ("Epson", "TM-T20III", "epson-tm-t20iii"),
        ("EPSON", "tm-t88vi", "epson-tm-t88vi"),
        ("Bixolon", "SRP-350III", "bixolon-srp-350iii"),
        ("Epson", "TSP143", None),
        (None, "LaserJet 4", None),
        (None, None, None),
    ],
)
def test_for_reported(vendor, model, expected):
    found = catalogue.for_reported(vendor, model)
    assert (found.id if found else None) == expected


def test_escpos_profiles_come_from_python_escpos():
    from agent.io.escpos_profiles import describe

    profile = describe(catalogue.get("epson-tm-t88v").escpos_profile)
    assert profile is not None
    assert profile["vendor"] == "Epson"
    assert profile["pulse_standard"] is True
    assert describe("NoSuchPrinter") is None
