"""The seed's whole flow in Debian's Chromium against a running agent, a real mosquitto and
three virtual printers on loopback, in French and in English.

Log in → find printers (two identified, one that needs the brand → model picker) → add and
link T1 → test the drawer (sensor shown) → yes saves → a POS event from T1 opens that printer
→ change T1's printer → test → save → the next event opens the new one, no restart →
restart the agent: the page still shows the link and an event opens the new printer. Every
page is checked with axe-core and for JavaScript errors, and shot at 1280 and 820 px.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page

from agent.core.commands import CommandSet
from agent.core.settings import validate
from agent.core.topics import Topics
from agent.devtools.emulator import VirtualPrinterServer
from agent.io.console import load_catalogues
from agent.io.mqtt_link import PosClient
from tests.conftest import make_settings, running_agent
from tests.console.browser import (
    HEIGHT,
    WIDTHS,
    Watched,
    chromium,
    screenshot_dir,
    serious_violations,
    watched_page,
)
from tests.console.conftest import free_port
from tests.integration.test_core_path import ack_of, event

pytestmark = pytest.mark.broker
TOKEN = "console-e2e-token-0123456789"
HOSTS = ("127.0.4.1", "127.0.4.2", "127.0.4.3")
# A /29 around the three printers: the sweep also knocks on .4-.6, where nothing listens.
SUBNET = "127.0.4.0/29"
SHOP = "salon-lumiere"
TOPICS = Topics(SHOP)
FULL_PAGE = bool(os.environ.get("DRAWER_AGENT_FULL_PAGE"))
MESSAGES = load_catalogues()
NAMES = {
    "fr": {"front": "Comptoir", "bar": "Bar", "back": "Réserve"},
    "en": {"front": "Front desk", "bar": "Bar", "back": "Back room"},
}


def t(lang: str, key: str, **values: object) -> str:
    """The catalogue's text, as the page shows it."""
    return MESSAGES[lang][key].format(**values)


class Flow:
    """One browser page on the console, checked and shot at every step."""

    def __init__(self, watched: Watched, base: str, lang: str, shots: Path) -> None:
        self.w = watched
        self.page: Page = watched.page
        self.base = base
        self.lang = lang
        self.shots = shots
        self.step = 0
        self.visited: set[str] = set()

    async def check(self, name: str, focus: str | None = None, *, shoot: bool = True) -> None:
        """axe finds nothing serious, no script error so far; viewport shots at both widths."""
        page = self.page
        assert await page.get_attribute("html", "lang") == self.lang
        assert await serious_violations(page) == [], name
        assert self.w.errors == [], (name, self.w.errors)
        self.visited.add(page.url.split("?")[0].removeprefix(self.base).split("/")[1])
        if not shoot:
            return
        self.step += 1
        for label, width in WIDTHS.items():
            await page.set_viewport_size({"width": width, "height": HEIGHT})
            if focus is not None:
                await page.locator(focus).first.evaluate("e => e.scrollIntoView({block: 'start'})")
            path = self.shots / f"{self.step:02d}-{name}-{self.lang}-{label}.png"
            await page.screenshot(path=str(path))
            if FULL_PAGE:  # for reviewing the whole page; not committed
                await page.screenshot(path=str(path.with_suffix(".full.png")), full_page=True)
        await page.set_viewport_size({"width": WIDTHS["desktop"], "height": HEIGHT})

    async def heading(self) -> str:
        return (await self.page.text_content("h1") or "").strip()

    async def login(self, *, shoot: bool = True) -> None:
        await self.page.goto(f"{self.base}/")
        await self.page.wait_for_url(re.compile(r".*/login"))
        assert await self.heading() == t(self.lang, "login.title")
        await self.check("login", shoot=shoot)
        await self.page.fill("#secret", TOKEN)
        await self.page.click("button[type=submit].primary")
        await self.page.wait_for_url(re.compile(r".*/shop$"))
        assert await self.heading() == t(self.lang, "shop.title")

    async def till_printer(self, till: str) -> str:
        row = self.page.locator("#live tr", has=self.page.locator(f'th:text-is("{till}")'))
        return (await row.locator("td").first.text_content() or "").strip()

    async def test_and_save(
        self, till: str, printer_id: str, name: str, *, look_at_no: bool = False
    ) -> None:
        """On the link page: pick the printer, test the drawer, read the sensor, say yes.

        `look_at_no` first opens "No" and checks what it offers (without choosing any).
        """
        page, lang = self.page, self.lang
        await page.fill("#till", till)
        await page.check(f"#p-{printer_id}")
        await page.click("form[action='/link/test'] button.primary")
        await page.wait_for_selector("#result-h")
        status = (await page.text_content(".result p[role=status]") or "").strip()
        assert status == t(lang, "link.pulse_sent", printer=name, drawer=1, pin=2), status
        assert (await page.text_content(".sensor") or "").strip() == t(lang, "link.sensor_open")
        assert (await page.text_content("#ask-h") or "").strip() == t(lang, "link.did_it_open")
        await self.check(f"test-{printer_id}", focus="#result-h")
        if look_at_no:
            await page.click(".answers summary")
            offered = await page.locator(".answers details li").all_text_contents()
            assert [o.strip() for o in offered] == [
                t(lang, "link.try_drawer", pin="5"),
                t(lang, "link.try_polarity"),
                t(lang, "link.try_printer"),
            ], offered
            await self.check(f"test-{printer_id}-no", focus="#ask-h")
        await page.click("form[action='/link/save'] button.primary")
        await page.wait_for_url(re.compile(r".*/shop\?"))
        notice = (await page.text_content(".notice") or "").strip()
        assert notice == t(lang, "done.linked", what=till, printer=name)


