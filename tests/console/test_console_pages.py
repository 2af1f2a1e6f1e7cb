"""Console pages over the real-store backend: login (token, pairing code, rate limit), cookie
flags, CSRF on every POST, GETs that change nothing, both languages, and the seed's flow
(find → pick model → link → test → yes/no → change printer) through the forms."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.core.console_model import code_hash
from agent.io.console import LOGINS_PER_CLIENT, load_catalogues
from tests.console.conftest import HOSTS, TOKEN, csrf_of

TEMPLATES = Path(__file__).resolve().parents[2] / "agent" / "io" / "web" / "templates"
CONSOLE_PY = TEMPLATES.parents[1] / "console.py"


async def test_login_page_in_both_languages(shop):
    fr = await (
        await shop.client.get("/login", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    ).text()
    en = await (await shop.client.get("/login", headers={"Accept-Language": "en-GB"})).text()
    assert '<html lang="fr">' in fr and "Se connecter" in fr
    assert '<html lang="en">' in en and "Log in" in en


async def test_the_language_switch_is_remembered(shop):
    page = await shop.client.get("/login", headers={"Accept-Language": "en"})
    csrf = csrf_of(await page.text())
    r = await shop.client.post(
        "/lang", data={"csrf": csrf, "lang": "fr", "next": "/login"}, allow_redirects=False
    )
    assert r.status == 303
    cookie = r.headers["Set-Cookie"]
    assert "da_lang=fr" in cookie and "SameSite=Strict" in cookie
    again = await (await shop.client.get("/login", headers={"Accept-Language": "en"})).text()
    assert '<html lang="fr">' in again
    # Negative control: without the CSRF token the switch is refused.
    r = await shop.client.post(
        "/lang", data={"lang": "en", "next": "/login"}, allow_redirects=False
    )
    assert r.status == 403


async def test_pages_need_a_session(shop):
    for path in ("/shop", "/find", "/link", "/journal", "/shop/live", "/find/live"):
        r = await shop.client.get(path, allow_redirects=False)
        assert r.status == 303
        assert r.headers["Location"].startswith("/login?next=")
    r = await shop.client.post("/link/save", data={}, allow_redirects=False)
    assert r.status == 403


async def test_the_session_cookie_flags(shop):
    page = await shop.client.get("/login")
    csrf = csrf_of(await page.text())
    r = await shop.client.post(
        "/login", data={"csrf": csrf, "secret": TOKEN}, allow_redirects=False
    )
    assert r.status == 303
    cookie = r.headers["Set-Cookie"]
    assert "da_session=" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over TLS request.secure adds it


async def test_wrong_secrets_are_refused_and_rate_limited(shop):
    page = await shop.client.get("/login")
    csrf = csrf_of(await page.text())
    statuses = []
    for _ in range(LOGINS_PER_CLIENT + 1):
        r = await shop.client.post(
            "/login", data={"csrf": csrf, "secret": "wrong"}, allow_redirects=False
        )
        statuses.append(r.status)
    assert statuses == [401] * LOGINS_PER_CLIENT + [429]
    # Even the right token waits out the minute: the limit counts attempts, not failures.
    r = await shop.client.post(
        "/login", data={"csrf": csrf, "secret": TOKEN}, allow_redirects=False
    )
    assert r.status == 429


async def test_login_needs_its_csrf_token(shop):
    await shop.client.get("/login")
    r = await shop.client.post("/login", data={"secret": TOKEN}, allow_redirects=False)
    assert r.status == 403


async def test_a_pairing_code_works_once(shop):
    now = shop.backend.live.store  # same file the CLI writes to
    import time

    now.add_pairing(code_hash("12345678"), time.time() + 600, time.time())
    page = await shop.client.get("/login")
    csrf = csrf_of(await page.text())
    r = await shop.client.post(
        "/login", data={"csrf": csrf, "secret": "1234-5678"}, allow_redirects=False
    )
    assert r.status == 303
    shop.client.session.cookie_jar.clear()
    page = await shop.client.get("/login")
    csrf = csrf_of(await page.text())
    r = await shop.client.post(
        "/login", data={"csrf": csrf, "secret": "1234-5678"}, allow_redirects=False
    )
    assert r.status == 401


async def test_every_post_needs_the_session_csrf(shop):
    await shop.login()
    for path in (
        "/find",
        "/printers/add",
        "/printers/front/remove",
        "/printers/front/revert",
        "/tills/T1/remove",
        "/tills/T1/revert",
        "/link/test",
        "/link/save",
        "/logout",
    ):
        r = await shop.client.post(path, data={"csrf": "forged"}, allow_redirects=False)
        assert r.status == 403, path
    assert shop.backend.mapping.revision == 0
    assert shop.front.pulses == []


async def test_gets_change_nothing(shop):
    await shop.login()
    for path in (
        "/shop",
        "/shop/live",
        "/find",
        "/find/live",
        "/link?till=T1&printer=front",
        "/journal?till=T1&status=opened",
        "/link/test",
        "/link/save",
    ):
        await shop.client.get(path)
    assert shop.backend.mapping.revision == 0
    assert shop.front.pulses == []
    assert shop.backend.ledger.count() == 0


async def test_security_headers(shop):
    r = await shop.client.get("/login")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Cache-Control"] == "no-store"


async def test_the_seed_flow_through_the_forms(shop):
    """Find the printers, add the unknown one, link T2, test, say no, other pin, yes."""
    csrf = await shop.login(lang="fr")
    c = shop.client
    r = await c.post("/find", data={"csrf": csrf, "subnets": "127.0.3.0/30"}, allow_redirects=False)
    assert r.status == 303
    await shop.backend.wait_discovery()
    find = await (await c.get("/find", headers={"Accept-Language": "fr"})).text()
    assert "Modèle reconnu : Epson TM-m30" in find
    assert "Déjà enregistrée sous le nom front" in find
    r = await c.post(
        "/printers/add",
        data={
            "csrf": csrf,
            "printer_id": "bar",
            "name": "Bar",
            "host": HOSTS[1],
            "port": str(shop.port),
            "model": "epson-tm-m30",
            "serial": "X5E0000002",
        },
        allow_redirects=False,
    )
    assert r.status == 303
    assert r.headers["Location"] == "/link?printer=bar&added=1"
    bar = shop.backend.mapping.printers["bar"]
    assert bar.settings.match is not None and bar.settings.match.serial == "X5E0000002"

    page = await (
        await c.post(
            "/link/test",
            data={"csrf": csrf, "till": "T2", "printer_id": "bar"},
            headers={"Accept-Language": "fr"},
        )
    ).text()
    assert "Le tiroir s&#39;est-il ouvert ?" in page
    assert "D&#39;après l&#39;imprimante, le tiroir est ouvert." in page
    assert [p.drawer for p in shop.bar.pulses] == [1]
    assert "Essayer l&#39;autre connecteur (broche 5)" in page
    tried = re.search(r'name="tried" value="([^"]*)"', page).group(1)
    assert tried == "1:low"

    page = await (
        await c.post(
            "/link/test",
            data={
                "csrf": csrf,
                "till": "T2",
                "printer_id": "bar",
                "drawer": "2",
                "open_level": "low",
                "tried": tried,
            },
        )
    ).text()
    assert [p.drawer for p in shop.bar.pulses] == [1, 2]
    assert "broche 5" not in page and "broche 2" not in page  # both pins tried at this polarity

    r = await c.post(
        "/link/save",
        data={"csrf": csrf, "till": "T2", "printer_id": "bar", "drawer": "2", "open_level": "low"},
        allow_redirects=False,
    )
    assert r.status == 303
    m = shop.backend.mapping
    assert m.terminal_map()["T2"] == "bar"
    assert m.printers["bar"].settings.drawer == 2
    assert [ch.kind for ch in shop.backend.changes(10)] == ["terminal", "printer", "printer"]

    shop_page = await (await c.get(r.headers["Location"], headers={"Accept-Language": "fr"})).text()
    assert "La caisse T2 ouvre désormais le tiroir branché sur Bar." in shop_page

    # Change printer: T2 from bar back to front, one screen, no restart.
    page = await (await c.get("/link?till=T2", headers={"Accept-Language": "fr"})).text()
    assert "Changer l&#39;imprimante de la caisse T2" in page
    await c.post("/link/test", data={"csrf": csrf, "till": "T2", "printer_id": "front"})
    r = await c.post(
        "/link/save",
        data={"csrf": csrf, "till": "T2", "printer_id": "front"},
        allow_redirects=False,
    )
    assert r.status == 303
    assert shop.backend.mapping.terminal_map()["T2"] == "front"
    assert "bar" in shop.backend.mapping.printers  # the old printer stays until removed

    journal = await (await c.get("/journal?till=&status=opened")).text()
    assert journal.count('<tr><td class="when">') >= 4  # events (4 test pulses) + changes


async def test_a_sensor_that_reads_closed_after_a_yes_flips_the_polarity(shop):
    csrf = await shop.login()
    shop.front.printer.sensor_high_when_open = True  # a drawer wired the other way round
    page = await (
        await shop.client.post(
            "/link/test", data={"csrf": csrf, "till": "T1", "printer_id": "front"}
        )
    ).text()
    assert "The printer reports the drawer as closed." in page
    assert 'name="open_level" value="high"' in page
    r = await shop.client.post(
        "/link/save",
        data={
            "csrf": csrf,
            "till": "T1",
            "printer_id": "front",
            "drawer": "1",
            "open_level": "high",
        },
        allow_redirects=False,
    )
    assert r.status == 303
    assert shop.backend.mapping.printers["front"].settings.drawer_open_level == "high"
    assert shop.backend.mapping.printers["front"].origin == "console"


async def test_removing_a_printer_in_use_says_which_tills(shop):
    csrf = await shop.login(lang="fr")
    r = await shop.client.post("/printers/front/remove", data={"csrf": csrf}, allow_redirects=False)
    assert r.status == 303
    page = await (
        await shop.client.get(r.headers["Location"], headers={"Accept-Language": "fr"})
    ).text()
    assert "Cette imprimante ouvre encore le tiroir de T1." in page
    assert "front" in shop.backend.mapping.printers


async def test_a_bad_subnet_and_a_bad_printer_are_explained(shop):
    csrf = await shop.login()
    r = await shop.client.post("/find", data={"csrf": csrf, "subnets": "10.0.0.0/8"})
    assert r.status == 422
    assert "wider than a /22" in await r.text()
    r = await shop.client.post(
        "/printers/add",
        data={"csrf": csrf, "printer_id": "front", "host": "h", "model": "epson-tm-m30"},
    )
    assert r.status == 422
    assert "A printer is already called front" in await r.text()
    r = await shop.client.post(
        "/printers/add", data={"csrf": csrf, "printer_id": "new", "host": "h", "model": ""}
    )
    assert r.status == 422
    assert "Choose the printer" in await r.text()


def _keys_used() -> set[str]:
    text = "".join(p.read_text() for p in TEMPLATES.glob("*.html")) + CONSOLE_PY.read_text()
    return set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+)["']""", text)) | set(
        re.findall(r'"((?:error|login|find|link)\.[a-z_]+)"', CONSOLE_PY.read_text())
    )


