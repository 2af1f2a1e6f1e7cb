"""The mapping REST API on aiohttp's test server over the real-store backend: the contract's
names and shapes, 422 naming the key, 409 while a till uses a printer, compare-and-set,
bearer token or session + CSRF, and changes that survive a restart."""

from __future__ import annotations

import pytest

from agent.io.console import CSRF_HEADER, ConsoleOptions, make_console_app
from agent.io.mapping_store import MappingStore
from tests.console.conftest import HOSTS, TOKEN, shop_settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}
BAR = {"host": HOSTS[1], "model": "epson-tm-m30", "name": "Bar"}


async def test_put_get_delete_a_printer_and_a_till(shop):
    c = shop.client
    r = await c.put("/api/printers/bar", json={**BAR, "port": shop.port}, headers=AUTH)
    assert r.status == 201, await r.text()
    body = await r.json()
    assert body["printer"]["origin"] == "api"
    assert body["change"]["new"]["host"] == HOSTS[1]
    assert r.headers["ETag"] == '"1"'

    r = await c.put("/api/terminals/T2", json={"printer_id": "bar"}, headers=AUTH)
    assert r.status == 201
    r = await c.get("/api/terminals", headers=AUTH)
    assert await r.json() == {"T1": "front", "T2": "bar"}

    r = await c.get("/api/printers", headers=AUTH)
    listed = {p["printer_id"]: p for p in (await r.json())["printers"]}
    assert listed["front"]["origin"] == "file"
    assert listed["bar"]["tills"] == ["T2"]
    assert listed["bar"]["settings"]["command_set"] == "escpos"

    r = await c.delete("/api/printers/bar", headers=AUTH)
    assert r.status == 409
    body = await r.json()
    assert body["tills"] == ["T2"]
    assert "T2" in body["error"]

    assert (await c.delete("/api/terminals/T2", headers=AUTH)).status == 200
    assert (await c.delete("/api/printers/bar", headers=AUTH)).status == 200
    assert (await c.delete("/api/printers/bar", headers=AUTH)).status == 404


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"host": "h", "model": "epson-tm-t20iii", "drawer": 3}, "drawer"),
        ({"host": "h", "model": "nope"}, "model"),
        ({"host": "h", "command_set": "escpos", "colour": "red"}, "colour"),
        ({"host": "h", "command_set": "escpos", "port": "x"}, "port"),
        ({"host": "h"}, "printers.p"),
        (["not", "a", "table"], None),
    ],
)
async def test_a_bad_printer_table_is_422_naming_the_key(shop, table, key):
    r = await shop.client.put("/api/printers/p", json=table, headers=AUTH)
    assert r.status == 422
    body = await r.json()
    assert body.get("key") == key
    assert body["error"]


async def test_bad_bodies_are_clear_answers(shop):
    c = shop.client
    r = await c.put("/api/printers/p", data=b"{not json", headers=AUTH)
    assert r.status == 400
    r = await c.put("/api/terminals/T1", json={"printer": "front"}, headers=AUTH)
    assert (r.status, (await r.json())["key"]) == (422, "printer_id")
    r = await c.put("/api/terminals/T1", json={"printer_id": "ghost"}, headers=AUTH)
    assert (r.status, (await r.json())["key"]) == (422, "printer_id")
    r = await c.put("/api/printers/p", data=b"x" * 20_000, headers=AUTH)
    assert r.status == 413


async def test_compare_and_set_with_if_match(shop):
    c = shop.client
    r = await c.put(
        "/api/terminals/T1", json={"printer_id": "front"}, headers={**AUTH, "If-Match": '"0"'}
    )
    assert r.status == 200
    etag = r.headers["ETag"]
    assert etag == '"1"'
    stale = await c.put(
        "/api/terminals/T1", json={"printer_id": "front"}, headers={**AUTH, "If-Match": '"0"'}
    )
    assert stale.status == 409
    assert (await stale.json())["code"] == "conflict"
    fresh = await c.put(
        "/api/terminals/T1", json={"printer_id": "front"}, headers={**AUTH, "If-Match": etag}
    )
    assert fresh.status == 200
    created = await c.put(
        "/api/terminals/T9", json={"printer_id": "front"}, headers={**AUTH, "If-None-Match": "*"}
    )
    assert created.status == 201
    again = await c.put(
        "/api/terminals/T9", json={"printer_id": "front"}, headers={**AUTH, "If-None-Match": "*"}
    )
    assert again.status == 409
    bad = await c.put(
        "/api/terminals/T9", json={"printer_id": "front"}, headers={**AUTH, "If-Match": "abc"}
    )
    assert bad.status == 400


async def test_override_then_back_to_the_files_value(shop):
    c = shop.client
    r = await c.put(
        "/api/printers/front",
        json={"host": HOSTS[1], "model": "epson-tm-t20iii", "drawer": 2},
        headers=AUTH,
    )
    assert r.status == 200
    m = await (await c.get("/api/mapping", headers=AUTH)).json()
    assert m["printers"]["front"]["origin"] == "api"
    assert m["printers"]["front"]["overrides_file"] is True
    r = await c.delete("/api/printers/front/override", headers=AUTH)
    assert r.status == 200
    m = await (await c.get("/api/mapping", headers=AUTH)).json()
    assert m["printers"]["front"]["origin"] == "file"
    assert m["printers"]["front"]["settings"]["drawer"] == 1
    changes = (await (await c.get("/api/changes", headers=AUTH)).json())["changes"]
    assert [ch["action"] for ch in changes] == ["revert", "set"]
    assert changes[0]["who"] == "token"


