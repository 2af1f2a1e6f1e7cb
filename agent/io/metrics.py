"""Prometheus metrics, one CollectorRegistry per agent so several agents can share a process,
and the fleet view's collector over its model."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from agent.core.errors import AgentError
from agent.core.fleet import FleetModel

if TYPE_CHECKING:
    from agent.core.acks import AckStatus
    from agent.core.kick import Outcome

PREFIX = "drawer_agent"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Receipt to write; a pulse is a few ms on a LAN, retries push it to seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Every metric the agent exports; gauges that mirror state are read at scrape time."""

    def __init__(
        self,
        *,
        connected: Callable[[], bool] = lambda: False,
        ledger_size: Callable[[], int] = lambda: 0,
        event_type: Callable[[str], str | None] = lambda _eid: None,
    ) -> None:
        """`connected`, `ledger_size` are read when scraped; `event_type` looks types up."""
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(
            f"{PREFIX}_events",
            "Received events by type and final status",
            ("type", "status"),
            registry=r,
        )
        self.pulses = Counter(
            f"{PREFIX}_pulses", "Drawer pulses written, by printer", ("printer", "kind"), registry=r
        )
        self.retries = Counter(
            f"{PREFIX}_retries",
            "Extra attempts needed to reach a printer, by printer",
            ("printer",),
            registry=r,
        )
        self.latency = Histogram(
            f"{PREFIX}_dispatch_latency_seconds",
            "Receipt of an event to the pulse written",
            ("printer",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.printer_up = Gauge(
            f"{PREFIX}_printer_up",
            "1 when the last probe reached the printer",
            ("printer",),
            registry=r,
        )
        self.drawer_open = Gauge(
            f"{PREFIX}_drawer_open",
            "1 open, 0 closed, -1 unknown (last sensor read)",
            ("printer",),
            registry=r,
        )
        self.probe_seconds = Histogram(
            f"{PREFIX}_probe_seconds",
            "Status probe round trip",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.broker_connected = Gauge(
            f"{PREFIX}_broker_connected", "1 while connected to the MQTT broker", registry=r
        )
        self.ledger_events = Gauge(
            f"{PREFIX}_ledger_events", "Events held in the ledger", registry=r
        )
        self.alerts = Counter(
            f"{PREFIX}_alerts", "Alerts published, by kind", ("kind",), registry=r
        )

        self.broker_connected.set_function(lambda: float(connected()))
        self.ledger_events.set_function(lambda: _or_nan(ledger_size))
        self._event_type = event_type

    def event(self, event_id: str | None, status: AckStatus) -> None:
        """One message reached a final status; refused ones have no trusted type."""
        type_ = None
        if event_id is not None and status.value != "rejected":
            try:
                type_ = self._event_type(event_id)
            except AgentError:
                type_ = None  # the ledger is unreadable; /readyz says so
        self.events.labels(type_ or "unknown", status.value).inc()

    def outcome(self, outcome: Outcome) -> None:
        """A dispatched job finished: pulses, retries and receipt-to-write latency."""
        printer_id = outcome.job.printer_id
        if outcome.attempts > 1:
            self.retries.labels(printer_id).inc(outcome.attempts - 1)
        if outcome.sent_at is None:
            return
        self.pulses.labels(printer_id, "realtime" if outcome.realtime else "buffered").inc()
        if outcome.latency_ms is not None:
            self.latency.labels(printer_id).observe(outcome.latency_ms / 1000.0)

    def probed(self, printer_id: str, *, up: bool, drawer_open: bool | None) -> None:
        """A probe finished."""
        self.printer_up.labels(printer_id).set(1.0 if up else 0.0)
        self.drawer_open.labels(printer_id).set(-1.0 if drawer_open is None else float(drawer_open))

    def render(self) -> bytes:
        """Prometheus text exposition."""
        return generate_latest(self.registry)


def _or_nan(read: Callable[[], int]) -> float:
    """A gauge read from an adapter: NaN (no value) while the adapter fails."""
    try:
        return float(read())
    except AgentError:
        return math.nan


FLEET_PREFIX = "drawer_fleet"
# Every series the fleet view exports (deploy/grafana's dashboard may use only these).
FLEET_SERIES = {
    f"{FLEET_PREFIX}_agent_up": ("gauge", "1 while the shop's agent says online (retained status)"),
    f"{FLEET_PREFIX}_agent_info": ("gauge", "Always 1; the agent's version and broker node"),
    f"{FLEET_PREFIX}_agent_started_timestamp_seconds": ("gauge", "When the agent started"),
    f"{FLEET_PREFIX}_last_seen_timestamp_seconds": (
        "gauge",
        "When a message of this shop last reached the fleet view",
    ),
    f"{FLEET_PREFIX}_printer_online": ("gauge", "1 when the agent's last probe reached it"),
    f"{FLEET_PREFIX}_printer_paper": ("gauge", "1 for the paper state last reported"),
    f"{FLEET_PREFIX}_printer_drawer_open": ("gauge", "1 open, 0 closed, -1 unknown"),
    f"{FLEET_PREFIX}_printer_last_seen_timestamp_seconds": (
        "gauge",
        "The agent's last successful probe of the printer",
    ),
    f"{FLEET_PREFIX}_alerts": ("counter", "Alerts seen since the fleet view started, by kind"),
    f"{FLEET_PREFIX}_shops": ("gauge", "Shops known to the fleet view"),
    f"{FLEET_PREFIX}_messages": ("counter", "Messages received"),
    f"{FLEET_PREFIX}_unusable_messages": ("counter", "Messages that were not usable"),
}


class FleetCollector:
    """Reads the fleet model at scrape time: one series per shop and per printer, and a
    shop or printer that disappears from the model disappears from the scrape."""

    def __init__(self, model: FleetModel) -> None:
        self.model = model
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def describe(self) -> list[Metric]:
        """Nothing to pre-declare: keeps `register` from calling collect()."""
        return []

    def collect(self) -> Iterator[Metric]:
        """One family per name of FLEET_SERIES."""
        p = FLEET_PREFIX
        fam = {
            name: (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
                name, doc, labels=_FLEET_LABELS.get(name, ())
            )
            for name, (kind, doc) in FLEET_SERIES.items()
        }
        for shop in self.model.shops.values():
            s = shop.shop_id
            fam[f"{p}_agent_up"].add_metric([s], 1.0 if shop.up else 0.0)
            fam[f"{p}_agent_info"].add_metric([s, shop.version or "", shop.broker or ""], 1.0)
            if shop.started_at is not None:
                fam[f"{p}_agent_started_timestamp_seconds"].add_metric([s], shop.started_at)
            fam[f"{p}_last_seen_timestamp_seconds"].add_metric([s], shop.last_seen)
            for kind, count in shop.alerts.items():
                fam[f"{p}_alerts"].add_metric([s, kind], float(count))
            for pid, printer in shop.printers.items():
                fam[f"{p}_printer_online"].add_metric([s, pid], float(printer.online))
                if printer.paper is not None:
                    fam[f"{p}_printer_paper"].add_metric([s, pid, printer.paper], 1.0)
                drawer = -1.0 if printer.drawer_open is None else float(printer.drawer_open)
                fam[f"{p}_printer_drawer_open"].add_metric([s, pid], drawer)
                if printer.last_seen is not None:
                    fam[f"{p}_printer_last_seen_timestamp_seconds"].add_metric(
                        [s, pid], printer.last_seen
                    )
        fam[f"{p}_shops"].add_metric([], float(len(self.model.shops)))
        fam[f"{p}_messages"].add_metric([], float(self.model.messages))
        fam[f"{p}_unusable_messages"].add_metric([], float(self.model.malformed))
        yield from fam.values()

    def render(self) -> bytes:
        """Prometheus text exposition."""
        return generate_latest(self.registry)


_FLEET_LABELS: dict[str, tuple[str, ...]] = {
    f"{FLEET_PREFIX}_agent_up": ("shop",),
    f"{FLEET_PREFIX}_agent_info": ("shop", "version", "broker"),
    f"{FLEET_PREFIX}_agent_started_timestamp_seconds": ("shop",),
    f"{FLEET_PREFIX}_last_seen_timestamp_seconds": ("shop",),
    f"{FLEET_PREFIX}_printer_online": ("shop", "printer"),
    f"{FLEET_PREFIX}_printer_paper": ("shop", "printer", "state"),
    f"{FLEET_PREFIX}_printer_drawer_open": ("shop", "printer"),
    f"{FLEET_PREFIX}_printer_last_seen_timestamp_seconds": ("shop", "printer"),
    f"{FLEET_PREFIX}_alerts": ("shop", "kind"),
}
