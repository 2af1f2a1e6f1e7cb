"""The fleet view's model (pure): what every shop's agent and printers last said over MQTT.

Fed with (topic, payload, now) from the three fleet topics; read by the metrics collector
and the terminal table. Bad payloads are counted, never raised: one broken agent must not
blind the ops team to the others.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

# The subscriptions (MQTT 3.1.1 §4.7 wildcards); `+` matches exactly one level.
AGENT_STATUS = "shops/+/agent/status"
PRINTER_STATUS = "shops/+/printers/+/status"
ALERTS = "shops/+/alerts"
SUBSCRIPTIONS = (AGENT_STATUS, PRINTER_STATUS, ALERTS)

_SEG = r"([A-Za-z0-9_-]{1,64})"  # shop and printer ids, as the agent's settings allow
_AGENT = re.compile(rf"^shops/{_SEG}/agent/status$")
_PRINTER = re.compile(rf"^shops/{_SEG}/printers/{_SEG}/status$")
_ALERTS = re.compile(rf"^shops/{_SEG}/alerts$")
PAPER_STATES = ("ok", "near_end", "out")


@dataclass
class PrinterView:
    """One printer as its agent last reported it (retained, on change)."""

    printer_id: str
    online: bool = False
    drawer_open: bool | None = None
    paper: str | None = None
    cover_open: bool | None = None
    last_seen: float | None = None  # the agent's last successful probe (its clock)
    last_error: str | None = None


@dataclass
class ShopView:
    """One shop: its agent's retained status, its printers, its alerts."""

    shop_id: str
    up: bool = False
    version: str | None = None
    broker: str | None = None
    started_at: float | None = None
    last_seen: float = 0.0  # when any message of this shop last arrived here (our clock)
    alerts: dict[str, int] = field(default_factory=dict)  # by kind
    printers: dict[str, PrinterView] = field(default_factory=dict)
    printer_ids: tuple[str, ...] = ()  # as the agent announced them, if it did

    def printer(self, printer_id: str) -> PrinterView:
        """The printer's view, created on first mention."""
        view = self.printers.get(printer_id)
        if view is None:
            view = self.printers[printer_id] = PrinterView(printer_id)
        return view


class FleetModel:
    """Every shop seen so far; `observe` is the only writer."""

    def __init__(self) -> None:
        self.shops: dict[str, ShopView] = {}
        self.messages = 0
        self.malformed = 0

    def shop(self, shop_id: str) -> ShopView:
        """The shop's view, created on first mention (an expected shop, or a message)."""
        view = self.shops.get(shop_id)
        if view is None:
            view = self.shops[shop_id] = ShopView(shop_id)
        return view

    def observe(self, topic: str, payload: bytes, now: float) -> str | None:
        """Apply one message; return the shop it changed, or None when it was not usable."""
        self.messages += 1
        if m := _AGENT.match(topic):
            body = _object(payload)
            if body is None or not isinstance(body.get("state"), str):
                return self._bad()
            shop = self.shop(m[1])
            shop.last_seen = now
            _agent_status(shop, body)
            return shop.shop_id
        if m := _PRINTER.match(topic):
            body = _object(payload)
            if body is None:
                return self._bad()
            shop = self.shop(m[1])
            shop.last_seen = now
            _printer_status(shop.printer(m[2]), body)
            return shop.shop_id
        if m := _ALERTS.match(topic):
            body = _object(payload)
            kind = body.get("kind") if body is not None else None
            if not isinstance(kind, str) or not re.fullmatch(r"[a-z_]{1,40}", kind):
                return self._bad()
            shop = self.shop(m[1])
            shop.last_seen = now
            shop.alerts[kind] = shop.alerts.get(kind, 0) + 1
            return shop.shop_id
        return self._bad()

    def exact_topics(self, shop_id: str) -> list[str]:
        """Retained topics of a shop by exact name, for brokers that deliver retained
        messages only to exact-topic subscriptions (RabbitMQ 3.x, docs/brokers.md)."""
        shop = self.shops.get(shop_id)
        ids = sorted(set(shop.printer_ids) | set(shop.printers)) if shop else []
        return [f"shops/{shop_id}/agent/status"] + [
            f"shops/{shop_id}/printers/{pid}/status" for pid in ids
        ]

    def _bad(self) -> str | None:
        self.malformed += 1
        return None


def _object(payload: bytes) -> dict[str, object] | None:
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _agent_status(shop: ShopView, body: dict[str, object]) -> None:
    shop.up = body["state"] == "online"
    if not shop.up:
        return  # the last will says only {"state": "offline"}: keep what we knew
    shop.version = _text(body.get("version"))
    shop.broker = _text(body.get("broker"))
    shop.started_at = _float(body.get("started_at"))
    ids = body.get("printer_ids")
    if isinstance(ids, list) and all(isinstance(i, str) for i in ids):
        shop.printer_ids = tuple(str(i) for i in ids)


def _printer_status(view: PrinterView, body: dict[str, object]) -> None:
    view.online = body.get("online") is True
    drawer = body.get("drawer_open")
    view.drawer_open = drawer if isinstance(drawer, bool) else None
    paper = body.get("paper")
    view.paper = paper if paper in PAPER_STATES else None
    cover = body.get("cover_open")
    view.cover_open = cover if isinstance(cover, bool) else None
    view.last_seen = _float(body.get("last_seen")) or view.last_seen
    view.last_error = _text(body.get("last_error"))


def _text(value: object) -> str | None:
    return value[:200] if isinstance(value, str) else None


def _float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def render_table(model: FleetModel, now: float, width: int = 100) -> list[str]:
    """The live terminal table: one line per printer (or per shop without printers)."""
    header = f"{'SHOP':<20} {'AGENT':<8} {'VERSION':<9} {'PRINTER':<12} {'PRINTER':<8} "
    header += f"{'PAPER':<9} {'DRAWER':<7} {'ALERTS':>6} {'SEEN':>7}"
    lines = [header[:width]]
    for shop in sorted(model.shops.values(), key=lambda s: s.shop_id):
        agent = "up" if shop.up else "DOWN"
        alerts = str(sum(shop.alerts.values()))
        seen = _age(now - shop.last_seen) if shop.last_seen else "never"
        printers: list[PrinterView | None] = [shop.printers[p] for p in sorted(shop.printers)]
        for p in printers or [None]:
            if p is None:
                cols = ("-", "-", "-", "-")
            else:
                drawer = {True: "OPEN", False: "closed", None: "?"}[p.drawer_open]
                cols = (p.printer_id, "online" if p.online else "OFFLINE", p.paper or "?", drawer)
            line = (
                f"{shop.shop_id[:20]:<20} {agent:<8} {(shop.version or '?')[:9]:<9} "
                f"{cols[0][:12]:<12} {cols[1]:<8} {cols[2]:<9} {cols[3]:<7} {alerts:>6} {seen:>7}"
            )
            lines.append(line[:width])
    up = sum(1 for s in model.shops.values() if s.up)
    total = sum(len(s.printers) for s in model.shops.values())
    online = sum(1 for s in model.shops.values() for p in s.printers.values() if p.online)
    lines.append(
        f"{len(model.shops)} shops, {up} agents up; {total} printers, {online} online; "
        f"{model.messages} messages, {model.malformed} unusable"
    )
    return lines


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{max(0, int(seconds))}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    return f"{int(seconds // 3600)}h"