async def find(flow: Flow, *, first: bool) -> None:
    """Find printers: the sweep's progress, then the three virtual printers."""
    page, lang = flow.page, flow.lang
    await page.click("nav a[href='/find']")
    await page.wait_for_url(re.compile(r".*/find$"))
    assert await flow.heading() == t(lang, "find.title")
    if first:
        # The configured subnet is the default: the installer only presses the button.
        assert await page.input_value("#subnets") == SUBNET
        await flow.check("find")
        await page.click("form[action='/find'] button.primary")
        await page.wait_for_url(re.compile(r".*/find$"))
    # The live region polls until the sweep is over, without a reload.
    await page.wait_for_function(
        "() => !document.querySelector('#find-live [data-running]')"
        " && document.querySelector('#found-h')",
        timeout=20_000,
    )
    done = (await page.text_content("#progress-text") or "").strip()
    assert done == t(lang, "find.done", total=6, found=3)
    assert await page.get_attribute("#progress", "value") == "100"


def tile(page: Page, host: str):  # type: ignore[no-untyped-def]
    return page.locator("#find-live li.tile", has_text=f"{host}:")


async def add_found(flow: Flow, host: str, printer_id: str, name: str) -> None:
    card = tile(flow.page, host)
    await card.locator("input[name=printer_id]").fill(printer_id)
    await card.locator("input[name=name]").fill(name)
    await card.locator("button.primary").click()
    await flow.page.wait_for_url(re.compile(rf".*/link\?printer={printer_id}&added=1$"))
    assert await flow.page.is_visible(".notice")


@asynccontextmanager
async def console_page(  # type: ignore[no-untyped-def]
    context: BrowserContext, base: str, lang: str, shots: Path, step: int = 0
):
    watched = await watched_page(context)
    flow = Flow(watched, base, lang, shots)
    flow.step = step
    try:
        yield flow
    finally:
        await watched.page.close()


@pytest.fixture
async def three_printers() -> AsyncIterator[dict[str, VirtualPrinterServer]]:
    """Three virtual printers on one port of three loopback addresses, distinct serials."""
    port = free_port(HOSTS[0])
    async with (
        VirtualPrinterServer(HOSTS[0], port, CommandSet.ESCPOS, name="front") as a,
        VirtualPrinterServer(HOSTS[1], port, CommandSet.ESCPOS, name="bar") as b,
        VirtualPrinterServer(HOSTS[2], port, CommandSet.ESCPOS, name="back") as c,
    ):
        a.printer.model, a.printer.serial = "TM-T20III", "X5E0000101"
        b.printer.model, b.printer.serial = "TM-m30", "X5E0000102"
        # A model the catalogue does not know: the brand is recognised, the model is picked.
        c.printer.model, c.printer.serial = "TM-Q999", "X5E0000103"
        yield {"front": a, "bar": b, "back": c}


@pytest.fixture
async def pos(mosquitto) -> AsyncIterator[PosClient]:
    """The till's POS software: publishes events for the shop, reads the acks."""
    mqtt = validate({"shop_id": SHOP, "mqtt": {"url": mosquitto.url}}, lambda p: b"").mqtt
    async with PosClient(mqtt, TOPICS.acks, client_id="pos-e2e") as client:
        yield client


async def send(pos: PosClient, body: dict[str, object]) -> None:
    await pos.publish(TOPICS.events, json.dumps(body).encode())


def counts(printers: dict[str, VirtualPrinterServer]) -> dict[str, int]:
    return {pid: len(vp.pulses) for pid, vp in printers.items()}


