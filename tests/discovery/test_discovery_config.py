"""DiscoveryConfig validation and sweep-target expansion."""

from __future__ import annotations

import pytest

from discovery import DiscoveryConfig
from discovery.core.subnets import expand, suggest


def test_defaults_sweep_nothing() -> None:
    cfg = DiscoveryConfig()
    assert cfg.subnets == ()
    assert expand(cfg.subnets) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"subnets": ("127.0.1.0/33",)}, "not an IPv4 CIDR"),
        ({"subnets": ("printer.local",)}, "not an IPv4 CIDR"),
        ({"subnets": ("127.0.0.0/8",)}, "max 65536"),
        ({"interfaces": ("eth0",)}, "not an IPv4 address"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"concurrency": 0}, "concurrency"),
        ({"interval_s": 0.5}, "interval_s"),
        ({"snmp_version": "3"}, "snmp_version"),
        ({"probe_port": 0}, "probe_port"),
    ],
)
def test_invalid_config(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DiscoveryConfig(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cidrs", "first", "last", "count"),
    [
        (["127.0.1.0/24"], "127.0.1.1", "127.0.1.254", 254),
        (["127.0.1.7/32"], "127.0.1.7", "127.0.1.7", 1),
        (["127.0.1.6/31"], "127.0.1.6", "127.0.1.7", 2),
        (["127.0.1.5/24"], "127.0.1.1", "127.0.1.254", 254),  # host bits ignored
        (["127.0.1.0/30", "127.0.1.0/29"], "127.0.1.1", "127.0.1.6", 6),  # de-duplicated
    ],
)
def test_expand(cidrs: list[str], first: str, last: str, count: int) -> None:
    hosts = expand(cidrs)
    assert (hosts[0], hosts[-1], len(hosts)) == (first, last, count)


def test_suggest_only_private_and_at_most_a_24() -> None:
    # Pure function over interface addresses given as values: nothing is sent anywhere;
    # private ranges are the point of the rule (the CLI only prints the suggestion).
    interfaces = [
        ("127.0.0.1", 8),
        ("169.254.3.4", 16),
        ("192.168.1.23", 24),
        ("10.1.2.3", 8),
        ("203.0.113.5", 24),  # public: never suggested
        ("192.168.1.99", 24),
        ("not-an-ip", 24),
    ]
    assert suggest(interfaces) == ["192.168.1.0/24", "10.1.2.0/24"]
