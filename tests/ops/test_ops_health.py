"""Pure health core: status derivation, publish-on-change, left-open alert, pulse form."""

import json
from dataclasses import replace

import pytest

from agent.core import health
from agent.core.commands import CommandSet
from agent.core.health import (
    DrawerWatch,
    choose_kick,
    must_publish,
    observe,
    unreachable,
    watch_drawer,
)
from agent.core.settings import PrinterSettings
from agent.core.status import Paper, PrinterStatus, parse_dle_eot

BASE = health.unknown("p1", "192.0.2.5")


def printer(*, realtime=False, command_set=CommandSet.ESCPOS, level="low"):
    return PrinterSettings(
        id="p1",
        host="192.0.2.5",
        port=9100,
        command_set=command_set,
        model=None,
        drawer=1,
        pulse_on_ms=100,
        pulse_off_ms=500,
        drawer_open_level=level,
        realtime_pulse=realtime,
    )


# (status, open_level) -> expected (online, drawer_open, paper, cover_open, last_error)
OBSERVE_TABLE = [
    (
        PrinterStatus(
            online=True, paper=Paper.OK, cover_open=False, error=False, drawer_pin_high=True
        ),
        "low",
        (True, False, Paper.OK, False, None),
    ),
    (
        PrinterStatus(
            online=True, paper=Paper.OK, cover_open=False, error=False, drawer_pin_high=False
        ),
        "low",
        (True, True, Paper.OK, False, None),
    ),
    (
        PrinterStatus(
            online=True, paper=Paper.OK, cover_open=False, error=False, drawer_pin_high=True
        ),
        "high",
        (True, True, Paper.OK, False, None),
    ),
    (
        PrinterStatus(
            online=True, paper=Paper.NEAR_END, cover_open=False, error=False, drawer_pin_high=True
        ),
        "low",
        (True, False, Paper.NEAR_END, False, None),
    ),
    (
        PrinterStatus(
            online=False, paper=Paper.OUT, cover_open=False, error=False, drawer_pin_high=True
        ),
        "low",
        (False, False, Paper.OUT, False, "printer reports offline; paper out"),
    ),
    (
        PrinterStatus(
            online=False, paper=Paper.OK, cover_open=True, error=True, drawer_pin_high=None
        ),
        "low",
        (False, None, Paper.OK, True, "printer reports offline; cover open; printer error"),
    ),
]


@pytest.mark.parametrize(("status", "level", "expected"), OBSERVE_TABLE)
def test_observe_derives_contract_fields(status, level, expected):
    h = observe(BASE, status, open_level=level, host="192.0.2.5", now=100.0, rtt_ms=1.5)
    assert (h.online, h.drawer_open, h.paper, h.cover_open, h.last_error) == expected
    assert h.reachable
    assert h.last_seen == 100.0
    assert h.checked_at == 100.0


def test_observe_from_real_dle_eot_bytes():
    # Pin 3 LOW (drawer open with the default polarity), paper near end (§2.1 n=4 0x0C).
    reply = bytes((0x12, 0x12, 0x12, 0x1E))
    h = observe(BASE, parse_dle_eot(reply), open_level="low", host="h", now=1.0, rtt_ms=None)
    assert h.drawer_open is True
    assert h.paper is Paper.NEAR_END


def test_unreachable_keeps_last_seen_and_forgets_sensors():
    seen = observe(
        BASE,
        parse_dle_eot(bytes((0x12, 0x12, 0x12, 0x12))),  # online, paper OK (§2.1)
        open_level="low",
        host="h",
        now=50.0,
        rtt_ms=1.0,
    )
    down = unreachable(seen, host="h", reason="connection refused", now=60.0)
    assert (down.online, down.reachable, down.drawer_open, down.paper) == (False, False, None, None)
    assert down.last_seen == 50.0
    assert down.last_error == "connection refused"
    body = json.loads(health.status_payload(down))
    assert set(body) == {
        "online",
        "drawer_open",
        "paper",
        "cover_open",
        "last_seen",
        "last_error",
        "host",
    }
    assert body["online"] is False
    assert body["last_seen"] == 50.0


