"""The fleet view's model (pure), table-driven: what each message does to it."""

import json

import pytest

from agent.core.fleet import FleetModel, render_table

ONLINE = {
    "state": "online",
    "version": "0.1.0",
    "started_at": 1000.0,
    "broker": "192.0.2.1:8883",
    "printers": 2,
    "printer_ids": ["back", "front"],
}
PRINTER = {
    "online": True,
    "drawer_open": False,
    "paper": "near_end",
    "cover_open": False,
    "last_seen": 1005.0,
    "last_error": None,
    "host": "192.0.2.20",
}


def feed(*messages):
    model = FleetModel()
    results = [
        model.observe(t, p if isinstance(p, bytes) else json.dumps(p).encode(), now)
        for t, p, now in messages
    ]
    return model, results


def test_agent_status_then_last_will():
    model, results = feed(
        ("shops/a/agent/status", ONLINE, 10.0),
        ("shops/a/agent/status", {"state": "offline"}, 20.0),
    )
    shop = model.shops["a"]
    assert results == ["a", "a"]
    assert shop.up is False and shop.last_seen == 20.0
    # The will carries only the state: what the agent said before stays known.
    assert (shop.version, shop.broker, shop.printer_ids) == (
        "0.1.0",
        "192.0.2.1:8883",
        ("back", "front"),
    )


def test_printer_status_and_alerts():
    model, _ = feed(
        ("shops/a/printers/front/status", PRINTER, 1.0),
        ("shops/a/alerts", {"kind": "drawer_left_open", "printer_id": "front", "since": 1.0}, 2.0),
        ("shops/a/alerts", {"kind": "drawer_left_open", "printer_id": "front", "since": 9.0}, 3.0),
    )
    front = model.shops["a"].printers["front"]
    assert (front.online, front.drawer_open, front.paper, front.last_seen) == (
        True,
        False,
        "near_end",
        1005.0,
    )
    assert model.shops["a"].alerts == {"drawer_left_open": 2}
    assert model.shops["a"].up is False  # no agent status seen yet


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("shops/a/agent/status", b"not json"),
        ("shops/a/agent/status", b"[1]"),
        ("shops/a/agent/status", {"state": 1}),
        ("shops/a/printers/front/status", b"\xff\xfe"),
        ("shops/a/alerts", {"kind": "X; DROP"}),
        ("shops/a/alerts", {"no": "kind"}),
        ("shops/a/cash/events", {"event_id": "e"}),  # never subscribed, still refused
        ("shops/a b/agent/status", ONLINE),
        ("shops/a/printers/front/x/status", PRINTER),
    ],
)
def test_unusable_messages_are_counted_not_raised(topic, payload):
    model, results = feed((topic, payload, 1.0))
    assert results == [None]
    assert model.malformed == 1 and model.messages == 1
    assert model.shops == {}


def test_odd_field_types_become_unknown_not_errors():
    model, _ = feed(
        (
            "shops/a/printers/p/status",
            {"online": "yes", "drawer_open": 1, "paper": "lots", "last_seen": True},
            1.0,
        ),
        (
            "shops/a/agent/status",
            {"state": "online", "version": 3, "started_at": "x", "printer_ids": [1]},
            1.0,
        ),
    )
    p = model.shops["a"].printers["p"]
    assert (p.online, p.drawer_open, p.paper, p.last_seen) == (False, None, None, None)
    shop = model.shops["a"]
    assert (shop.up, shop.version, shop.started_at, shop.printer_ids) == (True, None, None, ())


def test_exact_topics_cover_announced_and_seen_printers():
    model, _ = feed(
        ("shops/a/agent/status", ONLINE, 1.0),
        ("shops/a/printers/side/status", PRINTER, 1.0),
    )
    assert model.exact_topics("a") == [
        "shops/a/agent/status",
        "shops/a/printers/back/status",
        "shops/a/printers/front/status",
        "shops/a/printers/side/status",
    ]
    assert model.exact_topics("unknown") == ["shops/unknown/agent/status"]


def test_table_lists_every_printer_and_expected_shops():
    model, _ = feed(
        ("shops/a/agent/status", ONLINE, 100.0),
        ("shops/a/printers/front/status", PRINTER, 100.0),
        ("shops/a/printers/back/status", {**PRINTER, "online": False, "drawer_open": None}, 100.0),
    )
    model.shop("b")  # expected, never heard of
    lines = render_table(model, now=130.0)
    assert lines[0].split()[:3] == ["SHOP", "AGENT", "VERSION"]
    assert lines[1].split() == ["a", "up", "0.1.0", "back", "OFFLINE", "near_end", "?", "0", "30s"]
    assert lines[2].split() == [
        "a",
        "up",
        "0.1.0",
        "front",
        "online",
        "near_end",
        "closed",
        "0",
        "30s",
    ]
    assert lines[3].split() == ["b", "DOWN", "?", "-", "-", "-", "-", "0", "never"]
    assert lines[-1] == "2 shops, 1 agents up; 2 printers, 1 online; 3 messages, 0 unusable"
