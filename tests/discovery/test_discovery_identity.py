"""MAC normalisation and `match =` rules, table-driven."""

from __future__ import annotations

import pytest

from discovery import PrinterRecord, matches, normalise_mac
from discovery.core.identity import identity_keys, mdns_instance


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("00:26:AB:12:34:56", "00:26:ab:12:34:56"),
        ("00-26-ab-12-34-56", "00:26:ab:12:34:56"),
        ("0026.ab12.3456", "00:26:ab:12:34:56"),
        ("0026ab123456", "00:26:ab:12:34:56"),
        ("0x0026AB123456", "00:26:ab:12:34:56"),
        ("  00:26:ab:12:34:56 ", "00:26:ab:12:34:56"),
        (b"\x00\x26\xab\x12\x34\x56", "00:26:ab:12:34:56"),
        (b"00:26:ab:12:34:56", "00:26:ab:12:34:56"),
        (b"0026ab123456", "00:26:ab:12:34:56"),
        ("\x00\x26\xab\x12\x34\x56", "00:26:ab:12:34:56"),  # pysnmp str() of binary
        ("0:26:ab:12:34:56", None),  # octets must be two digits
        ("00:26:ab:12:34", None),
        ("00:26:ab:12:34:56:78", None),
        ("00:26:ab-12:34:56", "00:26:ab:12:34:56"),
        ("0026:ab12:3456", None),
        ("00 26 ab 12 34 56", None),
        ("zz:26:ab:12:34:56", None),
        (b"\x00\x26\xab", None),
        (b"\xff\xfe\x41", None),
        (b"", None),
        ("", None),
        ("00:00:00:00:00:00", None),
        ("ff:ff:ff:ff:ff:ff", None),
        ("01:00:5e:00:00:fb", None),  # multicast (mDNS group)
        ("02:42:0a:00:00:01", "02:42:0a:00:00:01"),  # locally administered unicast is fine
    ],
)
def test_normalise_mac(value: str | bytes, expected: str | None) -> None:
    assert normalise_mac(value) == expected


def record(**fields: object) -> PrinterRecord:
    base: dict[str, object] = {
        "host": "127.0.1.10",
        "port": 9100,
        "vendor": None,
        "model": None,
        "command_set": None,
        "mac": None,
        "serial": None,
        "name": None,
        "sources": frozenset({"snmp"}),
        "first_seen": 1.0,
        "last_seen": 2.0,
    }
    base.update(fields)
    return PrinterRecord(**base)  # type: ignore[arg-type]


EPSON = record(mac="00:26:ab:12:34:56", serial="X4FT012345", mdns_name="EPSON TM-T20III")


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ({"mac": "00-26-AB-12-34-56"}, True),
        ({"mac": "00:26:ab:12:34:57"}, False),
        ({"mac": "not a mac"}, False),
        ({"serial": " x4ft012345 "}, True),
        ({"serial": "X4FT0"}, False),
        ({"mdns_name": "epson tm-t20iii"}, True),
        ({"mdns_name": "EPSON TM-T20III._pdl-datastream._tcp.local."}, True),
        ({"mdns_name": "EPSON TM-T20III._ipp._tcp.local"}, True),
        ({"mdns_name": "EPSON TM-T88VI"}, False),
        ({"mac": "00:26:ab:12:34:56", "serial": "X4FT012345"}, True),
        ({"mac": "00:26:ab:12:34:56", "serial": "OTHER"}, False),
        ({}, False),
    ],
)
def test_matches(criteria: dict[str, str], expected: bool) -> None:
    assert matches(EPSON, **criteria) is expected


def test_matches_needs_the_field_on_the_record() -> None:
    bare = record()
    assert not matches(bare, mac="00:26:ab:12:34:56")
    assert not matches(bare, serial="X")
    assert not matches(bare, mdns_name="X")


def test_identity_keys_strongest_first() -> None:
    assert identity_keys(EPSON) == (
        "mac:00:26:ab:12:34:56",
        "serial:X4FT012345",
        "mdns:epson tm-t20iii",
        "host:127.0.1.10",
    )
    assert identity_keys(record()) == ("host:127.0.1.10",)


@pytest.mark.parametrize(
    ("name", "instance"),
    [
        ("EPSON TM-T20III._pdl-datastream._tcp.local.", "EPSON TM-T20III"),
        ("Star v1.2._printer._tcp.local", "Star v1.2"),
        ("plain", "plain"),
    ],
)
def test_mdns_instance(name: str, instance: str) -> None:
    assert mdns_instance(name) == instance
