"""Pure parsers: DNS-SD TXT, SNMP varbinds, GS I / DLE EOT replies."""

from __future__ import annotations

import pytest

from discovery.core import mdns_parse, probe_parse, snmp_parse
from discovery.core.snmp_parse import Oid


def test_txt_keys_are_case_insensitive_and_first_wins() -> None:
    txt = mdns_parse.decode_txt(
        {b"TY": b"EPSON TM-m30", b"ty": b"other", b"note": None, b"\xff": b"x"}
    )
    assert txt == {"ty": "EPSON TM-m30", "\ufffd": "x"}


def test_txt_is_capped() -> None:
    props = {f"k{i}".encode(): b"v" * 1000 for i in range(500)}
    txt = mdns_parse.decode_txt(props)
    assert len(txt) == mdns_parse.MAX_TXT_KEYS
    assert all(len(v) <= 255 for v in txt.values())


@pytest.mark.parametrize(
    ("service_type", "port", "expected_port", "enrich_only"),
    [
        ("_pdl-datastream._tcp.local.", 9100, 9100, False),
        ("_ipp._tcp.local.", 631, None, False),
        ("_printer._tcp.local.", 515, None, False),
        ("_http._tcp.local.", 80, None, True),
    ],
)
def test_parse_service_ports(
    service_type: str, port: int, expected_port: int | None, enrich_only: bool
) -> None:
    sighting = mdns_parse.parse_service(
        service_type,
        f"Star TSP654II.{service_type}",
        addresses=["fe80::1", "127.0.3.1"],
        port=port,
        properties={b"ty": b"Star TSP654II (STR_T-001)", b"usb_SER": b"2581"},
        now=5.0,
    )
    assert sighting is not None
    assert (sighting.host, sighting.port, sighting.enrich_only) == (
        "127.0.3.1",
        expected_port,
        enrich_only,
    )
    assert (sighting.vendor, sighting.model, sighting.command_set) == (
        "Star",
        "TSP654II",
        "star-line",
    )
    assert (sighting.mdns_name, sighting.serial) == ("Star TSP654II", "2581")


def test_parse_service_needs_ipv4() -> None:
    assert (
        mdns_parse.parse_service(
            mdns_parse.PDL_DATASTREAM, "x", addresses=["::1"], port=9100, properties={}, now=0
        )
        is None
    )


def test_product_is_a_model_fallback() -> None:
    sighting = mdns_parse.parse_service(
        mdns_parse.IPP,
        "ACME._ipp._tcp.local.",
        addresses=["127.0.3.1"],
        port=631,
        properties={b"product": b"(ACME TP80)"},
        now=0,
    )
    assert sighting is not None
    assert (sighting.vendor, sighting.model) == (None, "ACME TP80")


EPSON_VARBINDS: list[tuple[str, snmp_parse.SnmpValue]] = [
    ("1.3.6.1.2.1.1.1.0", b"EPSON Built-in"),
    ("1.3.6.1.2.1.1.2.0", Oid("1.3.6.1.4.1.1248.1.1")),
    ("1.3.6.1.2.1.1.5.0", b"kitchen"),
    ("1.3.6.1.2.1.2.2.1.6.1", b"\x00\x26\xab\x12\x34\x56"),
    ("1.3.6.1.2.1.25.3.2.1.3.1", b"EPSON TM-T20III"),
    ("1.3.6.1.2.1.43.5.1.1.17.1", b"X4FT012345"),
    ("1.3.6.1.4.1.2699.1.2.1.2.1.1.3.1", b"MFG:EPSON;MDL:TM-T20III;CMD:ESC/POS;"),
    ("1.3.6.1.2.1.25.3.5.1.1.1", 3),
]


def test_parse_reply_full() -> None:
    reply = snmp_parse.parse_reply(EPSON_VARBINDS)
    assert reply == snmp_parse.SnmpReply(
        sys_descr="EPSON Built-in",
        sys_object_id="1.3.6.1.4.1.1248.1.1",
        sys_name="kitchen",
        mac="00:26:ab:12:34:56",
        hr_device_descr="EPSON TM-T20III",
        serial="X4FT012345",
        device_id="MFG:EPSON;MDL:TM-T20III;CMD:ESC/POS;",
        printer_status="idle",
    )


