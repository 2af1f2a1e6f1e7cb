"""The agent as a real process: kill -9 leaves the last will; no secret reaches the logs."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from agent.core.settings import MqttSettings
from agent.core.topics import Topics
from agent.devtools.emulator import VirtualPrinterServer
from agent.io.mqtt_link import PosClient
from tests.conftest import free_port
from tests.waiting import eventually

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "http-token-Zq8v1LmN3pR7sT0w"
PASSWORD = "broker-pass-Kc4Jd9Xh2Fy6"


def write_config(tmp_path, broker_port, printer_port, http_port):
    (tmp_path / "mqtt.pass").write_text(PASSWORD + "\n")
    path = tmp_path / "agent.toml"
    path.write_text(f"""
shop_id = "proc"
log_level = "DEBUG"

[mqtt]
url = "mqtt://127.0.0.1:{broker_port}"
username = "shop-proc"
password_file = "mqtt.pass"
keepalive_s = 5

[http]
listen = "127.0.0.1:{http_port}"
token = "{TOKEN}"

[state]
path = "{tmp_path / "ledger.db"}"

[health]
interval_s = 0.2

[printers.p1]
host = "127.0.0.1"
port = {printer_port}
command_set = "escpos"

[terminals]
T1 = "p1"
""")
    return path


async def test_kill_9_leaves_offline_will_and_logs_hold_no_secret(tmp_path, mosquitto):
    topics = Topics("proc")
    watcher = MqttSettings(url=mosquitto.url, client_id="w", protocol=5)
    http_port = free_port()
    async with VirtualPrinterServer() as vp:
        config = write_config(tmp_path, mosquitto.port, vp.port, http_port)
        log_path = tmp_path / "agent.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "agent",
                    "--log-format",
                    "json",
                    "run",
                    "--config",
                    str(config),
                ],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        try:
            async with PosClient(watcher, topics.acks, client_id="watch") as pos:
                await pos.watch(topics.agent_status)
                await pos.watch(topics.printer_status("p1"))

                def states():
                    return [
                        json.loads(p)["state"] for p, _ in pos.extra_topics[topics.agent_status]
                    ]

                await pos.wait_for(lambda: "online" in states(), timeout=15)
                await pos.wait_for(lambda: pos.extra_topics[topics.printer_status("p1")])
                # A token-carrying request and a pulse, so the logs have had the chance.
                async with aiohttp.ClientSession() as http:
                    async with http.post(
                        f"http://127.0.0.1:{http_port}/api/printers/p1/kick",
                        headers={"Authorization": f"Bearer {TOKEN}"},
                    ) as r:
                        assert r.status == 200
                        event_id = (await r.json())["event_id"]
                    await vp.wait_for_pulses(1)
                    await eventually(lambda: _logged(log_path, event_id), 10, "the kick's log line")
                proc.send_signal(signal.SIGKILL)
                proc.wait(5)
                await pos.wait_for(lambda: states()[-1] == "offline", timeout=10)
            # A newcomer gets the retained last will.
            async with PosClient(watcher, topics.acks, client_id="late") as late:
                await late.watch(topics.agent_status)
                await late.wait_for(lambda: late.extra_topics[topics.agent_status])
                payload, retained = late.extra_topics[topics.agent_status][-1]
                assert json.loads(payload) == {"state": "offline"}
                assert retained
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    [kick] = [x for x in lines if x.get("event_id") == event_id]
    # One structured line per event (issue 4 item 5), with the sensor read in it.
    assert kick["status"] == "opened"
    assert kick["printer_id"] == "p1"
    assert kick["attempts"] >= 1
    assert kick["latency_ms"] is not None
    assert kick["drawer_open"] is True
    assert TOKEN not in text
    assert PASSWORD not in text
    assert TOKEN[5:15] not in text
    assert PASSWORD[5:15] not in text


def _logged(path, event_id):
    return any(
        json.loads(line).get("event_id") == event_id
        for line in path.read_text().splitlines()
        if line.startswith("{")
    )
