"""Health you can see, end to end: real mosquitto, real virtual printers, real HTTP."""

import json
import time
import uuid

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.core.commands import CommandSet
from agent.core.errors import PrinterUnreachable
from agent.core.status import Paper
from agent.core.topics import Topics
from agent.devtools.demo import event
from agent.devtools.emulation import RollPaper
from agent.devtools.emulator import VirtualPrinterServer
from agent.io.metrics import Metrics
from agent.io.mqtt_link import PosClient
from agent.io.printer_link import send
from agent.service.prober import query_status
from tests.conftest import make_settings, running_agent
from tests.waiting import eventually

pytestmark = pytest.mark.broker

TOKEN = "tok-" + "x" * 28
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def settings_for(tmp_path, mosquitto, printers, **sections):
    cfg = {
        pid: {"host": "127.0.0.1", "port": port, "command_set": "escpos", **extra}
        for pid, (port, extra) in printers.items()
    }
    return make_settings(
        tmp_path,
        mosquitto.port,
        cfg,
        {"T1": next(iter(printers))},
        health={"interval_s": 0.2, "drawer_open_alert_s": 1.0},
        **sections,
    )


def payloads(pos, topic):
    return [json.loads(p) for p, _ in pos.extra_topics.get(topic, []) if p]


async def test_readyz_follows_the_broker_and_status_is_republished(tmp_path, mosquitto):
    async with VirtualPrinterServer() as vp:
        settings = settings_for(tmp_path, mosquitto, {"p1": (vp.port, {})})
        topics = Topics(settings.shop_id)
        async with running_agent(settings) as agent, aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{agent.http_port}"

            async def ready_status():
                async with http.get(f"{url}/readyz") as r:
                    return r.status, await r.json()

            assert (await ready_status())[0] == 200
            await eventually(lambda: agent.prober.published.get("p1"), what="first status")
            mosquitto.kill()
            status, body = await eventually(
                lambda: _when(ready_status(), lambda s: s[0] == 503), what="503"
            )
            assert "not connected to broker" in body["reason"]
            async with http.get(f"{url}/healthz") as r:
                assert r.status == 200
            # Drop the broker's saved retained messages: what a watcher sees after the
            # restart can only come from the agent republishing on reconnect.
            for f in (mosquitto.workdir / "data").iterdir():
                f.unlink()
            mosquitto.start()
            await eventually(
                lambda: _when(ready_status(), lambda s: s[0] == 200),
                timeout=20,
                what="200 after the broker returned",
            )
            async with PosClient(settings.mqtt, topics.acks, client_id="watch") as pos:
                await pos.watch(topics.printer_status("p1"))
                await pos.watch(topics.agent_status)
                await pos.wait_for(
                    lambda: (
                        payloads(pos, topics.printer_status("p1"))
                        and payloads(pos, topics.agent_status)
                    )
                )
                assert payloads(pos, topics.printer_status("p1"))[-1]["online"] is True
                assert payloads(pos, topics.agent_status)[-1]["state"] == "online"


async def _when(coro, check):
    value = await coro
    return value if check(value) else None


async def test_printer_down_and_up_flips_retained_status_only_on_change(tmp_path, mosquitto):
    async with VirtualPrinterServer() as vp:
        settings = settings_for(tmp_path, mosquitto, {"p1": (vp.port, {})})
        topics = Topics(settings.shop_id)
        topic = topics.printer_status("p1")
        async with (
            running_agent(settings) as agent,
            PosClient(settings.mqtt, topics.acks, client_id="watch") as pos,
        ):
            await pos.watch(topic)
            await pos.wait_for(lambda: any(m["online"] for m in payloads(pos, topic)))
            first = agent.prober.probes
            await vp.stop()
            await pos.wait_for(lambda: payloads(pos, topic)[-1]["online"] is False)
            down = payloads(pos, topic)[-1]
            assert down["drawer_open"] is None
            assert down["paper"] is None
            assert "refused" in down["last_error"]
            assert down["host"] == "127.0.0.1"
            await vp.start()
            await pos.wait_for(lambda: payloads(pos, topic)[-1]["online"] is True)
            up = payloads(pos, topic)[-1]
            assert up == {
                **up,
                "paper": "ok",
                "drawer_open": False,
                "cover_open": False,
                "last_error": None,
            }
            assert up["last_seen"] > down["last_seen"]
            # Several probes ran, yet only the three changes were published.
            await eventually(lambda: agent.prober.probes >= first + 8, what="more probes")
            assert [m["online"] for m in payloads(pos, topic)] == [True, False, True]
            # A probe never prints.
            assert vp.printer.printed == 0
            assert vp.pulses == []


