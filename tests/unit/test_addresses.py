"""Following a printer whose address changes (pure)."""

import pytest

from agent.core.addresses import AddressBook, Move
from agent.core.commands import CommandSet
from agent.core.settings import MatchSettings, PrinterSettings
from discovery.core.model import PrinterRecord


def printer(pid, host=None, match=None, port=9100):
    return PrinterSettings(
        id=pid,
        host=host,
        port=port,
        command_set=CommandSet.ESCPOS,
        model=None,
        drawer=1,
        pulse_on_ms=100,
        pulse_off_ms=500,
        match=match,
    )


def record(host, *, mac=None, serial=None, mdns_name=None, port=9100):
    return PrinterRecord(
        host=host,
        port=port,
        vendor="Epson",
        model="TM-T20III",
        command_set="escpos",
        mac=mac,
        serial=serial,
        name=None,
        sources=frozenset({"snmp"}),
        first_seen=0.0,
        last_seen=0.0,
        mdns_name=mdns_name,
    )


BOOK = {
    "fixed": printer("fixed", host="127.0.0.9"),
    "by-mac": printer("by-mac", host="127.0.0.10", match=MatchSettings(mac="00:26:AB:12:34:56")),
    "by-serial": printer("by-serial", match=MatchSettings(serial="X5E001")),
    "by-name": printer("by-name", match=MatchSettings(mdns_name="TM-T20III front")),
}


@pytest.mark.parametrize(
    ("rec", "moves"),
    [
        (
            record("127.0.0.11", mac="00:26:ab:12:34:56"),
            [Move("by-mac", ("127.0.0.10", 9100), ("127.0.0.11", 9100))],
        ),
        (record("127.0.0.10", mac="00:26:ab:12:34:56"), []),  # same place: no move
        (record("127.0.0.12", serial="x5e001"), [Move("by-serial", None, ("127.0.0.12", 9100))]),
        (
            record("127.0.0.13", mdns_name="tm-t20iii FRONT._pdl-datastream._tcp.local."),
            [Move("by-name", None, ("127.0.0.13", 9100))],
        ),
        (record("127.0.0.14", mac="00:26:ab:ff:ff:ff"), []),
        (record("127.0.0.9", mac="00:26:ab:12:34:57"), []),  # a printer without match never moves
    ],
)
def test_observe(rec, moves):
    book = AddressBook(BOOK)
    assert book.observe(rec) == moves
    for move in moves:
        assert book.address(move.printer_id) == move.new
    assert book.address("fixed") == ("127.0.0.9", 9100)


def test_match_only_printer_has_no_address_until_seen():
    book = AddressBook(BOOK)
    assert book.address("by-serial") is None
    book.observe(record("127.0.0.20", serial="X5E001"))
    assert book.printer_at("127.0.0.20", 9100) == "by-serial"
    assert (
        "moved from unknown to 127.0.0.20:9100"
        in Move("by-serial", None, ("127.0.0.20", 9100)).describe()
    )
