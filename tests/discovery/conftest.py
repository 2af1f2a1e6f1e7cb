"""Fixtures for the discovery tests: a real snmpsim fleet on 127.0.1.x, shared per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from discovery_peers import SnmpSim, find_snmpsim, snmpsim

# Address plan (all loopback): SNMP agents 127.0.1.x, TCP printers 127.0.2.x, mDNS 127.0.0.1.
SNMP_AGENTS = {
    "127.0.1.10": "epson-tm-t20iii",
    "127.0.1.11": "star-tsp654ii",
    "127.0.1.12": "bixolon-srp-350iii",
    "127.0.1.13": "citizen-ct-s310ii",
    "127.0.1.14": "star-mcp31",
    "127.0.1.15": "garbled",
    "127.0.1.16": "router",
    "127.0.1.20": "clone-a",
    "127.0.1.21": "clone-b",
}


@pytest.fixture(scope="session")
def snmp_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpSim]:
    """Nine agents on one free high port; the other 245 addresses of 127.0.1.0/24 stay silent."""
    try:
        find_snmpsim()
    except FileNotFoundError as exc:
        # CI installs snmpsim: a missing binary is a broken environment, not a reason to skip.
        pytest.fail(str(exc), pytrace=False)
    with snmpsim(SNMP_AGENTS, tmp_path_factory.mktemp("snmpsim")) as sim:
        yield sim
