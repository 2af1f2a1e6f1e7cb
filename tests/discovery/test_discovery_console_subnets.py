"""The console's default sweep: the request, else the configured subnets, else the host's own
private subnets, never wider than a /22 (pure: addresses are values, nothing is sent)."""

from __future__ import annotations

import pytest

from discovery.core.subnets import console_sweep

IFACES = [
    ("127.0.0.1", 8),
    ("192.168.1.23", 24),
    ("10.1.2.3", 8),  # a /8 LAN: narrowed to the /22 around this host
    ("203.0.113.5", 24),  # public: never swept by default
    ("172.16.9.9", 23),
    ("not-an-ip", 24),
]


@pytest.mark.parametrize(
    ("requested", "configured", "expected"),
    [
        ([], [], ["192.168.1.0/24", "10.1.0.0/22", "172.16.8.0/23"]),
        ([], ["192.168.7.0/24"], ["192.168.7.0/24"]),
        (["127.0.0.0/30"], ["192.168.7.0/24"], ["127.0.0.0/30"]),
        (["127.0.0.5"], [], ["127.0.0.5/32"]),
        (["192.168.4.0/22", "192.168.4.9/22"], [], ["192.168.4.0/22"]),
    ],
)
def test_what_a_console_sweep_covers(requested, configured, expected):
    assert console_sweep(requested, configured, IFACES) == expected


@pytest.mark.parametrize(
    ("requested", "configured", "problem"),
    [
        (["10.0.0.0/8"], [], "wider than a /22"),
        (["192.168.0.0/21"], [], "wider than a /22"),
        ([], ["10.0.0.0/16"], "wider than a /22"),
        (["nonsense"], [], "not an IPv4 subnet"),
        (["::1/128"], [], "not an IPv4 subnet"),
    ],
)
def test_too_wide_or_bad_subnets_are_refused(requested, configured, problem):
    with pytest.raises(ValueError, match=problem):
        console_sweep(requested, configured, IFACES)


def test_a_host_with_only_public_and_loopback_addresses_gets_nothing():
    assert console_sweep([], [], [("127.0.0.1", 8), ("203.0.113.5", 24)]) == []
