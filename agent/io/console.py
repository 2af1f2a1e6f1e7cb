"""The installer console and the mapping REST API (aiohttp + Jinja2), over a narrow Backend.

Pages are rendered on the server from agent/io/web/templates; a little JavaScript only
refreshes live fragments and filters the model picker. Every page needs a console session
(login with the HTTP token or a pairing code from `drawer-agent pair`); the REST API takes
the bearer token or a session. State changes are POST/PUT/DELETE only, each with a CSRF
token; a GET changes nothing.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from agent.core import catalogue
from agent.core.console_model import (
    DiscoveryView,
    EventView,
    KickResult,
    ShopHealth,
    alternatives,
    brands,
    code_hash,
    found_json,
    models_by_brand,
    normalize_code,
    safe_next,
    suggested_id,
    trial_table,
)
from agent.core.errors import AgentError, ConfigError
from agent.core.i18n import Translator, negotiate, problems
from agent.core.mapping import (
    ABSENT,
    Actor,
    Applied,
    Change,
    Outcome,
    Refused,
    RuntimeMapping,
    till_problem,
)
from agent.core.ratelimit import PulseRateLimiter
from agent.core.settings import PrinterSettings, validate_printer
from discovery.core.subnets import console_sweep

log = logging.getLogger(__name__)

WEB = Path(__file__).resolve().parent / "web"
LANGS = ("en", "fr")
DEFAULT_LANG = "en"
SESSION_COOKIE = "da_session"
ANON_COOKIE = "da_anon"
LANG_COOKIE = "da_lang"
CSRF_HEADER = "X-CSRF-Token"
# Idle lifetime of a console session, and how many live at once (oldest dropped first).
SESSION_IDLE_S = 8 * 3600.0
MAX_SESSIONS = 64
# Login attempts per minute: per client address, and for everyone together.
LOGINS_PER_CLIENT = 5
LOGINS_TOTAL = 30
MAX_BODY = 16 * 1024
MAX_EVENTS = 500
EVENT_STATUSES = ("opened", "failed", "duplicate", "expired", "unmapped", "ignored", "rejected")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Operation = Callable[[RuntimeMapping], Outcome]


class Backend(Protocol):
    """What the console needs from the running agent, and nothing more."""

    @property
    def mapping(self) -> RuntimeMapping:
        """The effective mapping now (each entry with its origin and revision)."""
        ...

    def change(self, operation: Operation) -> Outcome:
        """Apply a pure mapping operation: persisted, then live for the next event.

        Raises AgentError (LedgerError) when it could not be stored; nothing changed then.
        """
        ...

    def changes(self, limit: int) -> Sequence[Change]:
        """The mapping's audit rows, newest first."""
        ...

    def health(self) -> ShopHealth:
        """Agent, broker and printer state now."""
        ...

    def recent_events(
        self, *, limit: int, terminal_id: str | None = None, status: str | None = None
    ) -> Sequence[EventView]:
        """The events audit trail, newest first, optionally for one till and one status."""
        ...

    async def test_kick(self, printer: PrinterSettings, *, actor: Actor) -> KickResult:
        """One audited test pulse with these settings (maybe not saved yet); the sensor after."""
        ...

    def discovery(self) -> DiscoveryView:
        """The last console-started discovery: progress and printers found."""
        ...

    def discovery_defaults(self) -> tuple[Sequence[str], Sequence[tuple[str, int]]]:
        """The configured discovery subnets and this host's (address, prefix) pairs."""
        ...

    async def start_discovery(self, subnets: Sequence[str]) -> bool:
        """Start sweeping `subnets` in the background; False while one is running."""
        ...

    def redeem_pairing(self, code_hash: str, now: float) -> bool:
        """True once for a live pairing code's hash (it is used up)."""
        ...


@dataclass(frozen=True)
class ConsoleOptions:
    """How the console is reached: the HTTP token and whether the listen address is local."""

    token: str | None
    loopback: bool
    shop_id: str = ""
    clock: Callable[[], float] = time.time


@dataclass
class Session:
    """One logged-in browser."""

    sid: str
    csrf: str
    who: str
    expires: float


@dataclass
class Sessions:
    """Console sessions in memory: a restart logs everyone out, which is the safe side."""

    idle_s: float = SESSION_IDLE_S
    by_id: dict[str, Session] = field(default_factory=dict)

    def create(self, who: str, now: float) -> Session:
        if len(self.by_id) >= MAX_SESSIONS:
            oldest = min(self.by_id.values(), key=lambda s: s.expires)
            del self.by_id[oldest.sid]
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), who, now + self.idle_s)
        self.by_id[s.sid] = s
        return s

    def get(self, sid: str | None, now: float) -> Session | None:
        s = self.by_id.get(sid or "")
        if s is None:
            return None
        if s.expires <= now:
            del self.by_id[s.sid]
            return None
        s.expires = now + self.idle_s
        return s

    def drop(self, sid: str | None) -> None:
        self.by_id.pop(sid or "", None)


