"""`check-config` and `GET /api/config` show the effective mapping and each entry's origin;
check-config reads the agent's SQLite file read-only and never creates it."""

import json
import time

import aiohttp
import pytest

from agent.core.mapping import Actor
from agent.core.settings import validate
from agent.io.mapping_store import LiveMapping, MappingStore
from tests.conftest import make_settings, running_agent
from tests.integration.test_lifecycle import cli

TOKEN = "config-mapping-token-0123456789"
CONSOLE = Actor("console", "installer")


def write_config(tmp_path):
    db = tmp_path / "state" / "agent.db"
    config = tmp_path / "agent.toml"
    config.write_text(
        'shop_id = "s"\n[state]\npath = "' + str(db) + '"\n'
        '[printers.front]\nhost = "127.0.0.1"\nmodel = "epson-tm-t20iii"\n'
        '[printers.back]\nhost = "127.0.0.1"\nport = 9101\nmodel = "star-tsp650ii"\n'
        '[terminals]\nT1 = "front"\n'
    )
    return config, db


def test_check_config_shows_file_origins_and_never_creates_the_ledger(tmp_path):
    config, db = write_config(tmp_path)
    result = cli("check-config", str(config))
    assert result.returncode == 0, result.stderr
    mapping = json.loads(result.stdout)["mapping"]
    assert mapping["terminals"]["T1"]["printer_id"] == "front"
    assert mapping["terminals"]["T1"]["origin"] == "file"
    assert mapping["revision"] == 0
    assert not db.exists() and not db.parent.exists()


def test_check_config_shows_a_stored_override_read_only(tmp_path):
    config, db = write_config(tmp_path)
    settings = validate(
        {
            "shop_id": "s",
            "state": {"path": str(db)},
            "printers": {
                "front": {"host": "127.0.0.1", "model": "epson-tm-t20iii"},
                "back": {"host": "127.0.0.1", "port": 9101, "model": "star-tsp650ii"},
            },
            "terminals": {"T1": "front"},
        },
        lambda p: b"",
    )
    with MappingStore.open(db) as store:
        live = LiveMapping.load(store, settings.printers, settings.terminals)
        live.apply(lambda m: m.set_terminal("T1", "back", actor=CONSOLE, at=time.time()))
    before = db.stat().st_mtime_ns
    result = cli("check-config", str(config))
    assert result.returncode == 0, result.stderr
    t1 = json.loads(result.stdout)["mapping"]["terminals"]["T1"]
    assert (t1["printer_id"], t1["origin"], t1["overrides_file"]) == ("back", "console", True)
    assert db.stat().st_mtime_ns == before


def test_check_config_on_a_file_without_mapping_tables_shows_the_file_layer(tmp_path):
    config, db = write_config(tmp_path)
    db.parent.mkdir()
    db.write_bytes(b"")  # an empty file: SQLite sees no tables
    result = cli("check-config", str(config))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["mapping"]["terminals"]["T1"]["origin"] == "file"
    assert db.read_bytes() == b""


@pytest.mark.broker
async def test_api_config_includes_the_live_mapping(mosquitto, tmp_path, printers):
    front, back = printers
    settings = make_settings(
        tmp_path,
        mosquitto.port,
        {
            "front": {"host": "127.0.0.1", "port": front.port, "model": "epson-tm-t20iii"},
            "back": {"host": "127.0.0.1", "port": back.port, "model": "star-tsp650ii"},
        },
        {"T1": "front"},
        http={"token": TOKEN},
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with running_agent(settings) as agent, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{agent.http_port}/api/config"
        async with http.get(url, headers=auth) as r:
            before = (await r.json())["mapping"]["terminals"]["T1"]
        agent.mapping.apply(lambda m: m.set_terminal("T1", "back", actor=CONSOLE, at=time.time()))
        async with http.get(url, headers=auth) as r:
            cfg = await r.json()
    assert (before["printer_id"], before["origin"]) == ("front", "file")
    t1 = cfg["mapping"]["terminals"]["T1"]
    assert (t1["printer_id"], t1["origin"]) == ("back", "console")
    assert cfg["mapping"]["revision"] == 1
    assert TOKEN not in json.dumps(cfg)
