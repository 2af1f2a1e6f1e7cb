"""Identification rules, table-driven (PROTOCOLS §1.4, §2.4, §4, §5.2)."""

from __future__ import annotations

import pytest

from discovery.core.identify import (
    Clues,
    Identification,
    identify,
    parse_device_id,
    vendor_from_sys_object_id,
)


@pytest.mark.parametrize(
    ("oid", "vendor"),
    [
        ("1.3.6.1.4.1.1248.1.1.2.1.3.5.69.69.80.83.50", "Epson"),
        (".1.3.6.1.4.1.1248", "Epson"),
        ("1.3.6.1.4.1.33550.1.1", "Bixolon"),
        ("1.3.6.1.4.1.33241.1", "Citizen"),
        ("1.3.6.1.4.1.20438.7", "Citizen"),
        ("1.3.6.1.4.1.41149.1", "SNBC"),
        ("1.3.6.1.4.1.263.2", "Seiko Instruments"),
        ("1.3.6.1.4.1.12480.1", None),  # prefix of 1248 digits is not 1248
        ("1.3.6.1.4.1.1240.2.5", None),  # Silex NIC: not a printer vendor
        ("1.3.6.1.2.1.1248", None),  # not under enterprises
        ("1.3.6.1.4.1.", None),
        ("garbage", None),
    ],
)
def test_vendor_from_enterprise_number(oid: str, vendor: str | None) -> None:
    assert vendor_from_sys_object_id(oid) == vendor


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        (
            "MFG:EPSON;CMD:ESC/POS;MDL:TM-T20III;CLS:PRINTER;",
            {"MFG": "EPSON", "CMD": "ESC/POS", "MDL": "TM-T20III"},
        ),
        (
            "MANUFACTURER:Star Micronics;COMMAND SET:STAR;MODEL:TSP654II (STR_T-001);",
            {"MFG": "Star Micronics", "CMD": "STAR", "MDL": "TSP654II (STR_T-001)"},
        ),
        (" mfg : BIXOLON ; mdl:SRP-350III", {"MFG": "BIXOLON", "MDL": "SRP-350III"}),
        ("MFG:EPS", {"MFG": "EPS"}),
        ("MFG:;MDL", {}),
        ("", {}),
        ("MFG:A;MFG:B;", {"MFG": "A"}),
    ],
)
def test_parse_device_id(text: str, fields: dict[str, str]) -> None:
    assert parse_device_id(text) == fields


