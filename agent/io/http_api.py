"""The local HTTP API (aiohttp), run inside the agent's TaskGroup through AppRunner.

`/healthz`, `/readyz` and `/metrics` are open. Every `/api/*` endpoint (audit trail, config,
test pulse) needs `Authorization: Bearer <[http] token>`; with no token configured they
answer only when the agent listens on loopback.
"""

from __future__ import annotations

import hmac
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from agent.core.errors import AgentError
from agent.core.hosts import is_loopback
from agent.core.settings import HttpSettings
from agent.core.views import Commands, ReadModel
from agent.io.console import Backend, ConsoleOptions, setup_console
from agent.io.metrics import CONTENT_TYPE
from agent.io.tls import server_context

VIEW: web.AppKey[ReadModel] = web.AppKey("view")
COMMANDS: web.AppKey[Commands] = web.AppKey("commands")
SETTINGS: web.AppKey[HttpSettings] = web.AppKey("http_settings")
# No endpoint takes a body beyond a few bytes; aiohttp answers 413 above this.
MAX_BODY = 4 * 1024
MAX_EVENTS = 1000
# A test kick's answer: HTTP status per KickAnswer code.
KICK_STATUS = {
    "queued": 202,
    "unknown_printer": 404,
    "queue_full": 503,
    "rate_limited": 429,
    "not_recorded": 503,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    settings: HttpSettings,
    view: ReadModel,
    commands: Commands,
    console: Backend | None = None,
    shop_id: str = "",
) -> web.Application:
    """Build the aiohttp application over a read model and a command interface.

    With `console`, the installer console is served too, at `/`; its `/api/printers` and
    test kick (with the mapping's origins and the trial variants) replace the plain ones.
    """
    app = web.Application(client_max_size=MAX_BODY, middlewares=[degraded])
    app[VIEW] = view
    app[COMMANDS] = commands
    app[SETTINGS] = settings
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/events", protected(events))
    app.router.add_get("/api/config", protected(config))
    if console is None:
        app.router.add_get("/api/printers", protected(printers))
        app.router.add_post("/api/printers/{printer_id}/kick", protected(kick))
    else:
        options = ConsoleOptions(settings.token, is_loopback(settings.host), shop_id)
        setup_console(app, console, options)
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
        settings = request.app[SETTINGS]
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


async def healthz(_request: web.Request) -> web.Response:
    """200 while the process runs."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 only while connected to the broker with a writable ledger."""
    ok, reason = request.app[VIEW].ready()
    return web.json_response({"ready": ok, "reason": reason}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this agent's own registry."""
    body = request.app[VIEW].metrics_text()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def printers(request: web.Request) -> web.Response:
    """Configured printers with their last probed health, and what discovery found."""
    view = request.app[VIEW]
    return web.json_response({"printers": view.printers(), "discovered": view.discovered()})


async def events(request: web.Request) -> web.Response:
    """The audit trail, newest first: `?limit=` (1..1000, default 100), `?since=` (epoch s)."""
    try:
        limit = int(request.query.get("limit", "100"))
        since = float(request.query["since"]) if "since" in request.query else None
    except ValueError:
        return _problem(400, "limit must be an integer and since a number (epoch seconds)")
    if not 1 <= limit <= MAX_EVENTS:
        return _problem(400, f"limit must be 1..{MAX_EVENTS}")
    return web.json_response({"events": request.app[VIEW].events(limit, since)})


async def config(request: web.Request) -> web.Response:
    """Effective settings, secrets redacted."""
    return web.json_response(request.app[VIEW].config())


async def kick(request: web.Request) -> web.Response:
    """A test pulse through the admission path, audited as a manual opening.

    Waits for the outcome and answers 200 with the status and the drawer sensor reading;
    `?wait=false` answers 202 once the pulse is queued.
    """
    pid = request.match_info["printer_id"]
    wait = request.query.get("wait", "true").lower() not in ("0", "false", "no")
    answer = await request.app[COMMANDS].test_kick(pid, f"HTTP API, {request.remote}", wait=wait)
    status = KICK_STATUS.get(answer.code, 200)
    if status >= 400:
        return _problem(status, answer.detail or answer.code)
    return web.json_response(answer.to_json(), status=status)


def _problem(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers=headers)


class HttpServer:
    """`async with HttpServer(settings, view, commands) as http:` serves until the block exits."""

    def __init__(
        self,
        settings: HttpSettings,
        view: ReadModel,
        commands: Commands,
        console: Backend | None = None,
        shop_id: str = "",
    ) -> None:
        self.settings = settings
        self.view = view
        self.commands = commands
        self.console = console
        self.shop_id = shop_id
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL with the port actually bound."""
        scheme = "https" if self.settings.tls else "http"
        return f"{scheme}://{self.settings.host}:{self.port}"

    async def __aenter__(self) -> HttpServer:
        app = make_app(self.settings, self.view, self.commands, self.console, self.shop_id)
        context = None
        if self.settings.cert_file is not None and self.settings.key_file is not None:
            context = server_context(self.settings.cert_file, self.settings.key_file)
        self._runner, self.port = await _serve(app, self.settings.host, self.settings.port, context)
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


async def _serve(
    app: web.Application, host: str, port: int, context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    """Start `app` on host:port (0 = any free port), over TLS with `context`; the runner and
    the port bound."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    # The runner's public view of what it bound; port 0 asks the kernel for a free one.
    bound = port
    for address in runner.addresses:
        if isinstance(address, tuple):
            bound = int(address[1])
            break
    return runner, bound