@pytest.mark.parametrize("lang", ["fr", "en"])
async def test_the_seed_flow_against_a_running_agent(
    mosquitto, tmp_path, three_printers, pos, lang
):
    printers = three_printers
    port = printers["front"].port
    names = NAMES[lang]
    settings = make_settings(
        tmp_path,
        mosquitto.port,
        {},
        {},
        shop_id=SHOP,
        http={"token": TOKEN},
        # The shop's subnet, here loopback only (no mDNS, no SNMP), knocking on the printers'
        # port; swept once at start and again from the console.
        discovery={
            "subnets": [SUBNET],
            "mdns": False,
            "snmp": False,
            "identify": True,
            "probe_port": port,
            "interval_s": 0,
            "timeout_s": 0.5,
        },
    )
    shots = screenshot_dir()
    async with chromium() as browser:
        context = await browser.new_context(
            locale=lang,
            extra_http_headers={"Accept-Language": lang},
            viewport={"width": WIDTHS["desktop"], "height": HEIGHT},
        )
        async with running_agent(settings) as agent:
            base = f"http://127.0.0.1:{agent.http_port}"
            async with console_page(context, base, lang, shots) as flow:
                page = flow.page
                await flow.login()
                await flow.check("shop-empty")

                # Find printers: two identified with brand and model, one needs the picker.
                await find(flow, first=True)
                for host, model in ((HOSTS[0], "Epson TM-T20III"), (HOSTS[1], "Epson TM-m30")):
                    text = await tile(page, host).text_content() or ""
                    assert t(lang, "find.identified", model=model) in text, text
                unknown = tile(page, HOSTS[2])
                assert t(lang, "find.pick_model") in (await unknown.text_content() or "")
                brand = unknown.locator("select[data-brand-for]")
                assert await brand.input_value() == "Epson"
                # The picker lists only the chosen brand's models.
                visible = await unknown.locator("select[name=model] optgroup:not([hidden])").all()
                assert [await g.get_attribute("data-brand") for g in visible] == ["Epson"]
                await flow.check("find-found", focus="#found-h")

                # Add the first printer and link T1 to it: test, sensor reading, yes.
                await add_found(flow, HOSTS[0], "front", names["front"])
                assert await flow.heading() == t(lang, "link.title")
                await flow.check("link")
                await flow.test_and_save("T1", "front", names["front"], look_at_no=True)
                assert counts(printers) == {"front": 1, "bar": 0, "back": 0}
                assert await flow.till_printer("T1") == names["front"]
                await flow.check("shop-linked")

                # A POS event from T1 over MQTT opens that printer.
                first = event("sale", "T1")
                await send(pos, first)
                ack = await ack_of(pos, first["event_id"])
                assert (ack["status"], ack["printer_id"]) == ("opened", "front")
                assert counts(printers) == {"front": 2, "bar": 0, "back": 0}

                # Add the second printer, and the unknown one through the brand → model picker.
                await find(flow, first=False)
                await add_found(flow, HOSTS[1], "bar", names["bar"])
                await find(flow, first=False)
                unknown = tile(page, HOSTS[2])
                await unknown.locator("input[name=printer_id]").fill("back")
                await unknown.locator("input[name=name]").fill(names["back"])
                await unknown.locator("select[data-brand-for]").select_option("Epson")
                await unknown.locator("select[name=model]").select_option("epson-tm-t88vi")
                await unknown.locator("button.primary").click()
                await page.wait_for_url(re.compile(r".*/link\?printer=back&added=1$"))
                assert agent.mapping.current.printers["back"].settings.model == "epson-tm-t88vi"

                # Change printer for T1: from the shop's till row, one screen, no restart.
                await page.click("nav a[href='/shop']")
                await page.click("#live a[href='/link?till=T1']")
                assert await flow.heading() == t(lang, "link.change_title", till="T1")
                await flow.check("change")
                await flow.test_and_save("T1", "bar", names["bar"])
                assert counts(printers) == {"front": 2, "bar": 1, "back": 0}
                assert await flow.till_printer("T1") == names["bar"]
                await flow.check("shop-changed")

                second = event("sale", "T1")
                await send(pos, second)
                ack = await ack_of(pos, second["event_id"])
                assert (ack["status"], ack["printer_id"]) == ("opened", "bar")
                # The pulse went to the new printer and NOT to the old one.
                assert counts(printers) == {"front": 2, "bar": 2, "back": 0}

                await page.click("nav a[href='/journal']")
                await page.wait_for_url(re.compile(r".*/journal$"))
                assert await flow.heading() == t(lang, "journal.title")
                journal = await page.text_content("main") or ""
                assert journal.count(t(lang, "status.opened")) >= 4  # 2 tests + 2 sales
                await flow.check("journal")
                visited, step = set(flow.visited), flow.step

        # Restart the agent on the same settings and SQLite file: the mapping is still there.
        async with running_agent(settings) as agent:
            base = f"http://127.0.0.1:{agent.http_port}"
            async with console_page(context, base, lang, shots, step) as flow:
                # Sessions live in the agent's memory: log in again (the same page as before).
                await flow.login(shoot=False)
                assert await flow.till_printer("T1") == names["bar"]
                await flow.check("shop-restarted")
                third = event("sale", "T1")
                await send(pos, third)
                ack = await ack_of(pos, third["event_id"])
                assert (ack["status"], ack["printer_id"]) == ("opened", "bar")
                assert counts(printers) == {"front": 2, "bar": 3, "back": 0}
        await context.close()
    assert visited == {"login", "shop", "find", "link", "journal"}
