"""`discover` CLI: JSON contract, table, TOML snippets, the no-subnet rule."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from discovery_peers import SnmpSim, free_tcp_port

from discovery import PrinterRecord
from discovery.cli import JSON_KEYS, main, render_snippets, render_table

ROOT = Path(__file__).resolve().parents[2]


def test_json_output_is_only_a_json_array(
    snmp_fleet: SnmpSim, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_tcp_port("127.0.1.1")  # nothing listens: every probe is refused
    code = main(
        [
            "--subnet",
            "127.0.1.8/29",
            "--no-mdns",
            "--json",
            "--timeout",
            "0.3",
            "--snmp-port",
            str(snmp_fleet.port),
            "--probe-port",
            str(port),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    printers = json.loads(out)
    assert [p["host"] for p in printers] == [
        "127.0.1.10",
        "127.0.1.11",
        "127.0.1.12",
        "127.0.1.13",
        "127.0.1.14",
    ]  # a /29 has no .15 host: it is the broadcast address
    assert all(tuple(p) == JSON_KEYS for p in printers)
    assert printers[0] | {"sources": printers[0]["sources"]} == {
        "host": "127.0.1.10",
        "port": port,
        "vendor": "Epson",
        "model": "TM-T20III",
        "command_set": "escpos",
        "mac": "00:26:ab:12:34:56",
        "serial": "X4FT012345",
        "name": "TM-T20III-kitchen",
        "sources": ["snmp"],
    }


def test_json_empty_result_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_tcp_port("127.0.2.200")
    code = main(
        [
            "--subnet",
            "127.0.2.200/30",
            "--no-mdns",
            "--no-snmp",
            "--json",
            "--probe-port",
            str(port),
            "--timeout",
            "0.2",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out) == []


def test_without_subnet_only_mdns_runs_and_a_subnet_is_suggested() -> None:
    # A subprocess proves the whole path, including that stdout stays pure JSON.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "discovery",
            "--interface",
            "127.0.0.1",
            "--json",
            "--mdns-seconds",
            "0.2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [] or all(
        p["sources"] == ["mdns"] for p in json.loads(result.stdout)
    )
    assert "No --subnet given: only mDNS runs" in result.stderr


def test_bad_subnet_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--subnet", "nonsense", "--json"]) == 2
    assert "not an IPv4 CIDR" in capsys.readouterr().err


RECORDS = [
    PrinterRecord(
        "127.0.1.10",
        9100,
        "Epson",
        "TM-T20III",
        "escpos",
        "00:26:ab:12:34:56",
        "X4",
        "kitchen",
        frozenset({"snmp", "probe"}),
        1.0,
        2.0,
    ),
    PrinterRecord(
        "127.0.1.11",
        9100,
        "Epson",
        "TM-T20III",
        None,
        None,
        None,
        None,
        frozenset({"mdns"}),
        1.0,
        2.0,
    ),
    PrinterRecord(
        "127.0.1.12", 9101, None, None, None, None, None, None, frozenset({"probe"}), 1.0, 2.0
    ),
]


def test_snippets_are_valid_toml_with_unique_ids() -> None:
    parsed = tomllib.loads(render_snippets(RECORDS))
    assert parsed == {
        "printers": {
            "epson-tm-t20iii": {
                "host": "127.0.1.10",
                "port": 9100,
                "command_set": "escpos",
                "drawer": 1,
                "match": {"mac": "00:26:ab:12:34:56"},
            },
            "epson-tm-t20iii-2": {
                "host": "127.0.1.11",
                "port": 9100,
                "model": "TM-T20III",
                "drawer": 1,
            },
            "printer": {"host": "127.0.1.12", "port": 9101, "drawer": 1},
        }
    }


def test_table_lists_every_column() -> None:
    table = render_table(RECORDS).splitlines()
    assert table[0].split() == [
        "host",
        "vendor",
        "model",
        "command",
        "set",
        "MAC",
        "serial",
        "sources",
    ]
    assert table[2].split() == [
        "127.0.1.10:9100",
        "Epson",
        "TM-T20III",
        "escpos",
        "00:26:ab:12:34:56",
        "X4",
        "probe,snmp",
    ]
    assert render_table([]) == "No printers found."