async def test_the_mapping_survives_a_restart(shop, tmp_path):
    c = shop.client
    await c.put("/api/printers/bar", json=BAR, headers=AUTH)
    await c.put("/api/terminals/T1", json={"printer_id": "bar"}, headers=AUTH)
    shop.backend.live.store.close()
    with MappingStore.open(shop.db) as store:
        again = store.load(shop.backend.settings.printers, shop.backend.settings.terminals)
    assert again.terminal_map() == {"T1": "bar"}
    assert again.printers["bar"].origin == "api"
    shop.backend.live.store = MappingStore.open(shop.db)  # so the fixture closes an open store


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/printers"),
        ("PUT", "/api/printers/x"),
        ("DELETE", "/api/printers/front"),
        ("GET", "/api/terminals"),
        ("PUT", "/api/terminals/T1"),
        ("DELETE", "/api/terminals/T1"),
        ("GET", "/api/discovery"),
        ("POST", "/api/discovery"),
        ("POST", "/api/printers/front/kick"),
        ("GET", "/api/mapping"),
    ],
)
async def test_every_endpoint_needs_the_token_or_a_session(shop, method, path):
    r = await shop.client.request(method, path)
    assert r.status == 401
    r = await shop.client.request(
        method, path, headers={"Authorization": "Bearer wrong-token-xxxxxxxx"}
    )
    assert r.status == 401


async def test_a_session_works_for_reads_and_needs_csrf_for_changes(shop):
    csrf = await shop.login()
    c = shop.client
    assert (await c.get("/api/terminals")).status == 200
    r = await c.put("/api/terminals/T5", json={"printer_id": "front"})
    assert r.status == 403
    r = await c.put(
        "/api/terminals/T5", json={"printer_id": "front"}, headers={CSRF_HEADER: "nope"}
    )
    assert r.status == 403
    r = await c.put("/api/terminals/T5", json={"printer_id": "front"}, headers={CSRF_HEADER: csrf})
    assert r.status == 201
    assert (await r.json())["change"]["who"] == "console:token"
    assert (await r.json())["change"]["origin"] == "console"


async def test_without_a_token_the_api_answers_only_on_loopback(tmp_path, shop):
    settings = shop_settings(tmp_path, shop.port)
    for loopback, expected in ((True, 200), (False, 403)):
        from aiohttp.test_utils import TestClient, TestServer

        app = make_console_app(shop.backend, ConsoleOptions(None, loopback=loopback))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            r = await client.get("/api/terminals")
            assert r.status == expected
    assert settings.shop_id


async def test_kick_returns_the_sensor_reading_and_tries_a_variant(shop):
    c = shop.client
    r = await c.post("/api/printers/front/kick", headers=AUTH)
    assert r.status == 200, await r.text()
    body = await r.json()
    assert (body["status"], body["drawer_open"]) == ("opened", True)
    r = await c.post("/api/printers/front/kick", json={"drawer": 2}, headers=AUTH)
    assert (await r.json())["status"] == "opened"
    assert [p.drawer for p in shop.front.pulses] == [1, 2]
    r = await c.post("/api/printers/front/kick", json={"drawer": 7}, headers=AUTH)
    assert (r.status, (await r.json())["key"]) == (422, "drawer")
    r = await c.post("/api/printers/ghost/kick", headers=AUTH)
    assert r.status == 404
    events = shop.backend.ledger.recent(10)
    assert {e.type for e in events} == {"manual_kick"}
    assert len(events) == 2


async def test_discovery_finds_and_identifies_the_virtual_printers(shop):
    c = shop.client
    r = await c.post("/api/discovery", json={"subnets": ["127.0.3.0/30"]}, headers=AUTH)
    assert r.status == 202, await r.text()
    busy = await c.post("/api/discovery", json={"subnets": ["127.0.3.0/30"]}, headers=AUTH)
    assert busy.status == 409
    await shop.backend.wait_discovery()
    body = await (await c.get("/api/discovery", headers=AUTH)).json()
    assert body["running"] is False
    assert (body["done"], body["total"], body["percent"]) == (2, 2, 100)
    by_host = {f["host"]: f for f in body["found"]}
    assert by_host[HOSTS[0]]["catalogue_id"] == "epson-tm-t20iii"
    assert by_host[HOSTS[1]]["catalogue_id"] == "epson-tm-m30"
    assert by_host[HOSTS[1]]["brand"] == "Epson"
    assert by_host[HOSTS[1]]["identity"] == {"serial": "X5E0000002"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"subnets": ["10.0.0.0/8"]}, 422),
        ({"subnets": ["nonsense"]}, 422),
        ({"subnets": "127.0.0.1/32"}, 422),
        ({"other": 1}, 422),
        (None, 422),  # no configured subnets and no private interface: nothing to sweep
    ],
)
async def test_discovery_refuses_what_it_must_not_sweep(shop, body, status):
    r = (
        await shop.client.post("/api/discovery", json=body, headers=AUTH)
        if body is not None
        else await shop.client.post("/api/discovery", headers=AUTH)
    )
    assert r.status == status
    assert (await r.json())["key"] == "subnets"