@pytest.mark.parametrize(
    ("varbinds", "field", "expected"),
    [
        # GETNEXT walked past a missing column into the next object: not ours.
        ([("1.3.6.1.2.1.1.5.0", b"name")], "sys_object_id", None),
        ([("1.3.6.1.2.1.1.2.0", b"1.3.6.1.4.1.1248")], "sys_object_id", None),  # wrong type
        ([("1.3.6.1.2.1.1.2.0", Oid("not.an.oid"))], "sys_object_id", None),
        ([("1.3.6.1.2.1.1.1.0", 42)], "sys_descr", None),  # wrong type
        ([("1.3.6.1.2.1.1.1.0", None)], "sys_descr", None),  # endOfMibView
        ([("1.3.6.1.2.1.2.2.1.6.3", b"\x00\x26")], "mac", None),  # short
        ([("1.3.6.1.2.1.2.2.1.6.3", Oid("1.2"))], "mac", None),
        ([("1.3.6.1.2.1.25.3.5.1.1.1", b"idle")], "printer_status", None),
        ([("1.3.6.1.2.1.25.3.5.1.1.1", 99)], "printer_status", None),
        ([("1.3.6.1.2.1.43.5.1.1.17.1", b"\x00\x01")], "serial", None),
        ([("1.3.6.1.2.1.1.5.0", b"a\x00b\x1bc")], "sys_name", "a b c"),
        ([("1.3.6.1.2.1.1.5.0", b"x" * 5000)], "sys_name", "x" * 255),
        # 1284 device ID with its 2-byte length prefix kept by the agent.
        ([("1.3.6.1.4.1.2699.1.2.1.2.1.1.3.1", b"\x00\x0cMFG:EPSON;")], "device_id", "MFG:EPSON;"),
    ],
)
def test_parse_reply_bad_values(
    varbinds: list[tuple[str, snmp_parse.SnmpValue]], field: str, expected: object
) -> None:
    assert getattr(snmp_parse.parse_reply(varbinds), field) == expected


def test_non_printers_are_dropped() -> None:
    router = snmp_parse.SnmpReply(sys_descr="Linux gw 6.1", sys_object_id="1.3.6.1.4.1.8072.3")
    assert snmp_parse.to_sighting("127.0.1.1", router, 0) is None
    printer = snmp_parse.SnmpReply(sys_descr="Generic Thermal Printer")
    assert snmp_parse.to_sighting("127.0.1.1", printer, 0) is not None


@pytest.mark.parametrize(
    ("buffer", "expected"),
    [
        (b"\x5fEPSON\x00", ("EPSON", True)),
        (b"\x11\x5fBIXOLON\x00", ("BIXOLON", True)),  # XON before the reply
        (b"\x5fTM-T\x00", ("TM-T", True)),
        (b"\x5fEPS", (None, False)),  # not finished
        (b"EPSON\x00", (None, False)),  # no header
        (b"\x5f\x00", (None, True)),  # empty
        (b"\x5f\xffX\x00", ("\ufffdX", True)),
    ],
)
def test_extract_gs_i(buffer: bytes, expected: tuple[str | None, bool]) -> None:
    assert probe_parse.extract_gs_i(buffer) == expected


@pytest.mark.parametrize(
    ("byte", "valid"),
    [
        (0x12, True),
        (0x16, True),
        (0x1E, True),
        (0x08, False),
        (0x13, False),
        (0x92, False),
        (0x00, False),
    ],
)
def test_escpos_status_pattern(byte: int, valid: bool) -> None:
    assert probe_parse.is_escpos_status(byte) is valid


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (b"\x16", 0x16),  # a lone DLE EOT 1 reply
        (b"\x12", 0x12),
        (b"", None),
        (b"\x08", None),  # one byte, wrong fixed bits
        (b"\x16\x16", None),  # two bytes: not the answer to one DLE EOT 1
        (b"HTTP/1.1 400 Bad Request\r\n", None),  # "R" = 0x52 matches, but is not alone
        (b"R", 0x52),  # alone it is indistinguishable, which is why the probe waits to settle
        (b"\x11\x16", None),  # XON then status: serial flow control never reaches TCP 9100
        (bytes.fromhex("23 06 00 00 00 00 00 00 00"), None),  # Star ASB
    ],
)
def test_find_status_accepts_only_a_lone_well_formed_byte(reply: bytes, status: int | None) -> None:
    assert probe_parse.find_status(reply) == status


def test_probe_evidence_beats_the_model_name() -> None:
    # A Star TSP654II in ESC/POS emulation answers DLE EOT 1 and GS I: speak ESC/POS to it.
    reply = probe_parse.ProbeReply(escpos=True, maker="STAR", model="TSP654II (STR_T-001)")
    assert probe_parse.to_sighting("127.0.2.1", 9100, reply, 1.0).command_set == "escpos"


def test_probe_sighting() -> None:
    reply = probe_parse.ProbeReply(escpos=True, maker="EPSON", model="TM-T81", serial="S")
    sighting = probe_parse.to_sighting("127.0.2.1", 9100, reply, 1.0)
    assert (sighting.vendor, sighting.model, sighting.command_set, sighting.serial) == (
        "Epson",
        "TM-T81",
        "escpos",
        "S",
    )
    mute = probe_parse.to_sighting("127.0.2.2", 9100, probe_parse.ProbeReply(escpos=True), 1.0)
    assert mute.command_set == "escpos"
    assert (
        probe_parse.to_sighting("127.0.2.3", 9100, probe_parse.ProbeReply(), 1.0).command_set
        is None
    )


def test_identify_queries_are_read_only() -> None:
    # GS I n with n in 0x41..0x45 and DLE EOT n, never ESC p / DLE DC4 / BEL (PROTOCOLS §1, §2).
    sent = (probe_parse.DLE_EOT_PRINTER_STATUS, *probe_parse.IDENTIFY_QUERIES)
    assert sent == (b"\x10\x04\x01", b"\x1dIB", b"\x1dIC", b"\x1dID")
    assert not any(b in q for q in sent for b in (b"\x07", b"\x1a", b"\x19", b"\x1bp", b"\x10\x14"))