async def test_drawer_sensor_closes_the_loop_and_left_open_alert_fires(tmp_path, mosquitto):
    async with VirtualPrinterServer(open_for_s=60.0) as vp:
        settings = settings_for(tmp_path, mosquitto, {"p1": (vp.port, {})})
        topics = Topics(settings.shop_id)
        async with (
            running_agent(settings) as agent,
            PosClient(settings.mqtt, topics.acks, client_id="pos") as pos,
        ):
            await pos.watch(topics.alerts)
            await pos.watch(topics.printer_status("p1"))
            await eventually(lambda: agent.prober.published.get("p1"), what="first probe")
            ev = event("sale", "T1")
            await pos.publish(topics.events, json.dumps(ev).encode())
            [ack] = await pos.wait_ack(ev["event_id"])
            assert ack["status"] == "opened"
            assert ack["drawer_open"] is True
            assert agent.ledger.get(ev["event_id"]).drawer_open is True
            pulse_at = vp.pulses[0].at
            await pos.wait_for(lambda: payloads(pos, topics.alerts), timeout=5)
            [alert] = payloads(pos, topics.alerts)
            assert alert["kind"] == "drawer_left_open"
            assert alert["printer_id"] == "p1"
            assert pulse_at <= alert["since"] <= pulse_at + 1.0
            assert time.time() - alert["since"] >= settings.health.drawer_open_alert_s
            assert payloads(pos, topics.printer_status("p1"))[-1]["drawer_open"] is True


async def test_drawer_closed_after_pulse_is_reported(tmp_path, mosquitto):
    # A drawer that does not spring open (jammed, or wired to the other pin) reads closed.
    async with VirtualPrinterServer(open_for_s=0.0) as vp:
        settings = settings_for(tmp_path, mosquitto, {"p1": (vp.port, {})})
        topics = Topics(settings.shop_id)
        async with (
            running_agent(settings),
            PosClient(settings.mqtt, topics.acks, client_id="pos") as pos,
        ):
            ev = event("sale", "T1")
            await pos.publish(topics.events, json.dumps(ev).encode())
            [ack] = await pos.wait_ack(ev["event_id"])
            assert (ack["status"], ack["drawer_open"]) == ("opened", False)


async def test_metrics_parse_and_count(tmp_path, mosquitto):
    async with VirtualPrinterServer() as vp:
        settings = settings_for(tmp_path, mosquitto, {"p1": (vp.port, {})})
        topics = Topics(settings.shop_id)
        async with (
            running_agent(settings) as agent,
            aiohttp.ClientSession() as http,
            PosClient(settings.mqtt, topics.acks, client_id="pos") as pos,
        ):
            ev = event("sale", "T1")
            await pos.publish(topics.events, json.dumps(ev).encode())
            await pos.wait_ack(ev["event_id"])
            await pos.publish(topics.events, b"not json")
            await pos.wait_ack(None)
            await eventually(lambda: agent.prober.published.get("p1"), what="a probe")
            async with http.get(f"http://127.0.0.1:{agent.http_port}/metrics") as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/plain")
                text = await r.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("drawer_agent_")
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert samples[("drawer_agent_events_total", (("status", "opened"), ("type", "sale")))] == 1
    assert (
        samples[("drawer_agent_events_total", (("status", "rejected"), ("type", "unknown")))] == 1
    )
    assert samples[("drawer_agent_pulses_total", (("kind", "buffered"), ("printer", "p1")))] == 1
    assert samples[("drawer_agent_dispatch_latency_seconds_count", (("printer", "p1"),))] == 1
    assert samples[("drawer_agent_printer_up", (("printer", "p1"),))] == 1
    assert samples[("drawer_agent_broker_connected", ())] == 1
    assert samples[("drawer_agent_ledger_events", ())] >= 1


def test_each_agent_has_its_own_registry():
    a, b = Metrics(), Metrics()
    a.printer_up.labels("p1").set(1)
    assert b"drawer_agent_printer_up{" in a.render()
    assert b"drawer_agent_printer_up{" not in b.render()