@dataclass
class Console:
    """The console's state: backend, options, sessions, templates and catalogues."""

    backend: Backend
    options: ConsoleOptions
    env: jinja2.Environment
    catalogues: Mapping[str, Mapping[str, str]]
    sessions: Sessions = field(default_factory=Sessions)
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    per_client: PulseRateLimiter = field(
        default_factory=lambda: PulseRateLimiter(LOGINS_PER_CLIENT)
    )
    everyone: PulseRateLimiter = field(default_factory=lambda: PulseRateLimiter(LOGINS_TOTAL))

    def now(self) -> float:
        return self.options.clock()


CONSOLE: web.AppKey[Console] = web.AppKey("console")
SESSION: str = "console.session"


def load_catalogues(directory: Path = WEB / "messages") -> dict[str, dict[str, str]]:
    """The message catalogues shipped with the agent, one per language."""
    out: dict[str, dict[str, str]] = {}
    for lang in LANGS:
        out[lang] = json.loads((directory / f"{lang}.json").read_text(encoding="utf-8"))
    return out


def setup_console(app: web.Application, backend: Backend, options: ConsoleOptions) -> Console:
    """Add the console's pages, its REST API and its middleware to `app` (not yet frozen)."""
    catalogues = load_catalogues()
    for problem in problems(catalogues):
        log.warning("console messages: %s", problem)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(WEB / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["summary"] = _summary
    env.filters["model_name"] = _model_name
    console = Console(backend, options, env, catalogues)
    app[CONSOLE] = console
    app.middlewares.append(_headers)
    r = app.router
    r.add_get("/", _root)
    r.add_get("/login", login_page)
    r.add_post("/login", login)
    r.add_post("/logout", page(logout))
    r.add_post("/lang", set_lang)
    r.add_get("/shop", page(shop_page))
    r.add_get("/shop/live", page(shop_live))
    r.add_get("/find", page(find_page))
    r.add_post("/find", page(find_start))
    r.add_get("/find/live", page(find_live))
    r.add_post("/printers/add", page(printer_add))
    r.add_post("/printers/{printer_id}/remove", page(printer_remove))
    r.add_post("/printers/{printer_id}/revert", page(printer_revert))
    r.add_post("/tills/{till}/remove", page(till_remove))
    r.add_post("/tills/{till}/revert", page(till_revert))
    r.add_get("/link", page(link_page))
    r.add_post("/link/test", page(link_test))
    r.add_post("/link/save", page(link_save))
    r.add_get("/journal", page(journal_page))
    r.add_static("/static", WEB / "static", append_version=False)
    r.add_get("/api/mapping", api(api_mapping))
    r.add_get("/api/printers", api(api_printers))
    r.add_put("/api/printers/{printer_id}", api(api_printer_put))
    r.add_delete("/api/printers/{printer_id}", api(api_printer_delete))
    r.add_delete("/api/printers/{printer_id}/override", api(api_printer_revert))
    r.add_post("/api/printers/{printer_id}/kick", api(api_kick))
    r.add_get("/api/terminals", api(api_terminals))
    r.add_put("/api/terminals/{till}", api(api_terminal_put))
    r.add_delete("/api/terminals/{till}", api(api_terminal_delete))
    r.add_delete("/api/terminals/{till}/override", api(api_terminal_revert))
    r.add_get("/api/changes", api(api_changes))
    r.add_get("/api/discovery", api(api_discovery))
    r.add_post("/api/discovery", api(api_discovery_start))
    return console


def make_console_app(backend: Backend, options: ConsoleOptions) -> web.Application:
    """A stand-alone application serving only the console (tests, or a separate port)."""
    app = web.Application(client_max_size=MAX_BODY)
    setup_console(app, backend, options)
    return app


# --- middleware, sessions, CSRF ----------------------------------------------------------


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every console response; pages are never cached."""
    response = await handler(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _console(request: web.Request) -> Console:
    return request.app[CONSOLE]


def _session(request: web.Request) -> Session | None:
    c = _console(request)
    return c.sessions.get(request.cookies.get(SESSION_COOKIE), c.now())


def _anon_csrf(request: web.Request) -> tuple[str, str | None]:
    """(CSRF token, anonymous id to set as a cookie or None) for pages before login."""
    c = _console(request)
    anon = request.cookies.get(ANON_COOKIE)
    new = None
    if not anon or len(anon) > 64:
        anon = new = secrets.token_urlsafe(24)
    token = hmac.new(c.secret, f"anon:{anon}".encode(), "sha256").hexdigest()
    return token, new


def _csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def _cookie(
    response: web.StreamResponse,
    request: web.Request,
    name: str,
    value: str,
    max_age: int | None = None,
    http_only: bool = True,
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=http_only,
        samesite="Strict",
        secure=request.secure,
    )


def page(handler: Callable[[web.Request, Session], Awaitable[web.StreamResponse]]) -> Handler:
    """A console page: needs a session (else the login page); a POST needs its CSRF token."""

    async def check(request: web.Request) -> web.StreamResponse:
        session = _session(request)
        if session is None:
            if request.method != "GET":
                return _text(request, 403, "error.session_expired")
            target = safe_next(request.path_qs)
            raise web.HTTPSeeOther("/login?" + urlencode({"next": target}))
        if request.method != "GET":
            form = await request.post()
            given = form.get("csrf")
            if not isinstance(given, str) or not _csrf_ok(session.csrf, given):
                return _text(request, 403, "error.csrf")
        return await handler(request, session)

    return check


# --- rendering ---------------------------------------------------------------------------


def _lang(request: web.Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen is not None and chosen in LANGS:
        return chosen
    return negotiate(request.headers.get("Accept-Language"), LANGS, DEFAULT_LANG)


def translator(request: web.Request) -> Translator:
    """The texts of the request's language."""
    c = _console(request)
    lang = _lang(request)
    return Translator(lang, c.catalogues[lang], c.catalogues[DEFAULT_LANG])


def render(
    request: web.Request,
    name: str,
    session: Session | None,
    **context: object,
) -> web.Response:
    """A template with the language, the CSRF token and the navigation filled in.

    `http_status` in `context` is the response's status (default 200).
    """
    http_status = context.pop("http_status", 200)
    assert isinstance(http_status, int)
    c = _console(request)
    t = translator(request)
    anon_cookie = None
    if session is not None:
        csrf = session.csrf
    else:
        csrf, anon_cookie = _anon_csrf(request)
    html = c.env.get_template(name).render(
        t=t,
        lang=t.lang,
        langs=LANGS,
        csrf=csrf,
        session=session,
        shop_id=c.options.shop_id,
        path=request.path,
        here=safe_next(request.path_qs),
        **context,
    )
    response = web.Response(
        text=html, content_type="text/html", charset="utf-8", status=http_status
    )
    if anon_cookie is not None:
        _cookie(response, request, ANON_COOKIE, anon_cookie)
    return response


def _text(request: web.Request, status: int, key: str) -> web.Response:
    return web.Response(text=translator(request)(key), status=status)


def _when(ts: object) -> str:
    if not isinstance(ts, int | float):
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _model_name(model_id: object) -> str:
    """A catalogue id as the salon reads it on the printer (`Epson TM-T20III`)."""
    model = catalogue.get(str(model_id))
    return f"{model.vendor} {model.name}" if model else str(model_id)


def _summary(value: object) -> str:
    """An audit value in one line: a printer table's main keys, a printer id, or a dash."""
    if value is None:
        return "—"
    if isinstance(value, Mapping):
        keys = ("name", "host", "port", "model", "command_set", "drawer", "drawer_open_level")
        return ", ".join(f"{k}={value[k]}" for k in keys if k in value)
    return str(value)


def _back(target: str, **params: str) -> web.HTTPSeeOther:
    query = urlencode({k: v for k, v in params.items() if v})
    return web.HTTPSeeOther(target + (("?" + query) if query else ""))


REFUSAL_CODES = ("invalid", "in_use", "not_found", "conflict", "limit")


def _refused_back(r: Refused) -> web.HTTPSeeOther:
    """Back to the Shop page, which tells why (in the reader's language)."""
    return _back("/shop", error=r.code, tills=",".join(r.tills), key=r.key or "", reason=r.reason)


def refusal(t: Translator, r: Refused) -> str:
    """A refusal in the reader's language."""
    if r.code == "in_use":
        return t("refused.in_use", tills=", ".join(r.tills))
    if r.code == "invalid":
        return t("refused.invalid", key=r.key or "-", reason=r.reason)
    return t(f"refused.{r.code}", reason=r.reason)


# --- login, logout, language -------------------------------------------------------------


async def _root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/shop" if _session(request) else "/login")


async def login_page(request: web.Request) -> web.StreamResponse:
    """The login form: the HTTP token, or a pairing code."""
    if _session(request) is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    return _login_form(request)


def _login_form(request: web.Request, error: str | None = None, status: int = 200) -> web.Response:
    c = _console(request)
    return render(
        request,
        "login.html",
        None,
        http_status=status,
        error=error,
        has_token=c.options.token is not None,
        next=safe_next(request.query.get("next")),
    )


async def login(request: web.Request) -> web.StreamResponse:
    """Check the token or pairing code (rate-limited), then start a session."""
    c = _console(request)
    form = await request.post()
    csrf, _ = _anon_csrf(request)
    if not _csrf_ok(csrf, _field(form, "csrf")):
        return _login_form(request, "error.csrf", 403)
    now = c.now()
    client = request.remote or "?"
    if not c.per_client.allow(client, now) or not c.everyone.allow("*", now):
        return _login_form(request, "login.too_many", 429)
    secret = _field(form, "secret") or ""
    who = None
    token = c.options.token
    if token is not None and secret and hmac.compare_digest(secret.encode(), token.encode()):
        who = "console:token"
    else:
        code = normalize_code(secret)
        if code is not None and c.backend.redeem_pairing(code_hash(code), now):
            who = "console:pairing"
    if who is None:
        return _login_form(request, "login.wrong", 401)
    session = c.sessions.create(who, now)
    log.info("console login (%s) from %s", who, client)
    response = web.HTTPSeeOther(safe_next(_field(form, "next")))
    _cookie(response, request, SESSION_COOKIE, session.sid)
    raise response


async def logout(request: web.Request, session: Session) -> web.StreamResponse:
    """End the session."""
    _console(request).sessions.drop(session.sid)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def set_lang(request: web.Request) -> web.StreamResponse:
    """Remember the chosen language in a cookie (a year), then go back."""
    form = await request.post()
    session = _session(request)
    expected = session.csrf if session else _anon_csrf(request)[0]
    if not _csrf_ok(expected, _field(form, "csrf")):
        return _text(request, 403, "error.csrf")
    lang = _field(form, "lang")
    response = web.HTTPSeeOther(safe_next(_field(form, "next")))
    if lang is not None and lang in LANGS:
        _cookie(response, request, LANG_COOKIE, lang, max_age=365 * 86400)
    raise response


def _field(form: Mapping[str, object], name: str) -> str | None:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else None


def _actor(session: Session) -> Actor:
    return Actor("console", session.who)


# --- Shop --------------------------------------------------------------------------------


def _names(mapping: RuntimeMapping) -> dict[str, str]:
    """Printer ids → the names the salon gave them, for the audit trail."""
    return {pid: e.display_name for pid, e in mapping.printers.items()}


def _shop_context(request: web.Request) -> dict[str, object]:
    c = _console(request)
    mapping = c.backend.mapping
    health = c.backend.health()
    printers = []
    for pid, entry in sorted(mapping.printers.items()):
        model = catalogue.get(entry.settings.model) if entry.settings.model else None
        printers.append(
            {
                "id": pid,
                "name": entry.display_name,
                "entry": entry,
                "model": f"{model.vendor} {model.name}"
                if model
                else str(entry.settings.command_set),
                "health": health.printers.get(pid),
                "address": health.addresses.get(pid)
                or (f"{entry.settings.host}:{entry.settings.port}" if entry.settings.host else ""),
                "tills": mapping.tills_of(pid),
            }
        )
    tills = [
        {"till": till, "entry": e, "printer": mapping.printers[e.printer_id].display_name}
        for till, e in sorted(mapping.terminals.items())
    ]
    return {
        "health": health,
        "printers": printers,
        "tills": tills,
        "events": c.backend.recent_events(limit=8),
        "names": _names(mapping),
        "problems": mapping.problems,
        # File entries removed at run time: listed so "back to the file's value" stays one click.
        "removed": sorted(
            (kind, key) for (kind, key), o in mapping.overrides.items() if o.value is None
        ),
    }


async def shop_page(request: web.Request, session: Session) -> web.StreamResponse:
    """Agent and broker state, printers, tills, last openings; refreshed live."""
    t = translator(request)
    q = request.query
    error = None
    if q.get("error") in REFUSAL_CODES:
        tills = tuple(x for x in q.get("tills", "").split(",") if x)
        error = refusal(t, Refused(q["error"], q.get("reason", ""), q.get("key"), tills))
    return render(
        request,
        "shop.html",
        session,
        notice=_notice(t, q),
        error=error,
        **_shop_context(request),
    )


async def shop_live(request: web.Request, session: Session) -> web.StreamResponse:
    """The live part of the Shop page, polled every few seconds."""
    return render(request, "_shop_live.html", session, **_shop_context(request))


def _notice(t: Translator, query: Mapping[str, str]) -> str | None:
    done = query.get("done")
    if done in ("linked", "removed", "reverted", "added", "unlinked"):
        return t(f"done.{done}", what=query.get("what", ""), printer=query.get("printer", ""))
    return None


async def _mapping_action(
    request: web.Request, session: Session, operation: Operation, done: str, what: str
) -> web.StreamResponse:
    outcome = _console(request).backend.change(operation)
    if isinstance(outcome, Refused):
        raise _refused_back(outcome)
    raise _back("/shop", done=done, what=what)


async def printer_remove(request: web.Request, session: Session) -> web.StreamResponse:
    """Remove a printer (refused while a till uses it)."""
    pid = request.match_info["printer_id"]
    actor, now = _actor(session), _console(request).now()
    return await _mapping_action(
        request, session, lambda m: m.remove_printer(pid, actor=actor, at=now), "removed", pid
    )


async def printer_revert(request: web.Request, session: Session) -> web.StreamResponse:
    """Back to the file's value for one printer."""
    pid = request.match_info["printer_id"]
    actor, now = _actor(session), _console(request).now()
    return await _mapping_action(
        request, session, lambda m: m.revert_printer(pid, actor=actor, at=now), "reverted", pid
    )


async def till_remove(request: web.Request, session: Session) -> web.StreamResponse:
    """Unlink a till."""
    till = request.match_info["till"]
    actor, now = _actor(session), _console(request).now()
    return await _mapping_action(
        request, session, lambda m: m.remove_terminal(till, actor=actor, at=now), "unlinked", till
    )


async def till_revert(request: web.Request, session: Session) -> web.StreamResponse:
    """Back to the file's printer for one till."""
    till = request.match_info["till"]
    actor, now = _actor(session), _console(request).now()
    return await _mapping_action(
        request, session, lambda m: m.revert_terminal(till, actor=actor, at=now), "reverted", till
    )


# --- Find printers -----------------------------------------------------------------------


def _find_context(request: web.Request) -> dict[str, object]:
    c = _console(request)
    view = c.backend.discovery()
    mapping = c.backend.mapping
    taken = list(mapping.printers)
    known = {(e.settings.host, e.settings.port): pid for pid, e in mapping.printers.items()}
    found = []
    for record in view.found:
        info = found_json(record)
        found.append(
            {
                "record": record,
                "info": info,
                "model": catalogue.get(cast("str", info["catalogue_id"]))
                if info["catalogue_id"]
                else None,
                "brand": info["brand"],
                "suggested": suggested_id(record, taken),
                "known_as": known.get((record.host, record.port)),
            }
        )
    return {"view": view, "found": found, "brands": brands(), "by_brand": models_by_brand()}


async def find_page(request: web.Request, session: Session) -> web.StreamResponse:
    """Run discovery, see its progress and what it found, add a printer."""
    c = _console(request)
    configured, interfaces = c.backend.discovery_defaults()
    try:
        defaults = console_sweep((), configured, interfaces)
    except ValueError:
        defaults = []
    return render(
        request,
        "find.html",
        session,
        subnets=" ".join(defaults),
        error=None,
        add_error=None,
        form={},
        **_find_context(request),
    )


async def find_live(request: web.Request, session: Session) -> web.StreamResponse:
    """Discovery progress and results, polled while it runs."""
    return render(request, "_find_live.html", session, **_find_context(request))


async def find_start(request: web.Request, session: Session) -> web.StreamResponse:
    """Start a discovery over the subnets typed (or the defaults)."""
    c = _console(request)
    t = translator(request)
    form = await request.post()
    typed = (_field(form, "subnets") or "").replace(",", " ").split()
    configured, interfaces = c.backend.discovery_defaults()
    try:
        chosen = console_sweep(typed, configured, interfaces)
    except ValueError as exc:
        return _find_error(request, session, t("find.bad_subnet", reason=str(exc)), " ".join(typed))
    if not chosen:
        return _find_error(request, session, t("find.no_subnet"), "")
    if not await c.backend.start_discovery(chosen):
        return _find_error(request, session, t("find.busy"), " ".join(chosen))
    raise web.HTTPSeeOther("/find")


def _find_error(
    request: web.Request, session: Session, error: str, subnets: str, status: int = 422
) -> web.Response:
    return render(
        request,
        "find.html",
        session,
        http_status=status,
        subnets=subnets,
        error=error,
        add_error=None,
        form={},
        **_find_context(request),
    )


async def printer_add(request: web.Request, session: Session) -> web.StreamResponse:
    """Save a found (or typed) printer, then go on to link a till to it."""
    c = _console(request)
    t = translator(request)
    form = await request.post()
    values = {
        k: _field(form, k) or ""
        for k in ("printer_id", "name", "host", "port", "model", "mac", "serial", "mdns_name")
    }
    pid = values["printer_id"]
    table: dict[str, object] = {"host": values["host"], "model": values["model"]}
    if values["name"]:
        table["name"] = values["name"]
    if values["port"]:
        table["port"] = int(values["port"]) if values["port"].isdigit() else values["port"]
    identity = {k: values[k] for k in ("mac", "serial", "mdns_name") if values[k]}
    if identity:
        # Follow the printer by identity when its address changes (DHCP), as `match` does.
        table["match"] = identity
    if not values["model"]:
        table.pop("model")
    actor, now = _actor(session), c.now()
    outcome = c.backend.change(
        lambda m: m.set_printer(pid, table, actor=actor, at=now, expect=ABSENT)
    )
    if isinstance(outcome, Refused):
        if outcome.code == "conflict":
            message = t("find.id_taken", printer=pid)
        elif (
            outcome.code == "invalid"
            and outcome.key == f"printers.{pid}"
            and "ids" in outcome.reason
        ):
            message = t("find.bad_id")
        elif outcome.code == "invalid" and outcome.key == f"printers.{pid}":
            message = t("find.need_model")
        else:
            message = refusal(t, outcome)
        return render(
            request,
            "find.html",
            session,
            http_status=422,
            subnets="",
            error=None,
            add_error=message,
            form=values,
            **_find_context(request),
        )
    raise _back("/link", printer=pid, added="1")


# --- Link a till / Change printer --------------------------------------------------------


def _link_context(request: web.Request, till: str, printer_id: str) -> dict[str, object]:
    mapping = _console(request).backend.mapping
    current = mapping.terminals.get(till)
    return {
        "till": till,
        "printer_id": printer_id or (current.printer_id if current else ""),
        "current": current,
        "mapping": mapping,
        "printers": sorted(mapping.printers.values(), key=lambda e: e.display_name.lower()),
        "tills": sorted(mapping.terminals),
        "result": None,
        "trial": None,
        "alternatives": [],
        "error": None,
    }


async def link_page(request: web.Request, session: Session) -> web.StreamResponse:
    """Choose (or type) a till and a printer, then test the drawer."""
    till = request.query.get("till", "")
    printer_id = request.query.get("printer", "")
    ctx = _link_context(request, till, printer_id)
    ctx["added"] = request.query.get("added") == "1"
    return render(request, "link.html", session, **ctx)


def _trial(
    mapping: RuntimeMapping, form: Mapping[str, object]
) -> tuple[str, str, PrinterSettings | None, str | None]:
    """(till, printer id, settings to try, error key) from the link form."""
    till = _field(form, "till") or ""
    pid = _field(form, "printer_id") or ""
    if till_problem(till):
        return till, pid, None, "link.bad_till"
    entry = mapping.printers.get(pid)
    if entry is None:
        return till, pid, None, "link.pick_printer"
    drawer_text = _field(form, "drawer") or str(entry.settings.drawer)
    level = _field(form, "open_level") or entry.settings.drawer_open_level or "low"
    drawer = int(drawer_text) if drawer_text in ("1", "2") else entry.settings.drawer
    try:
        settings = validate_printer(pid, trial_table(entry.table, drawer, level))
    except ConfigError as exc:
        log.info("console trial refused: %s", exc)
        return till, pid, None, "link.bad_trial"
    return till, pid, settings, None


async def link_test(request: web.Request, session: Session) -> web.StreamResponse:
    """Send a test pulse with the chosen connector and polarity; show the sensor reading."""
    c = _console(request)
    form = await request.post()
    mapping = c.backend.mapping
    till, pid, settings, error = _trial(mapping, form)
    ctx = _link_context(request, till, pid)
    ctx["added"] = False
    if settings is None:
        ctx["error"] = error
        return render(request, "link.html", session, http_status=422, **ctx)
    tried = _tried(_field(form, "tried"))
    tried.append((settings.drawer, settings.drawer_open_level or "low"))
    try:
        result = await c.backend.test_kick(settings, actor=_actor(session))
    except AgentError as exc:
        result = KickResult("failed", None, str(exc))
    ctx.update(
        result=result,
        trial=settings,
        tried=",".join(f"{d}:{lvl}" for d, lvl in tried),
        alternatives=alternatives(settings, tried),
    )
    return render(request, "link.html", session, **ctx)


def _tried(text: str | None) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for part in (text or "").split(","):
        drawer, _, level = part.partition(":")
        if drawer in ("1", "2") and level in ("low", "high"):
            out.append((int(drawer), level))
    return out[:8]


async def link_save(request: web.Request, session: Session) -> web.StreamResponse:
    """ "Yes, it opened": keep the connector and polarity tried, and link the till."""
    c = _console(request)
    form = await request.post()
    till, pid, settings, error = _trial(c.backend.mapping, form)
    if settings is None:
        ctx = _link_context(request, till, pid)
        ctx.update(added=False, error=error)
        return render(request, "link.html", session, http_status=422, **ctx)
    actor, now = _actor(session), c.now()
    entry = c.backend.mapping.printers[pid]
    if (settings.drawer, settings.drawer_open_level) != (
        entry.settings.drawer,
        entry.settings.drawer_open_level,
    ):
        table = trial_table(entry.table, settings.drawer, settings.drawer_open_level or "low")
        revision = entry.revision
        first = c.backend.change(
            lambda m: m.set_printer(pid, table, actor=actor, at=now, expect=revision)
        )
        if isinstance(first, Refused):
            raise _refused_back(first)
    outcome = c.backend.change(lambda m: m.set_terminal(till, pid, actor=actor, at=now))
    if isinstance(outcome, Refused):
        raise _refused_back(outcome)
    raise _back("/shop", done="linked", what=till, printer=entry.display_name)


# --- Journal -----------------------------------------------------------------------------


async def journal_page(request: web.Request, session: Session) -> web.StreamResponse:
    """The audit trail of events (filter by till and status) and of mapping changes."""
    c = _console(request)
    till = request.query.get("till") or None
    status = request.query.get("status") or None
    if status not in (None, *EVENT_STATUSES):
        status = None
    events = c.backend.recent_events(limit=100, terminal_id=till, status=status)
    return render(
        request,
        "journal.html",
        session,
        events=events,
        changes=c.backend.changes(50),
        till=till or "",
        status=status or "",
        statuses=EVENT_STATUSES,
        tills=sorted(c.backend.mapping.terminals),
        names=_names(c.backend.mapping),
    )


# --- REST API ----------------------------------------------------------------------------


def api(handler: Callable[[web.Request, Actor], Awaitable[web.StreamResponse]]) -> Handler:
    """Bearer token or console session (then a CSRF header on changes); JSON errors."""

    async def check(request: web.Request) -> web.StreamResponse:
        c = _console(request)
        if (request.content_length or 0) > MAX_BODY:
            return _problem(413, f"request body over {MAX_BODY} bytes")
        actor: Actor | None = None
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        token = c.options.token
        if scheme.lower() == "bearer":
            if token is None or not hmac.compare_digest(given.strip().encode(), token.encode()):
                return _problem(401, "wrong bearer token", {"WWW-Authenticate": "Bearer"})
            actor = Actor("api", "token")
        else:
            session = _session(request)
            if session is not None:
                if request.method not in ("GET", "HEAD") and not _csrf_ok(
                    session.csrf, request.headers.get(CSRF_HEADER)
                ):
                    return _problem(403, f"missing or wrong {CSRF_HEADER} header")
                actor = _actor(session)
            elif token is None and c.options.loopback:
                actor = Actor("api", "loopback")
            elif token is None:
                return _problem(403, "set [http] token to use the API on a non-loopback address")
            else:
                return _problem(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
        try:
            return await handler(request, actor)
        except AgentError as exc:
            return _problem(503, f"{type(exc).__name__}: {exc}")

    return check


def _problem(
    status: int, reason: str, headers: Mapping[str, str] | None = None, **extra: object
) -> web.Response:
    return web.json_response({"error": reason, **extra}, status=status, headers=headers)


def _refused(r: Refused) -> web.Response:
    status = {"invalid": 422, "limit": 422, "in_use": 409, "conflict": 409, "not_found": 404}
    extra: dict[str, object] = {"code": r.code}
    if r.key is not None:
        extra["key"] = r.key
    if r.tills:
        extra["tills"] = list(r.tills)
    return web.json_response({"error": r.reason, **extra}, status=status.get(r.code, 409))


def _expect(request: web.Request) -> int | web.Response | None:
    """If-Match "<revision>" / If-None-Match * as a compare-and-set expectation."""
    if request.headers.get("If-None-Match", "").strip() == "*":
        return ABSENT
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    text = raw.strip().removeprefix("W/").strip('"')
    try:
        return int(text)
    except ValueError:
        return _problem(400, 'If-Match must be a revision such as "3"')


async def _json_body(request: web.Request) -> object:
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be JSON"}), content_type="application/json"
        ) from None


def _etag(revision: int) -> dict[str, str]:
    return {"ETag": f'"{revision}"'}


async def api_mapping(request: web.Request, _actor: Actor) -> web.StreamResponse:
    """Effective mapping with origins, revision and problems."""
    m = _console(request).backend.mapping
    return web.json_response(m.to_json(), headers=_etag(m.revision))


def _printer_json(backend: Backend, mapping: RuntimeMapping, pid: str) -> dict[str, object]:
    entry = mapping.printers[pid]
    health = backend.health()
    state = health.printers.get(pid)
    return {
        **entry.to_json(),
        "tills": list(mapping.tills_of(pid)),
        "address": health.addresses.get(pid),
        "health": None if state is None else state.to_json(),
    }


async def api_printers(request: web.Request, _actor: Actor) -> web.StreamResponse:
    """Effective printers with origin, revision, health, and the discovered ones."""
    b = _console(request).backend
    m = b.mapping
    body = {
        "revision": m.revision,
        "printers": [_printer_json(b, m, pid) for pid in sorted(m.printers)],
        "discovered": [found_json(r) for r in b.discovery().found],
    }
    return web.json_response(body, headers=_etag(m.revision))


async def _apply_api(
    request: web.Request, operation: Operation, kind: str, key: str, created_status: int = 200
) -> web.StreamResponse:
    c = _console(request)
    outcome = c.backend.change(operation)
    if isinstance(outcome, Refused):
        return _refused(outcome)
    assert isinstance(outcome, Applied)
    m = outcome.mapping
    body: dict[str, object] = {"revision": m.revision, "change": outcome.change.to_json()}
    rev = m.entry_revision("printer" if kind == "printer" else "terminal", key)
    if kind == "printer" and key in m.printers:
        body["printer"] = _printer_json(c.backend, m, key)
    if kind == "terminal" and key in m.terminals:
        body["terminal"] = m.terminals[key].to_json()
    status = (
        created_status if outcome.change.old is None and outcome.change.new is not None else 200
    )
    return web.json_response(body, status=status, headers=_etag(rev) if rev != ABSENT else None)


async def api_printer_put(request: web.Request, actor: Actor) -> web.StreamResponse:
    """Add or replace a printer: the keys of a `[printers.<id>]` table."""
    pid = request.match_info["printer_id"]
    expect = _expect(request)
    if isinstance(expect, web.Response):
        return expect
    table = await _json_body(request)
    now = _console(request).now()
    return await _apply_api(
        request,
        lambda m: m.set_printer(pid, table, actor=actor, at=now, expect=expect),
        "printer",
        pid,
        201,
    )


async def api_printer_delete(request: web.Request, actor: Actor) -> web.StreamResponse:
    """Remove a printer (409 while a till maps to it)."""
    pid = request.match_info["printer_id"]
    expect = _expect(request)
    if isinstance(expect, web.Response):
        return expect
    now = _console(request).now()
    return await _apply_api(
        request, lambda m: m.remove_printer(pid, actor=actor, at=now, expect=expect), "printer", pid
    )


async def api_printer_revert(request: web.Request, actor: Actor) -> web.StreamResponse:
    """Back to the file's value for this printer."""
    pid = request.match_info["printer_id"]
    expect = _expect(request)
    if isinstance(expect, web.Response):
        return expect
    now = _console(request).now()
    return await _apply_api(
        request, lambda m: m.revert_printer(pid, actor=actor, at=now, expect=expect), "printer", pid
    )


async def api_terminals(request: web.Request, _actor: Actor) -> web.StreamResponse:
    """`{"T1": "front", …}`: the effective till → printer map."""
    m = _console(request).backend.mapping
    return web.json_response(m.terminal_map(), headers=_etag(m.revision))


async def api_terminal_put(request: web.Request, actor: Actor) -> web.StreamResponse:
    """Link a till: `{"printer_id": "front"}`."""
    till = request.match_info["till"]
    expect = _expect(request)
    if isinstance(expect, web.Response):
        return expect
    body = await _json_body(request)
    if not isinstance(body, dict) or set(body) != {"printer_id"}:
        return _problem(422, 'body must be {"printer_id": "<printer id>"}', key="printer_id")
    pid = body["printer_id"]
    now = _console(request).now()
    return await _apply_api(
        request,
        lambda m: m.set_terminal(till, pid, actor=actor, at=now, expect=expect),
        "terminal",
        till,
        201,
    )


async def api_terminal_delete(request: web.Request, actor: Actor) -> web.StreamResponse:
    """Unlink a till."""
    till = request.match_info["till"]
    expect = _expect(request)
    if isinstance(expect, web.Response):
        return expect
    now = _console(request).now()
    return await _apply_api(
        request,
        lambda m: m.remove_terminal(till, actor=actor, at=now, expect=expect),
        "terminal",
        till,
    )


async def api_terminal_revert(request: web.Request, actor: Actor) -> web.StreamResponse:
    """Back to the file's printer for this till."""
    till = request.match_info["till"]
    expect = _expect(request)
    if isinstance(expect, web.Response):
        return expect
    now = _console(request).now()
    return await _apply_api(
        request,
        lambda m: m.revert_terminal(till, actor=actor, at=now, expect=expect),
        "terminal",
        till,
    )


async def api_changes(request: web.Request, _actor: Actor) -> web.StreamResponse:
    """The mapping's audit rows, newest first (`?limit=` 1..500)."""
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        return _problem(400, "limit must be an integer")
    if not 1 <= limit <= MAX_EVENTS:
        return _problem(400, f"limit must be 1..{MAX_EVENTS}")
    rows = _console(request).backend.changes(limit)
    return web.json_response({"changes": [c.to_json() for c in rows]})


async def api_discovery(request: web.Request, _actor: Actor) -> web.StreamResponse:
    """Progress of the console's discovery and the printers found."""
    return web.json_response(_console(request).backend.discovery().to_json())


async def api_discovery_start(request: web.Request, _actor: Actor) -> web.StreamResponse:
    """Start a discovery: `{"subnets": [...]}` or the defaults; 202, 409 while one runs."""
    c = _console(request)
    requested: Sequence[str] = ()
    if request.can_read_body:
        body = await _json_body(request)
        if not isinstance(body, dict) or set(body) - {"subnets"}:
            return _problem(422, 'body must be {"subnets": ["192.168.1.0/24", ...]}', key="subnets")
        subnets = body.get("subnets", [])
        if not isinstance(subnets, list) or not all(isinstance(s, str) for s in subnets):
            return _problem(422, "subnets must be a list of strings", key="subnets")
        requested = subnets
    configured, interfaces = c.backend.discovery_defaults()
    try:
        chosen = console_sweep(requested, configured, interfaces)
    except ValueError as exc:
        return _problem(422, str(exc), key="subnets")
    if not chosen:
        return _problem(422, "no subnet to sweep: name one", key="subnets")
    if not await c.backend.start_discovery(chosen):
        return _problem(409, "a discovery is already running")
    return web.json_response(c.backend.discovery().to_json(), status=202)


async def api_kick(request: web.Request, actor: Actor) -> web.StreamResponse:
    """A test pulse; optional `{"drawer": 2, "drawer_open_level": "high"}` to try a variant."""
    c = _console(request)
    pid = request.match_info["printer_id"]
    entry = c.backend.mapping.printers.get(pid)
    if entry is None:
        return _problem(404, f"no printer {pid!r}")
    variant: dict[str, object] = {}
    if request.can_read_body:
        body = await _json_body(request)
        if not isinstance(body, dict) or set(body) - {"drawer", "drawer_open_level"}:
            return _problem(422, "body may only hold drawer and drawer_open_level", key="drawer")
        variant = body
    try:
        settings = validate_printer(pid, {**entry.table, **variant})
    except ConfigError as exc:
        return _problem(422, exc.problem, key=exc.key.removeprefix(f"printers.{pid}."))
    result = await c.backend.test_kick(settings, actor=actor)
    return web.json_response({"printer_id": pid, **result.to_json()})