def _ok(now, **kw):
    status = PrinterStatus(
        online=True, paper=Paper.OK, cover_open=False, error=False, drawer_pin_high=True
    )
    return replace(observe(BASE, status, open_level="low", host="h", now=now, rtt_ms=1.0), **kw)


PUBLISH_TABLE = [
    ("first probe", None, _ok(1.0), True),
    ("same state, later probe", _ok(1.0), _ok(2.0, rtt_ms=9.0), False),
    ("drawer opened", _ok(1.0), _ok(2.0, drawer_open=True), True),
    ("paper near end", _ok(1.0), _ok(2.0, paper=Paper.NEAR_END), True),
    ("went offline", _ok(1.0), unreachable(_ok(1.0), host="h", reason="x", now=2.0), True),
    (
        "error text changed",
        unreachable(_ok(1.0), host="h", reason="x", now=2.0),
        unreachable(_ok(1.0), host="h", reason="y", now=3.0),
        True,
    ),
]


@pytest.mark.parametrize(
    ("published", "current", "expected"),
    [row[1:] for row in PUBLISH_TABLE],
    ids=[r[0] for r in PUBLISH_TABLE],
)
def test_publish_only_on_change(published, current, expected):
    assert must_publish(published, current) is expected


# (sequence of (now, drawer_open)), alert_after -> times at which an alert fires
WATCH_TABLE = [
    ("open long enough", [(0, True), (1, True), (2, True)], 2.0, [2]),
    ("closed before the limit", [(0, True), (1, False), (2, True), (3, True)], 2.0, []),
    ("one alert per opening", [(0, True), (2, True), (3, True), (9, True)], 2.0, [2]),
    (
        "reopened alerts again",
        [(0, True), (2, True), (3, False), (4, True), (6, True)],
        2.0,
        [2, 6],
    ),
    ("unknown keeps the timer", [(0, True), (1, None), (2, True)], 2.0, [2]),
    ("never open", [(0, False), (5, False)], 2.0, []),
]


@pytest.mark.parametrize(
    ("steps", "after", "fired"), [r[1:] for r in WATCH_TABLE], ids=[r[0] for r in WATCH_TABLE]
)
def test_drawer_left_open_alert(steps, after, fired):
    watch, times = DrawerWatch(), []
    for now, is_open in steps:
        watch, alert = watch_drawer(watch, "p1", is_open, now=now, alert_after_s=after)
        if alert is not None:
            times.append(now)
            body = json.loads(alert.to_json())
            assert body["kind"] == "drawer_left_open"
            assert body["printer_id"] == "p1"
            assert body["since"] <= now - after
    assert times == fired


KICK_TABLE = [
    ("healthy: ESC p", True, _ok(1.0), False),
    ("no probe yet: ESC p", True, None, False),
    ("paper out, realtime model: DLE DC4", True, _ok(1.0, online=False, paper=Paper.OUT), True),
    ("offline, realtime model: DLE DC4", True, _ok(1.0, online=False), True),
    (
        "paper out, no realtime support: still ESC p",
        False,
        _ok(1.0, online=False, paper=Paper.OUT),
        False,
    ),
    (
        "unreachable: ESC p (nothing was reported)",
        True,
        unreachable(_ok(1.0), host="h", reason="x", now=2.0),
        False,
    ),
]


@pytest.mark.parametrize(
    ("realtime", "last", "expect_rt"), [r[1:] for r in KICK_TABLE], ids=[r[0] for r in KICK_TABLE]
)
def test_pulse_form(realtime, last, expect_rt):
    kick = choose_kick(printer(realtime=realtime), last)
    assert kick.realtime is expect_rt
    if expect_rt:
        assert kick.payload == bytes((0x10, 0x14, 0x01, 0x00, 0x01))  # DLE DC4 1 m t (§1.2)
    else:
        assert kick.payload == bytes((0x1B, 0x70, 0x00, 50, 250))  # ESC p 0 t1 t2 (§1.1)