async def test_kick_needs_the_token_and_shows_in_the_audit_trail(tmp_path, mosquitto):
    async with VirtualPrinterServer() as vp:
        settings = settings_for(tmp_path, mosquitto, {"p1": (vp.port, {})}, http={"token": TOKEN})
        async with running_agent(settings) as agent, aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{agent.http_port}"
            for method, path in (
                ("POST", "/api/printers/p1/kick"),
                ("GET", "/api/events"),
                ("GET", "/api/config"),
                ("GET", "/api/printers"),
            ):
                async with http.request(method, url + path) as r:
                    assert r.status == 401, path
                async with http.request(
                    method, url + path, headers={"Authorization": f"Bearer {TOKEN}x"}
                ) as r:
                    assert r.status == 401, path
            assert vp.pulses == []
            async with http.get(f"{url}/healthz") as r:
                assert r.status == 200
            async with http.get(f"{url}/metrics") as r:
                assert r.status == 200
            async with http.post(
                f"{url}/api/printers/p1/kick", data=b"x" * 10_000, headers=AUTH
            ) as r:
                assert r.status == 413
            async with http.post(f"{url}/api/printers/nope/kick", headers=AUTH) as r:
                assert r.status == 404
            async with http.post(f"{url}/api/printers/p1/kick", headers=AUTH) as r:
                assert r.status == 200
                answer = await r.json()
                event_id = answer["event_id"]
            # The answer waits for the outcome, with the sensor reading (PROTOCOLS §2.1 bit 2).
            assert (answer["status"], answer["drawer_open"]) == ("opened", True)  # it sprang open
            [pulse] = await vp.wait_for_pulses(1)
            async with http.post(
                f"{url}/api/printers/p1/kick", json={"drawer": 2}, headers=AUTH
            ) as r:
                assert r.status == 200
                assert (await r.json())["status"] == "opened"
            [_, other] = await vp.wait_for_pulses(2)
            assert other.drawer == 2  # a trial of the other connector, not saved
            assert (pulse.drawer, pulse.realtime) == (1, False)

            async def kicked():
                async with http.get(f"{url}/api/events?limit=10", headers=AUTH) as r:
                    rows = (await r.json())["events"]
                return [
                    row for row in rows if row["event_id"] == event_id and row["state"] == "final"
                ]

            [row] = await eventually(kicked, what="the kick in /api/events")
            assert (row["source"], row["type"], row["status"]) == (
                "manual",
                "manual_kick",
                "opened",
            )
            assert row["printer_id"] == "p1"
            async with http.get(f"{url}/api/events?since={time.time() + 60}", headers=AUTH) as r:
                assert (await r.json())["events"] == []
            async with http.get(f"{url}/api/events?limit=0", headers=AUTH) as r:
                assert r.status == 400
            async with http.get(f"{url}/api/config", headers=AUTH) as r:
                cfg = await r.json()
            assert cfg["http"]["token"] == "***"
            assert TOKEN not in json.dumps(cfg)
            async with http.get(f"{url}/api/printers", headers=AUTH) as r:
                [p1] = (await r.json())["printers"]
            assert p1["printer_id"] == "p1"
            assert p1["health"]["online"] is True


async def test_api_refused_without_token_unless_loopback(tmp_path, mosquitto):
    async with VirtualPrinterServer() as vp:
        settings = settings_for(
            tmp_path, mosquitto, {"p1": (vp.port, {})}, http={"listen": "0.0.0.0:0"}
        )
        async with running_agent(settings) as agent, aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{agent.http_port}"
            async with http.post(f"{url}/api/printers/p1/kick") as r:
                assert r.status == 403
            async with http.get(f"{url}/readyz") as r:
                assert r.status == 200
            assert vp.pulses == []


async def test_paper_out_still_pulses_real_time_where_supported(tmp_path, mosquitto):
    async with VirtualPrinterServer(name="rt") as rt, VirtualPrinterServer(name="plain") as plain:
        for vp in (rt, plain):
            vp.printer.paper = RollPaper.OUT
            vp.printer.online = False
        settings = settings_for(
            tmp_path,
            mosquitto,
            {
                "rt": (rt.port, {"realtime_pulse": True}),
                "plain": (plain.port, {"realtime_pulse": False}),
            },
        )
        async with running_agent(settings) as agent, aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{agent.http_port}"
            await eventually(
                lambda: all(agent.prober.health[p].paper is Paper.OUT for p in ("rt", "plain")),
                what="paper out seen",
            )
            for pid in ("rt", "plain"):
                async with http.post(f"{url}/api/printers/{pid}/kick") as r:
                    assert r.status == 200
            [rt_pulse] = await rt.wait_for_pulses(1)
            assert rt_pulse.realtime is True  # DLE DC4 1 m t (PROTOCOLS §1.2)
            # The plain printer (no DLE DC4) gets nothing: an ESC p would wait in its buffer
            # while it is offline and fire late (issue 9, tests/integration/test_precheck_agent).
            assert plain.pulses == [] and plain.printer.kicks_received == 0
            status = json.loads(await _retained(settings, "rt"))
            assert (status["online"], status["paper"]) == (False, "out")


async def _retained(settings, pid):
    topics = Topics(settings.shop_id)
    async with PosClient(settings.mqtt, topics.acks, client_id=f"r-{uuid.uuid4().hex[:6]}") as pos:
        await pos.watch(topics.printer_status(pid))
        await pos.wait_for(lambda: pos.extra_topics[topics.printer_status(pid)])
        return pos.extra_topics[topics.printer_status(pid)][-1][0]


async def test_star_probe_reads_the_asb_and_prints_nothing():

    async with VirtualPrinterServer(command_set=CommandSet.STAR_LINE, open_for_s=30) as vp:
        closed = await query_status(CommandSet.STAR_LINE, "127.0.0.1", vp.port, timeout=1)
        # Star's SDK default: compulsion-switch bit set means open (CashDrawerOpenActiveHigh).
        assert (closed.online, closed.paper, closed.drawer_open("high")) == (True, Paper.OK, False)
        await send(
            "127.0.0.1",
            vp.port,
            bytes((0x1B, 0x07, 10, 50, 0x07)),
            connect_timeout=1,
            write_timeout=1,
        )
        await vp.wait_for_pulses(1)
        opened = await eventually(lambda: _probe_open(vp.port), what="Star drawer open")
        assert opened.drawer_open("high") is True
        assert vp.printer.printed == 0


async def _probe_open(port):

    try:
        status = await query_status(CommandSet.STAR_LINE, "127.0.0.1", port, timeout=1)
    except PrinterUnreachable:  # the single session may still be closing
        return None
    return status if status.drawer_open("high") else None
