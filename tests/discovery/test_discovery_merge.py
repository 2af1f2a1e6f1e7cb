"""Merging sightings into one record per device: MAC > serial > mDNS name > host."""

from __future__ import annotations

import pytest

from discovery.core.merge import conflicting_macs, merge, withdraw
from discovery.core.model import Sighting

MAC_A = "00:26:ab:12:34:56"
MAC_B = "00:11:62:0a:0b:0c"


def s(source: str, host: str, at: float = 10.0, **fields: object) -> Sighting:
    return Sighting(source=source, host=host, seen_at=at, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("batches", "expected_hosts"),
    [
        # Same host, three sources, one device.
        (
            [
                [s("snmp", "127.0.1.10", mac=MAC_A), s("probe", "127.0.1.10", port=9100)],
                [s("mdns", "127.0.1.10", mdns_name="EPSON", name="EPSON")],
            ],
            ["127.0.1.10"],
        ),
        # Same MAC at a new address in a later sweep: the device moved.
        (
            [[s("snmp", "127.0.1.10", mac=MAC_A)], [s("snmp", "127.0.1.11", at=20, mac=MAC_A)]],
            ["127.0.1.11"],
        ),
        # Same serial, no MAC, new address: moved.
        (
            [[s("snmp", "127.0.1.10", serial="S1")], [s("snmp", "127.0.1.12", at=20, serial="s1")]],
            ["127.0.1.12"],
        ),
        # Same mDNS instance name at a new address: moved.
        (
            [
                [s("mdns", "127.0.1.10", mdns_name="P")],
                [s("mdns", "127.0.1.13", at=20, mdns_name="P")],
            ],
            ["127.0.1.13"],
        ),
        # Different MACs at one address over time: the address was reused by another device.
        (
            [[s("snmp", "127.0.1.10", mac=MAC_A)], [s("snmp", "127.0.1.10", at=20, mac=MAC_B)]],
            ["127.0.1.10", "127.0.1.10"],
        ),
        # Different serials on one host are two devices even without MACs.
        (
            [[s("snmp", "127.0.1.10", serial="S1")], [s("snmp", "127.0.1.10", at=20, serial="S2")]],
            ["127.0.1.10", "127.0.1.10"],
        ),
        # MAC beats serial: same MAC, different serial is the same device (board swap keeps NIC).
        (
            [
                [s("snmp", "127.0.1.10", mac=MAC_A, serial="S1")],
                [s("snmp", "127.0.1.11", at=20, mac=MAC_A, serial="S2")],
            ],
            ["127.0.1.11"],
        ),
        # Two devices claiming one MAC in one sweep: told apart by serial, not merged.
        (
            [
                [
                    s("snmp", "127.0.1.20", mac=MAC_A, serial="A"),
                    s("snmp", "127.0.1.21", mac=MAC_A, serial="B"),
                ]
            ],
            ["127.0.1.20", "127.0.1.21"],
        ),
        # ... and without serials, by host.
        (
            [[s("snmp", "127.0.1.20", mac=MAC_A), s("snmp", "127.0.1.21", mac=MAC_A)]],
            ["127.0.1.20", "127.0.1.21"],
        ),
        # Different mDNS names on one host are different services/devices.
        (
            [[s("mdns", "127.0.1.10", mdns_name="P1")], [s("mdns", "127.0.1.10", mdns_name="P2")]],
            ["127.0.1.10", "127.0.1.10"],
        ),
        # _http._tcp only enriches an existing device.
        ([[s("mdns", "127.0.1.10", mdns_name="web", enrich_only=True)]], []),
    ],
)
def test_merge_identity(batches: list[list[Sighting]], expected_hosts: list[str]) -> None:
    records: tuple = ()
    for batch in batches:
        records = merge(records, batch).records
    assert sorted(r.host for r in records) == expected_hosts


def test_fields_resolve_by_source_priority_without_flapping() -> None:
    snmp = s("snmp", "127.0.1.10", vendor="Epson", model="TM-T20III", mac=MAC_A, name="kitchen")
    mdns = s(
        "mdns", "127.0.1.10", vendor="Epson", model="TM-T20", port=9100, mdns_name="EPSON TM-T20III"
    )
    probe = s("probe", "127.0.1.10", port=19100, model="TM-T20III", serial="X4")
    result = merge((), [snmp, probe])
    result = merge(result.records, [mdns])
    [record] = result.records
    assert record.model == "TM-T20III"  # the device's own answer beats the advertisement
    assert record.name == "EPSON TM-T20III"  # mDNS instance name beats sysName
    assert record.port == 9100  # the advertised raw port beats the probe's guess
    assert record.sources == frozenset({"snmp", "mdns", "probe"})
    # Re-sending the same sightings changes nothing that is watched.
    again = merge(result.records, [snmp, probe, mdns])
    assert again.changes == ()
    assert again.records[0].last_seen == 10.0


def test_changes_report_new_and_moved_records() -> None:
    first = merge((), [s("snmp", "127.0.1.10", mac=MAC_A)])
    [created] = first.changes
    assert created.old is None
    moved = merge(first.records, [s("snmp", "127.0.1.11", at=20.0, mac=MAC_A)])
    [change] = moved.changes
    assert (change.old.host if change.old else None, change.new.host) == (
        "127.0.1.10",
        "127.0.1.11",
    )
    assert change.new.first_seen == 10.0
    assert change.new.last_seen == 20.0


def test_device_changing_address_mid_run_keeps_probe_sightings_straight() -> None:
    records = merge(
        (), [s("snmp", "127.0.1.10", mac=MAC_A), s("probe", "127.0.1.10", port=9100)]
    ).records
    # Next sweep: the printer answers at .11; a different device now has the old address.
    result = merge(
        records,
        [
            s("snmp", "127.0.1.11", at=20, mac=MAC_A),
            s("probe", "127.0.1.11", at=20, port=9100),
            s("probe", "127.0.1.10", at=20, port=9100),
        ],
    )
    by_host = {r.host: r for r in result.records}
    assert by_host["127.0.1.11"].mac == MAC_A
    assert by_host["127.0.1.11"].sources == frozenset({"snmp", "probe"})
    assert by_host["127.0.1.10"].mac is None
    assert len(result.records) == 2


def test_withdraw_keeps_the_device_but_drops_mdns() -> None:
    records = merge((), [s("mdns", "127.0.1.10", mdns_name="P", vendor="Star")]).records
    records = merge(records, [s("probe", "127.0.1.10", port=9100)]).records
    after, changes = withdraw(records, "P._pdl-datastream._tcp.local.")
    [record] = after
    assert record.sources == frozenset({"probe"})
    assert record.vendor == "Star"
    assert len(changes) == 1
    assert withdraw(after, "unknown") == (after, ())


def test_conflicting_macs() -> None:
    batch = [
        s("snmp", "127.0.1.1", mac=MAC_A),
        s("snmp", "127.0.1.2", mac=MAC_A),
        s("snmp", "127.0.1.3", mac=MAC_B),
        s("mdns", "127.0.1.3", mac=MAC_B),
    ]
    assert conflicting_macs(batch) == frozenset({MAC_A})


def test_sighting_rejects_unknown_source() -> None:
    with pytest.raises(ValueError, match="unknown source"):
        s("ldap", "127.0.0.1")
