"""Run the fleet view in the test's loop and scrape it like Prometheus would."""

from __future__ import annotations

import asyncio
import contextlib
import io

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from agent.core.settings import validate
from agent.service.fleet import FleetOptions, FleetView, run_fleet
from tests.conftest import running_service


def fleet_options(
    urls: list[str], protocol: str = "5", shops: tuple[str, ...] = (), **kw
) -> FleetOptions:
    raw = {
        "shop_id": "fleet",
        "mqtt": {"url": urls, "protocol": protocol, "client_id": kw.pop("client_id", "fleet-test")},
    }
    return FleetOptions(mqtt=validate(raw, lambda p: b"").mqtt, listen_port=0, shops=shops, **kw)


def running_fleet(
    options: FleetOptions, out: io.StringIO | None = None
) -> contextlib.AbstractAsyncContextManager[FleetView]:
    """Run the fleet view in this loop until the block exits; yields once it is connected."""
    return running_service(
        lambda started: run_fleet(
            options, out=out or io.StringIO(), install_signals=False, started=started
        ),
        lambda view: view.link.connected.wait(),
    )


async def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample as {(name, labels): value}."""
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        text = await resp.text()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


async def wait_scrape(url: str, predicate, timeout: float = 15.0):
    """Scrape until predicate(samples) holds (polling a condition, bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        samples = await scrape(url)
        if predicate(samples):
            return samples
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition never held; last scrape: {sorted(samples)[:40]}")
        await asyncio.sleep(0.05)


def sample(samples, name: str, **labels) -> float | None:
    """The value of the one sample whose labels include `labels`."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None
