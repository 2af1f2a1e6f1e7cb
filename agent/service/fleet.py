"""`drawer-agent fleet`: one read-only MQTT subscriber for every shop, Prometheus metrics for
the ops team and a live table in a terminal. It publishes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from agent.core.fleet import SUBSCRIPTIONS, FleetModel, render_table
from agent.core.settings import MqttSettings
from agent.io.http_api import MetricsServer
from agent.io.metrics import FleetCollector
from agent.io.mqtt_link import Incoming, MqttLink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FleetOptions:
    """What `drawer-agent fleet` was given."""

    mqtt: MqttSettings
    listen_host: str = "127.0.0.1"
    listen_port: int = 9108
    # Shops expected in the fleet: subscribed by exact topic too, for brokers that deliver
    # retained messages only to exact-topic subscriptions (RabbitMQ 3.x).
    shops: tuple[str, ...] = ()
    table: bool = True
    interval_s: float = 2.0


@dataclass
class FleetView:
    """The running fleet view, for tests and the table."""

    options: FleetOptions
    model: FleetModel
    link: MqttLink
    collector: FleetCollector
    metrics_url: str = ""
    stopping: asyncio.Event | None = None


async def run_fleet(
    options: FleetOptions,
    *,
    out: TextIO = sys.stdout,
    install_signals: bool = True,
    started: Callable[[FleetView], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Run until SIGTERM/SIGINT (or `view.stopping` is set); return the exit code."""
    model = FleetModel()
    for shop in options.shops:
        model.shop(shop)
    link = MqttLink(options.mqtt)
    view = FleetView(options, model, link, FleetCollector(model), stopping=asyncio.Event())
    assert view.stopping is not None
    topics = list(SUBSCRIPTIONS)
    for shop in options.shops:
        topics += model.exact_topics(shop)

    async def on_message(msg: Incoming) -> None:
        shop = model.observe(msg.topic, msg.payload, clock())
        link.ack(msg)  # nothing to keep: the model is rebuilt from retained messages
        if shop is not None:
            for topic in model.exact_topics(shop):
                await link.subscribe(topic)

    async def on_connect() -> None:
        log.info("fleet view subscribed on %s", link.broker)

    loop = asyncio.get_running_loop()
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, view.stopping.set)
    try:
        async with MetricsServer(
            options.listen_host, options.listen_port, view.collector.render
        ) as http:
            view.metrics_url = f"{http.url}/metrics"
            log.info("fleet view: metrics on %s", view.metrics_url)
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(link.run(topics, on_message, on_connect), name="mqtt")]
                if options.table:
                    tasks.append(
                        tg.create_task(_table(model, out, options.interval_s, clock), name="table")
                    )
                if started is not None:
                    started(view)
                await view.stopping.wait()
                for task in tasks:
                    task.cancel()
    finally:
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    return 0


async def _table(
    model: FleetModel, out: TextIO, interval_s: float, clock: Callable[[], float]
) -> None:
    """Redraw the table every `interval_s`; in place on a terminal, appended otherwise."""
    tty = out.isatty()
    while True:
        lines = render_table(model, clock())
        with contextlib.suppress(OSError, ValueError):
            # ANSI: cursor home + clear screen (ECMA-48 CUP, ED).
            out.write(("\x1b[H\x1b[2J" if tty else "") + "\n".join(lines) + "\n")
            out.flush()
        await asyncio.sleep(interval_s)
