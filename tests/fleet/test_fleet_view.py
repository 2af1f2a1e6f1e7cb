"""The fleet view against a real mosquitto and real agents with virtual printers."""

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest

from agent.core.topics import Topics
from agent.devtools.emulator import VirtualPrinterServer
from agent.io.mqtt_link import PosClient
from tests.conftest import free_port, make_settings, running_agent, wait_port
from tests.fleet.fleet_helpers import fleet_options, running_fleet, sample, wait_scrape

pytestmark = pytest.mark.broker


def shop_settings(tmp_path, mosquitto, shop, printers):
    return make_settings(
        tmp_path / shop,
        mosquitto.port,
        {
            pid: {"host": "127.0.0.1", "port": vp.port, "command_set": "escpos"}
            for pid, vp in printers.items()
        },
        {"T1": next(iter(printers))},
        shop_id=shop,
        health={"interval_s": 0.5},
    )


async def test_every_shop_and_printer_is_one_series_and_follows_the_agents(mosquitto, tmp_path):
    a, b = f"a{uuid.uuid4().hex[:6]}", f"b{uuid.uuid4().hex[:6]}"
    (tmp_path / a).mkdir()
    (tmp_path / b).mkdir()
    async with (
        VirtualPrinterServer(name="front") as front,
        VirtualPrinterServer(name="back") as back,
        VirtualPrinterServer(name="only") as only,
        running_agent(shop_settings(tmp_path, mosquitto, a, {"front": front, "back": back})),
    ):
        agent_b = running_agent(shop_settings(tmp_path, mosquitto, b, {"only": only}))
        await agent_b.__aenter__()
        try:
            async with running_fleet(fleet_options([mosquitto.url])) as view:
                url = view.metrics_url
                both_up = await wait_scrape(
                    url,
                    lambda s: (
                        sample(s, "drawer_fleet_agent_up", shop=a) == 1
                        and sample(s, "drawer_fleet_agent_up", shop=b) == 1
                        and sample(s, "drawer_fleet_printer_online", shop=a, printer="back") == 1
                    ),
                )
                await only.stop()  # shop b's printer goes away
                offline = await wait_scrape(
                    url,
                    lambda s: sample(s, "drawer_fleet_printer_online", shop=b, printer="only") == 0,
                )
                await agent_b.__aexit__(None, None, None)
                agent_b = None
                b_down = await wait_scrape(
                    url, lambda s: sample(s, "drawer_fleet_agent_up", shop=b) == 0
                )
                async with PosClient(view.options.mqtt, Topics(a).acks, client_id=f"p-{a}") as pos:
                    alert = {"kind": "drawer_left_open", "printer_id": "front", "since": 1.0}
                    await pos.publish(Topics(a).alerts, json.dumps(alert).encode())
                    await pos.publish(Topics(a).agent_status, b"garbage")  # not retained
                alerted = await wait_scrape(
                    url,
                    lambda s: (
                        sample(s, "drawer_fleet_alerts_total", shop=a, kind="drawer_left_open") == 1
                    ),
                )
        finally:
            if agent_b is not None:
                await agent_b.__aexit__(None, None, None)
    assert (
        sample(
            both_up,
            "drawer_fleet_agent_info",
            shop=a,
            version="0.1.0",
            broker=f"127.0.0.1:{mosquitto.port}",
        )
        == 1
    )
    assert sample(both_up, "drawer_fleet_printer_online", shop=a, printer="front") == 1
    assert sample(both_up, "drawer_fleet_printer_paper", shop=a, printer="front", state="ok") == 1
    assert sample(both_up, "drawer_fleet_printer_drawer_open", shop=a, printer="front") == 0
    assert (
        sample(both_up, "drawer_fleet_printer_last_seen_timestamp_seconds", shop=a, printer="front")
        > 0
    )
    assert sample(both_up, "drawer_fleet_last_seen_timestamp_seconds", shop=b) > 0
    # One series per shop and printer: never a second agent_up for shop a.
    assert len([k for k in both_up if k[0] == "drawer_fleet_agent_up" and ("shop", a) in k[1]]) == 1
    assert sample(offline, "drawer_fleet_agent_up", shop=b) == 1
    assert sample(b_down, "drawer_fleet_printer_online", shop=a, printer="front") == 1
    assert sample(alerted, "drawer_fleet_agent_up", shop=a) == 1  # garbage changed nothing
    assert sample(alerted, "drawer_fleet_unusable_messages_total") >= 1


async def test_cli_prints_the_table_and_serves_metrics(mosquitto, tmp_path):
    shop = f"c{uuid.uuid4().hex[:6]}"
    (tmp_path / shop).mkdir()
    port = free_port()
    async with (
        VirtualPrinterServer(name="front") as front,
        running_agent(shop_settings(tmp_path, mosquitto, shop, {"front": front})),
    ):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent",
            "fleet",
            "--mqtt",
            mosquitto.url,
            "--listen",
            f"127.0.0.1:{port}",
            "--interval",
            "0.2",
            "--shop",
            "expected-shop",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if not k.startswith("DRAWER_AGENT_")},
        )
        lines: list[str] = []
        try:
            async with asyncio.timeout(20):
                while not any(line.startswith(shop) and "online" in line for line in lines):
                    lines.append((await proc.stdout.readline()).decode())
            await asyncio.to_thread(wait_port, port)
            samples = await wait_scrape(
                f"http://127.0.0.1:{port}/metrics",
                lambda s: sample(s, "drawer_fleet_agent_up", shop=shop) == 1,
            )
        finally:
            proc.terminate()
            code = await asyncio.wait_for(proc.wait(), 10)
    row = next(line for line in lines if line.startswith(shop)).split()
    assert row[:5] == [shop, "up", "0.1.0", "front", "online"]
    assert any(line.split()[:2] == ["expected-shop", "DOWN"] for line in lines)
    assert sample(samples, "drawer_fleet_agent_up", shop="expected-shop") == 0
    assert code == 0


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--mqtt", "http://x"], "--mqtt"),
        (["--mqtt", "mqtt://broker.example"], "--mqtt"),
        (["--mqtt", "mqtt://127.0.0.1", "--listen", "nope"], "--listen"),
        (["--mqtt", "mqtt://127.0.0.1", "--shop", "a/b"], "--shop"),
        (["--mqtt", "mqtt://127.0.0.1", "--interval", "0"], "--interval"),
    ],
)
def test_bad_fleet_options_exit_2_naming_the_flag(args, flag):
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "fleet", *args], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2, proc.stderr
    assert f"configuration error: {flag}" in proc.stderr
