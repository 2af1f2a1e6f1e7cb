"""The agent as a process: SIGTERM, restart recovery, and the CLI commands."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.core.settings import validate
from agent.core.topics import Topics
from agent.devtools.emulator import VirtualPrinterServer
from agent.io.ledger import Ledger
from agent.io.mqtt_link import PosClient
from tests.conftest import make_settings, running_agent
from tests.waiting import eventually

pytestmark = pytest.mark.broker
TOPICS = Topics("t")
ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, broker_port: int, printer_port: int, db: Path) -> Path:
    path.write_text(
        f'shop_id = "t"\n[mqtt]\nurl = "mqtt://127.0.0.1:{broker_port}"\n'
        f'[printers.front]\nhost = "127.0.0.1"\nport = {printer_port}\ncommand_set = "escpos"\n'
        f'[terminals]\nT1 = "front"\n[http]\nlisten = "127.0.0.1:0"\n'
        f'[state]\npath = "{db}"\n'
    )
    return path


def cli(*args, env=None, timeout=30):
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def event(event_id=None):
    return {
        "event_id": event_id or f"e-{uuid.uuid4().hex[:8]}",
        "type": "sale",
        "terminal_id": "T1",
        "occurred_at": datetime.now(UTC).isoformat(),
    }


async def test_sigterm_drains_and_exits_zero_within_five_seconds(mosquitto, tmp_path):
    async with VirtualPrinterServer() as vp:
        config = write_config(tmp_path / "a.toml", mosquitto.port, vp.port, tmp_path / "l.db")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent",
            "run",
            "--config",
            str(config),
            cwd=ROOT,
            stderr=asyncio.subprocess.PIPE,
        )
        mqtt = validate({"shop_id": "t", "mqtt": {"url": mosquitto.url}}, lambda p: b"").mqtt
        async with PosClient(mqtt, TOPICS.acks, client_id="pos-sig") as pos:
            await pos.watch(TOPICS.agent_status)
            await pos.wait_for(
                lambda: any(b'"online"' in p for p, _ in pos.extra_topics[TOPICS.agent_status]),
                timeout=15,
            )
            ev = event()
            await pos.publish(TOPICS.events, json.dumps(ev).encode())
            assert (await pos.wait_ack(ev["event_id"]))[0]["status"] == "opened"
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 10)
            await pos.wait_for(
                lambda: any(b'"offline"' in p for p, _ in pos.extra_topics[TOPICS.agent_status])
            )
    assert code == 0
    assert len(vp.pulses) == 1


async def test_restart_resumes_untried_events_and_never_resends_started_ones(mosquitto, tmp_path):
    db = tmp_path / "ledger.db"
    now = time.time()
    with Ledger.open(db) as ledger:  # what a crashed run left behind
        for event_id in ("untried", "mid-write", "too-late"):
            ledger.claim(
                event_id=event_id,
                type_="sale",
                terminal_id="T1",
                printer_id="front",
                occurred_at=now,
                received_at=now,
                deadline=now - 1 if event_id == "too-late" else now + 20,
            )
        ledger.mark_sending("mid-write", 1)
    async with VirtualPrinterServer() as vp:
        settings = make_settings(
            tmp_path,
            mosquitto.port,
            {"front": {"host": "127.0.0.1", "port": vp.port, "command_set": "escpos"}},
            {"T1": "front"},
        )
        mqtt = settings.mqtt
        async with (
            PosClient(mqtt, TOPICS.acks, client_id="pos-rec") as pos,
            running_agent(settings) as agent,
        ):
            acks = {e: (await pos.wait_ack(e))[0] for e in ("untried", "mid-write", "too-late")}
            # The agent marks an ack sent once the broker took it.
            await eventually(lambda: not agent.ledger.unacked(), 5, "the acks marked sent")
            rows = {e: agent.ledger.get(e) for e in acks}
        assert len(vp.pulses) == 1
    assert acks["untried"]["status"] == "opened"
    assert acks["mid-write"]["status"] == "failed"
    assert "interrupted" in acks["mid-write"]["detail"]
    assert acks["too-late"]["status"] == "expired"
    assert all(r.state == "final" and r.acked for r in rows.values())


def test_check_config_names_the_bad_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('shop_id = "s"\n[mqtt]\nurl = "mqtt://127.0.0.1"\nkeepalive = 3\n')
    result = cli("check-config", str(bad))
    assert result.returncode == 2
    assert "mqtt.keepalive: unknown key" in result.stderr
    good = tmp_path / "good.toml"
    good.write_text('shop_id = "s"\n[mqtt]\npassword = "hunter2hunter2"\n')
    result = cli("check-config", str(good))
    assert result.returncode == 0
    assert json.loads(result.stdout)["mqtt"]["password"] == "***"
    assert "hunter2" not in result.stdout


def test_run_with_unknown_env_key_exits_2(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('shop_id = "s"\n')
    result = cli("run", "--config", str(good), env={"DRAWER_AGENT_HTTP__LISTN": "x"})
    assert result.returncode == 2
    assert "http.listn (from DRAWER_AGENT_HTTP__LISTN): unknown key" in result.stderr


def test_models_json_lists_the_catalogue():
    result = cli("models", "--json")
    assert result.returncode == 0
    models = {m["id"]: m for m in json.loads(result.stdout)}
    assert models["star-tsp100iii"]["command_set"] == "star-graphic"
    assert models["star-tsp100iii"]["raster_only"] is True
    assert models["epson-tm-t88v"]["profile"]["vendor"] == "Epson"
    assert models["star-mpop"]["connections"] == ["usb", "bluetooth"]
    assert models["epson-tm-m30"]["connections"] == ["lan", "wifi", "usb", "bluetooth"]


def test_models_table_shows_the_connections():
    result = cli("models")
    assert result.returncode == 0
    header, *rows = result.stdout.splitlines()
    assert "connections" in header
    [tsp143iiiu] = [r for r in rows if r.startswith("star-tsp143iiiu ")]
    assert " usb " in f" {tsp143iiiu} " and "raster-only" in tsp143iiiu


async def test_kick_by_host_pulses_the_virtual_printer():
    async with VirtualPrinterServer(
        command_set=__import__("agent.core.commands").core.commands.CommandSet.STAR_LINE
    ) as vp:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent",
            "kick",
            "--host",
            "127.0.0.1",
            "--port",
            str(vp.port),
            "--model",
            "star-tsp650ii",
            "--drawer",
            "2",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        pulses = await vp.wait_for_pulses(1)
    assert proc.returncode == 0
    assert b"1a" in out
    assert pulses[0].drawer == 2


def test_kick_unreachable_exits_1():
    result = cli(
        "kick", "--host", "127.0.0.1", "--port", "1", "--command-set", "escpos", "--timeout", "0.3"
    )
    assert result.returncode == 1
    assert "refused" in result.stderr


async def test_publish_prints_the_ack_and_kick_by_id_is_audited(mosquitto, tmp_path):
    async with VirtualPrinterServer() as vp:
        config = write_config(tmp_path / "a.toml", mosquitto.port, vp.port, tmp_path / "ledger.db")
        settings = make_settings(
            tmp_path,
            mosquitto.port,
            {"front": {"host": "127.0.0.1", "port": vp.port, "command_set": "escpos"}},
            {"T1": "front"},
        )
        async with running_agent(settings):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "agent",
                "publish",
                "--type",
                "refund",
                "--terminal",
                "T1",
                "--config",
                str(config),
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await proc.communicate()
            ack = json.loads(out)
            kick = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agent", "kick", "front", "--config", str(config), cwd=ROOT
            )
            assert await kick.wait() == 0
        assert proc.returncode == 0
        assert ack["status"] == "opened" and ack["printer_id"] == "front"
        assert len(vp.pulses) == 2
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        sources = sorted(r.source for r in ledger.recent(10))
    assert sources == ["cli", "mqtt"]


def test_demo_runs_end_to_end():
    result = cli("demo", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo OK" in result.stdout
    for status in ("opened", "duplicate", "expired", "unmapped", "rejected"):
        assert status in result.stdout
