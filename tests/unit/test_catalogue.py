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
    # issue 9 item 4
    "epson-tm-m30",
    "epson-tm-t20",
    "epson-tm-t82iii",
    "epson-tm-t88iv",
    "epson-tm-m50",
    "epson-tm-u220",
    "star-tsp143iiilan",
    "star-tsp143iiiw",
    "star-sp742",
    "star-tsp143iiiu",
    "star-sm-l200",
    "bixolon-srp-330iii",
    "bixolon-srp-350plusiii",
    "bixolon-srp-q300",
    "bixolon-srp-e300",
    "citizen-ct-e351",
    "citizen-ct-s4000",
    "sewoo-lk-t21",
    "generic-escpos-58mm",
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


TSP100III = {"star-tsp100iii", "star-tsp143iiilan", "star-tsp143iiiw", "star-tsp143iiiu"}


def test_tsp100_is_raster_only_and_mpop_has_one_integrated_drawer():
    for model_id in TSP100III:
        tsp = catalogue.get(model_id)
        assert tsp.raster_only and tsp.command_set is CommandSet.STAR_GRAPHIC
    # Star ESC BEL works over 9100 on the LAN variants; the hint names the NIC setting.
    assert "9100" in catalogue.get("star-tsp100iii").notes
    assert "9100" in catalogue.get("star-tsp143iiilan").notes
    mpop = catalogue.get("star-mpop")
    assert mpop.integrated_drawer and mpop.drawers == 1
    assert set(mpop.connections) == {"usb", "bluetooth"}  # no Ethernet at all
    assert all(not m.raster_only for m in catalogue.MODELS if m.id not in TSP100III)


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
        # What the printers of issue 9 really report: 1284 MDL, GS I, mDNS ty/product.
        ("Star", "TSP143IIILAN (STR_T-001)", "star-tsp143iiilan"),
        (None, "Star TSP143IIILAN", "star-tsp143iiilan"),
        ("STAR", "TSP743 (STR_T-001)", "star-tsp700ii"),
        ("Star Micronics", "FVP10 (STR_T-001)", "star-fvp10"),
        (None, "TUP592 (STR_T-001)", "star-tup500"),
        ("Star", "SP742 (STR-001)", "star-sp742"),
        ("Star", "STAR mPOP-", "star-mpop"),
        ("EPSON", "TM-m30", "epson-tm-m30"),
        (None, "EPSON TM-m30", "epson-tm-m30"),  # mDNS ty
        ("Epson", "(TM-m30)", "epson-tm-m30"),  # mDNS product
        ("SEIKO EPSON", "TM-m30II-H", "epson-tm-m30ii"),
        ("LUKHAN", "LK-T21", "sewoo-lk-t21"),
        ("Zjiang", "ZJ-5870", "generic-escpos-58mm"),
        # Unknown variants stay unknown rather than becoming a neighbour's id.
        ("Epson", "TM-T20X", None),
        ("Star", "TSP143IIIBIX", None),
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


@pytest.mark.parametrize("model", catalogue.MODELS, ids=lambda m: m.id)
def test_every_model_states_its_facts_and_is_found_by_what_it_reports(model):
    assert model.connections, "connections must be stated"
    assert set(model.connections) <= set(catalogue.CONNECTIONS)
    assert len(set(model.connections)) == len(model.connections)
    assert model.source, "every model cites where its facts come from"
    assert model.reports, "every model lists the strings it reports"
    assert model.drawers in (0, 1, 2)
    if model.realtime_pulse:
        assert model.command_set is CommandSet.ESCPOS  # DLE DC4 is ESC/POS only (§1.2)
    for reported in model.reports:
        assert catalogue.for_reported(model.vendor, reported) is model, reported
        assert catalogue.for_reported(None, reported) is model, reported
    # `models --json` carries the connections.
    assert model.to_json()["connections"] == list(model.connections)


def test_reported_names_are_unambiguous():
    seen = {}
    for model in catalogue.MODELS:
        for name in catalogue._names(model):
            assert seen.setdefault(name, model.id) == model.id, name


@pytest.mark.parametrize(
    "model",
    [m for m in catalogue.MODELS if m.escpos_profile],
    ids=lambda m: m.id,
)
def test_escpos_profiles_exist_in_python_escpos(model):
    from agent.io.escpos_profiles import describe

    assert describe(model.escpos_profile) is not None


@pytest.mark.parametrize(
    ("model_id", "realtime"),
    [
        # Epson's DLE DC4 fn=1 model list names each of these.
        ("epson-tm-m30", True),
        ("epson-tm-t20", True),
        ("epson-tm-t82iii", True),
        ("epson-tm-t88iv", True),
        ("epson-tm-m50", True),
        ("epson-tm-u220", True),
        ("citizen-ct-s4000", True),
        ("sewoo-lk-t21", True),
        ("bixolon-srp-350plusiii", True),
        # Not confirmed in a vendor document: no real-time pulse is assumed.
        ("citizen-ct-e351", False),
        ("bixolon-srp-q300", False),
        ("generic-escpos-58mm", False),
        ("star-sp742", False),
    ],
)
def test_realtime_pulse_follows_the_vendor_documents(model_id, realtime):
    assert catalogue.get(model_id).realtime_pulse is realtime


@pytest.mark.parametrize("model_id", ["star-sm-l200", "star-tup500"])
def test_models_without_a_drawer_connector_refuse_a_drawer(model_id):
    from agent.core.errors import ConfigError
    from agent.core.settings import validate

    raw = {
        "shop_id": "s",
        "printers": {"p": {"host": "127.0.0.1", "model": model_id}},
        "terminals": {"T1": "p"},
    }
    with pytest.raises(ConfigError, match="no drawer kick connector"):
        validate(raw, lambda p: b"")
