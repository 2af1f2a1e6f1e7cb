"""The local HTTP API (aiohttp), run inside the agent's TaskGroup through AppRunner."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from aiohttp import web

if TYPE_CHECKING:
    from agent.app import Agent

AGENT: web.AppKey[Agent] = web.AppKey("agent")
MAX_BODY = 64 * 1024


def make_app(agent: Agent) -> web.Application:
    """Build the aiohttp application for a running agent."""
    app = web.Application(client_max_size=MAX_BODY)
    app[AGENT] = agent
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def healthz(_request: web.Request) -> web.Response:
    """200 while the process runs."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 only while connected to the broker with a writable ledger."""
    ok, reason = request.app[AGENT].ready()
    return web.json_response({"ready": ok, "reason": reason}, status=200 if ok else 503)


class HttpServer:
    """`async with HttpServer(agent) as http:` serves until the block exits."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL with the port actually bound."""
        return f"http://{self.agent.settings.http.host}:{self.port}"

    async def __aenter__(self) -> HttpServer:
        runner = web.AppRunner(make_app(self.agent), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.agent.settings.http.host, self.agent.settings.http.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        server = cast("asyncio.Server | None", site._server)
        if server is not None and server.sockets:
            self.port = int(server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