@pytest.mark.parametrize(
    ("clues", "expected"),
    [
        # SNMP: enterprise number wins, model from hrDeviceDescr.
        (
            Clues(sys_object_id="1.3.6.1.4.1.1248.1", texts=("EPSON TM-T20III", "EPSON Built-in")),
            Identification("Epson", "TM-T20III", "escpos"),
        ),
        (
            Clues(sys_object_id="1.3.6.1.4.1.33550.1", texts=("SRP-350III",)),
            Identification("Bixolon", "SRP-350III", "escpos"),
        ),
        (
            Clues(sys_object_id="1.3.6.1.4.1.33241.1", texts=("CT-S310II Ethernet",)),
            Identification("Citizen", "CT-S310II", "escpos"),
        ),
        (
            Clues(sys_object_id="1.3.6.1.4.1.41149.1"),
            Identification("SNBC", None, "escpos"),
        ),
        # Star has no enterprise number: the model string decides everything.
        (Clues(texts=("TSP654II (STR_T-001)",)), Identification("Star", "TSP654II", "star-line")),
        (Clues(texts=("TSP651 (STR_T-001)",)), Identification("Star", "TSP651", "star-line")),
        (Clues(texts=("TSP743II (STR_T-001)",)), Identification("Star", "TSP743II", "star-line")),
        (Clues(texts=("TSP847II",)), Identification("Star", "TSP847II", "star-line")),
        (Clues(texts=("FVP10 (STR_T-001)",)), Identification("Star", "FVP10", "star-line")),
        (Clues(texts=("TUP592 (STR_T-001)",)), Identification("Star", "TUP592", "star-line")),
        (Clues(texts=("MCP31 (STR-001)",)), Identification("Star", "MCP31", "star-prnt")),
        (Clues(texts=("MCP20 (STR-001)",)), Identification("Star", "MCP20", "star-prnt")),
        (Clues(texts=("MCP21",)), Identification("Star", "MCP21", "star-prnt")),
        (Clues(texts=("TSP143IV (STR-001)",)), Identification("Star", "TSP143IV", "star-prnt")),
        (Clues(texts=("Star TSP143IV-UE",)), Identification("Star", "TSP143IV", "star-prnt")),
        (Clues(texts=("BSC10II (STR-001)",)), Identification("Star", "BSC10II", "star-prnt")),
        (Clues(texts=("Star mPOP",)), Identification("Star", "mPOP", "star-prnt")),
        (Clues(texts=("BSC10",)), Identification("Star", "BSC10", "escpos")),
        # TSP100 I-III are raster-only (PROTOCOLS §1.4).
        (Clues(texts=("TSP143",)), Identification("Star", "TSP143", "star-graphic")),
        (
            Clues(texts=("Star TSP143IIILAN",)),
            Identification("Star", "TSP143IIILAN", "star-graphic"),
        ),
        (Clues(texts=("TSP113",)), Identification("Star", "TSP113", "star-graphic")),
        # IEEE 1284 device ID, short and long keys.
        (
            Clues(device_id="MFG:EPSON;CMD:ESC/POS;MDL:TM-m30;"),
            Identification("Epson", "TM-m30", "escpos"),
        ),
        (
            Clues(device_id="MANUFACTURER:STAR;MODEL:TSP654II (STR_T-001);COMMAND SET:STAR;"),
            Identification("Star", "TSP654II", "star-line"),
        ),
        (
            Clues(device_id="MFG:Star;MDL:SP742;CMD:STAR;"),
            Identification("Star", "SP742", "star-line"),
        ),
        (
            Clues(device_id="MFG:Xprinter;MDL:XP-80C;CMD:ESC/POS;"),
            Identification("Xprinter", "XP-80C", "escpos"),
        ),
        # mDNS TXT: usb_MFG / usb_MDL / usb_CMD and ty / product.
        (
            Clues(mfg="EPSON", mdl="TM-T88VI", cmd="ESC/POS,EPSON"),
            Identification("Epson", "TM-T88VI", "escpos"),
        ),
        (
            Clues(texts=("EPSON TM-T20III", "TM-T20III")),
            Identification("Epson", "TM-T20III", "escpos"),
        ),
        (
            Clues(texts=("BIXOLON SRP-350plusIII",)),
            Identification("Bixolon", "SRP-350plusIII", "escpos"),
        ),
        # GS I maker/model (PROTOCOLS §2.4).
        (Clues(mfg="EPSON", mdl="TM-T81"), Identification("Epson", "TM-T81", "escpos")),
        (Clues(mfg="BIXOLON", mdl="SRP-330II"), Identification("Bixolon", "SRP-330II", "escpos")),
        # SEIKO EPSON is Epson, Seiko Instruments is not.
        (Clues(texts=("SEIKO EPSON CORP.",)), Identification("Epson", None, "escpos")),
        (
            Clues(texts=("Seiko Instruments RP-F10",)),
            Identification("Seiko Instruments", "RP-F10", None),
        ),
        # Unknown stays unknown.
        (Clues(texts=("ACME ThermoPrint 80",)), Identification(None, None, None)),
        (Clues(), Identification(None, None, None)),
        (Clues(mfg="\ufffd\ufffd"), Identification(None, None, None)),
        (Clues(device_id="CMD:ESC/POS;"), Identification(None, None, "escpos")),
        # The device's CMD field beats the Star model-name rules (issue 9 item 3).
        (
            Clues(device_id="MFG:STAR;MDL:TSP654II (STR_T-001);CMD:ESC/POS;"),
            Identification("Star", "TSP654II", "escpos"),
        ),
        (
            Clues(device_id="MFG:Star;MDL:Foo;CMD:STARPRNT;"),
            Identification("Star", "Foo", "star-prnt"),
        ),
        # Model rules beat the STR suffix: SP700 is STAR dot-impact, TSP100 raster-only.
        (Clues(mdl="SP742 (STR-001)"), Identification("Star", "SP742", "star-line")),
        (
            Clues(mdl="TSP143IIILAN (STR_T-001)"),
            Identification("Star", "TSP143IIILAN", "star-graphic"),
        ),
        (Clues(mfg="LUKHAN", mdl="LK-T21"), Identification("Sewoo", "LK-T21", "escpos")),
        # A bare CMD:STAR leaves the dialect to the model rules.
        (
            Clues(device_id="MFG:Star;MDL:TSP143IIILAN;CMD:STAR;"),
            Identification("Star", "TSP143IIILAN", "star-graphic"),
        ),
        (Clues(device_id="MFG:Star;MDL:Foo;CMD:STAR;"), Identification("Star", "Foo", "star-line")),
    ],
)
def test_identify(clues: Clues, expected: Identification) -> None:
    assert identify(clues) == expected
