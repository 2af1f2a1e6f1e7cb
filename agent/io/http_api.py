"""The local HTTP API (aiohttp), run inside the agent's TaskGroup through AppRunner.

`/healthz`, `/readyz` and `/metrics` are open. Every `/api/*` endpoint (audit trail, config,
test pulse) needs `Authorization: Bearer <[http] token>`; with no token configured they
answer only when the agent listens on loopback.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, cast

from aiohttp import web

from agent.core.errors import AgentError, LedgerError
from agent.io.metrics import CONTENT_TYPE
from agent.service.dispatcher import Job

if TYPE_CHECKING:
    from agent.service.app import Agent

AGENT: web.AppKey[Agent] = web.AppKey("agent")
# No endpoint takes a body beyond a few bytes; aiohttp answers 413 above this.
MAX_BODY = 4 * 1024
MAX_EVENTS = 1000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(agent: Agent) -> web.Application:
    """Build the aiohttp application for a running agent."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[degraded])
    app[AGENT] = agent
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/printers", protected(printers))
    app.router.add_get("/api/events", protected(events))
    app.router.add_get("/api/config", protected(config))
    app.router.add_post("/api/printers/{printer_id}/kick", protected(kick))
    return app


@web.middleware
async def degraded(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A part that fails (the ledger, the broker) is a 503 naming it, never a 500 traceback."""
    try:
        return await handler(request)
    except AgentError as exc:
        return _problem(503, f"{type(exc).__name__}: {exc}")


def protected(handler: Handler) -> Handler:
    """Bearer-token check (constant time) in front of an audit or state-changing endpoint."""

    async def check(request: web.Request) -> web.StreamResponse:
        settings = request.app[AGENT].settings.http
        if (request.content_length or 0) > MAX_BODY:
            # Handlers never read a body, so aiohttp's client_max_size alone would not refuse it.
            return _problem(413, f"request body over {MAX_BODY} bytes")
        if settings.token is None:
            if not is_loopback(settings.host):
                return _problem(
                    403, "set [http] token to use the API on a non-loopback listen address"
                )
            return await handler(request)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), settings.token.encode()
        ):
            return _problem(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return check


def is_loopback(host: str) -> bool:
    """True for a listen address only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def healthz(_request: web.Request) -> web.Response:
    """200 while the process runs."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 only while connected to the broker with a writable ledger."""
    ok, reason = request.app[AGENT].ready()
    return web.json_response({"ready": ok, "reason": reason}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this agent's own registry."""
    body = request.app[AGENT].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def printers(request: web.Request) -> web.Response:
    """Configured printers with their last probed health."""
    agent = request.app[AGENT]
    prober = agent.prober
    out = []
    for pid, p in agent.settings.printers.items():
        state = prober.health[pid].to_json() if prober is not None else None
        out.append(
            {
                "printer_id": pid,
                "source": "configured",
                "host": p.host,
                "port": p.port,
                "model": p.model,
                "command_set": str(p.command_set),
                "drawer": p.drawer,
                "queued": agent.dispatcher.queues[pid].queue.qsize(),
                "health": state,
                "address": _address(agent, pid),
            }
        )
    discovered = [r.to_json() for r in agent.discovery.snapshot()] if agent.discovery else []
    return web.json_response({"printers": out, "discovered": discovered})


def _address(agent: Agent, printer_id: str) -> str | None:
    found = agent.dispatcher.resolve(printer_id)
    return None if found is None else f"{found[0]}:{found[1]}"


async def events(request: web.Request) -> web.Response:
    """The audit trail, newest first: `?limit=` (1..1000, default 100), `?since=` (epoch s)."""
    try:
        limit = int(request.query.get("limit", "100"))
        since = float(request.query["since"]) if "since" in request.query else None
    except ValueError:
        return _problem(400, "limit must be an integer and since a number (epoch seconds)")
    if not 1 <= limit <= MAX_EVENTS:
        return _problem(400, f"limit must be 1..{MAX_EVENTS}")
    rows = request.app[AGENT].ledger.recent(limit, since)
    return web.json_response({"events": [r.to_json() for r in rows]})


async def config(request: web.Request) -> web.Response:
    """Effective settings, secrets redacted."""
    return web.json_response(request.app[AGENT].settings.redacted())


async def kick(request: web.Request) -> web.Response:
    """A test pulse through the printer's queue and lock, audited as a manual opening."""
    agent = request.app[AGENT]
    pid = request.match_info["printer_id"]
    printer = agent.settings.printers.get(pid)
    if printer is None:
        return _problem(404, f"no printer {pid!r} is configured")
    now = time.time()
    drawer_key = f"{pid}/{printer.drawer}"
    if not agent.dispatcher.has_room(pid):
        return _problem(503, f"printer {pid} has too many pending pulses")
    if not agent.intake.limiter.allow(drawer_key, now):
        return _problem(429, f"rate_limited: drawer {drawer_key}")
    event_id = f"manual-{uuid.uuid4()}"
    deadline = now + agent.settings.security.max_age_s
    try:
        agent.ledger.claim(
            event_id=event_id,
            type_="manual_kick",
            terminal_id=None,
            printer_id=pid,
            occurred_at=now,
            received_at=now,
            deadline=deadline,
            detail=f"manual test pulse from the HTTP API ({request.remote})",
            source="manual",
        )
    except LedgerError as exc:
        return _problem(503, f"not recorded, so not sent: {exc}")
    agent.dispatcher.submit(
        Job(
            event_id=event_id,
            printer_id=pid,
            terminal_id=None,
            received_at=now,
            deadline=deadline,
            source="manual",
        )
    )
    return web.json_response(
        {"event_id": event_id, "printer_id": pid, "status": "queued"}, status=202
    )


def _problem(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers=headers)


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
        http = self.agent.settings.http
        self._runner, self.port = await _serve(make_app(self.agent), http.host, http.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class MetricsServer:
    """`async with MetricsServer(host, port, render) as srv:` serves GET /metrics (and
    /healthz) from `render()` until the block exits; the fleet view's only endpoint."""

    def __init__(self, host: str, port: int, render: Callable[[], bytes]) -> None:
        self.host = host
        self.requested_port = port
        self.render = render
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Base URL with the port actually bound."""
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> MetricsServer:
        async def metrics(_request: web.Request) -> web.Response:
            return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE})

        async def healthz(_request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        self._runner, self.port = await _serve(app, self.host, self.requested_port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def _serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start `app` on host:port (0 = any free port); the runner and the port bound."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    server = cast("asyncio.Server | None", site._server)
    bound = port
    if server is not None and server.sockets:
        bound = int(server.sockets[0].getsockname()[1])
    return runner, bound