def test_every_literal_key_the_pages_use_is_in_both_catalogues():
    used = _keys_used()
    assert len(used) > 100
    for lang, messages in load_catalogues().items():
        missing = sorted(k for k in used if k not in messages and not k.endswith(".html"))
        assert missing == [], (lang, missing)


@pytest.mark.parametrize(
    "prefix_values",
    [
        (
            "status.",
            (
                "opened",
                "failed",
                "duplicate",
                "expired",
                "unmapped",
                "ignored",
                "rejected",
                "pending",
            ),
        ),
        (
            "event.",
            (
                "sale",
                "refund",
                "session_open",
                "session_close",
                "cash_deposit",
                "cash_withdrawal",
                "manual_kick",
            ),
        ),
        ("origin.", ("file", "console", "api", "mqtt")),
        ("paper.", ("ok", "near_end", "out")),
        ("refused.", ("invalid", "in_use", "not_found", "conflict", "limit")),
        ("done.", ("linked", "removed", "reverted", "added", "unlinked")),
        ("kind.", ("printer", "terminal")),
        ("action.", ("set", "remove", "revert")),
    ],
)
def test_every_computed_key_is_in_both_catalogues(prefix_values):
    from agent.core.events import EventType
    from agent.core.status import Paper
    from agent.io.console import EVENT_STATUSES

    prefix, values = prefix_values
    if prefix == "event.":
        assert set(values) >= {e.value for e in EventType}
    if prefix == "paper.":
        assert set(values) == {p.value for p in Paper}
    if prefix == "status.":
        assert set(values) >= set(EVENT_STATUSES)
    for lang, messages in load_catalogues().items():
        assert [v for v in values if prefix + v not in messages] == [], lang
