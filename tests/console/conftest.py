"""Console fixtures: two virtual printers on loopback, the real-store backend, a test client."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.core.commands import CommandSet
from agent.core.settings import Settings, validate
from agent.devtools.emulator import VirtualPrinterServer
from agent.io.console import ConsoleOptions, make_console_app
from tests.console.backend import RealStoreBackend

TOKEN = "console-test-token-0123456789"
HOSTS = ("127.0.3.1", "127.0.3.2")


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Shop:
    """What a console test works with."""

    backend: RealStoreBackend
    client: TestClient
    front: VirtualPrinterServer
    bar: VirtualPrinterServer
    db: Path
    port: int

    async def login(self, secret: str = TOKEN, lang: str | None = None) -> str:
        """Log in through the form; return the session's CSRF token."""
        headers = {"Accept-Language": lang} if lang else {}
        page = await self.client.get("/login", headers=headers)
        csrf = csrf_of(await page.text())
        r = await self.client.post(
            "/login", data={"csrf": csrf, "secret": secret, "next": "/shop"}, allow_redirects=False
        )
        assert r.status == 303, await r.text()
        shop = await self.client.get("/shop", headers=headers)
        assert shop.status == 200
        return csrf_of(await shop.text())


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def shop_settings(tmp_path: Path, port: int, **extra: object) -> Settings:
    raw: dict[str, object] = {
        "shop_id": "salon-42",
        "printers": {"front": {"host": HOSTS[0], "port": port, "model": "epson-tm-t20iii"}},
        "terminals": {"T1": "front"},
        "http": {"listen": "127.0.0.1:0", "token": TOKEN},
        "state": {"path": str(tmp_path / "agent.db")},
        **extra,
    }
    return validate(raw, lambda p: Path(p).read_bytes())


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    port = free_port(HOSTS[0])
    async with (
        VirtualPrinterServer(HOSTS[0], port, CommandSet.ESCPOS, name="front") as front,
        VirtualPrinterServer(HOSTS[1], port, CommandSet.ESCPOS, name="bar") as bar,
    ):
        bar.printer.model, bar.printer.serial = "TM-m30", "X5E0000002"
        settings = shop_settings(tmp_path, port)
        backend = RealStoreBackend(settings, tmp_path / "agent.db", probe_port=port)
        app = make_console_app(backend, ConsoleOptions(TOKEN, loopback=True, shop_id="salon-42"))
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        try:
            yield Shop(backend, client, front, bar, tmp_path / "agent.db", port)
        finally:
            await client.close()
            backend.close()
