"""What the installer console shows and decides, without I/O (pure).

The read models its `Backend` hands over (shop health, events, discovery progress, a test
pulse's outcome), the choices offered when a drawer did not open, the brand → model picker
fed by the catalogue, and the small rules of its login (pairing codes, redirects).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agent.core import catalogue
from agent.core.health import PrinterHealth
from agent.core.settings import PrinterSettings
from discovery.core.model import PrinterRecord

# A pairing code lives 10 minutes (issue 10 §4) and is 8 digits: at the login rate limit
# (5 a minute per client), guessing one in its lifetime is about 1 in 2 million.
PAIRING_TTL_S = 600.0
PAIRING_DIGITS = 8
_CODE = re.compile(r"^\d{8}$")


@dataclass(frozen=True)
class ShopHealth:
    """Agent and broker state, and each printer's last probe."""

    shop_id: str
    version: str
    ready: bool
    reason: str | None
    broker_connected: bool
    broker: str
    started_at: float | None = None
    printers: Mapping[str, PrinterHealth] = field(default_factory=dict)
    # Where each printer is reached now ("host:port"), once resolved (a `match` may move it).
    addresses: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EventView:
    """One event of the audit trail, as the journal lists it."""

    event_id: str
    type: str
    terminal_id: str | None
    printer_id: str | None
    received_at: float
    status: str | None
    attempts: int
    detail: str
    drawer_open: bool | None
    latency_ms: float | None = None
    source: str = "mqtt"

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> EventView:
        """From the ledger's JSON view of a row (agent.io.ledger.EventRow.to_json)."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in row.items() if k in names})  # type: ignore[arg-type]

    def to_json(self) -> dict[str, object]:
        """Plain JSON."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class DiscoveryView:
    """A console-started discovery: its progress and what it found so far."""

    running: bool = False
    done: int = 0
    total: int = 0
    subnets: tuple[str, ...] = ()
    started_at: float | None = None
    finished_at: float | None = None
    found: tuple[PrinterRecord, ...] = ()
    error: str | None = None

    @property
    def percent(self) -> int:
        if self.total <= 0:
            return 100 if self.finished_at is not None else 0
        return min(100, round(100 * self.done / self.total))

    def to_json(self) -> dict[str, object]:
        """The `GET /api/discovery` body: progress, then each printer with its catalogue id."""
        return {
            "running": self.running,
            "done": self.done,
            "total": self.total,
            "percent": self.percent,
            "subnets": list(self.subnets),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "found": [found_json(r) for r in self.found],
        }


@dataclass(frozen=True)
class KickResult:
    """What a test pulse did: its outcome and the drawer sensor read after it."""

    status: str
    drawer_open: bool | None
    detail: str = ""
    event_id: str | None = None

    def to_json(self) -> dict[str, object]:
        """Plain JSON."""
        return {
            "status": self.status,
            "drawer_open": self.drawer_open,
            "detail": self.detail,
            "event_id": self.event_id,
        }


def found_json(record: PrinterRecord) -> dict[str, object]:
    """A discovered printer with the catalogue entry it was identified as (or none)."""
    model = catalogue.for_reported(record.vendor, record.model)
    return {
        **record.to_json(),
        "catalogue_id": None if model is None else model.id,
        "brand": (model.vendor if model else None) or brand_of(record.vendor),
        "identity": {
            k: v
            for k, v in (
                ("mac", record.mac),
                ("serial", record.serial),
                ("mdns_name", record.mdns_name),
            )
            if v
        },
    }


def brand_of(vendor: str | None) -> str | None:
    """The catalogue's spelling of a reported vendor (`EPSON`, `Seiko Epson` → `Epson`)."""
    if not vendor:
        return None
    squashed = "".join(c for c in vendor.lower() if c.isalnum())
    for brand in brands():
        own = brand.lower()
        if squashed.startswith(own) or own in squashed:
            return brand
    return None


def brands() -> tuple[str, ...]:
    """Brands of the catalogue in a picker's order (Generic last)."""
    names = sorted({m.vendor for m in catalogue.MODELS} - {"Generic"})
    return (*names, "Generic")


def models_by_brand() -> dict[str, list[catalogue.PrinterModel]]:
    """The brand → model picker of the seed, fed by the catalogue, in catalogue order."""
    out: dict[str, list[catalogue.PrinterModel]] = {b: [] for b in brands()}
    for m in catalogue.MODELS:
        out[m.vendor].append(m)
    return out


def suggested_id(record: PrinterRecord, taken: Sequence[str]) -> str:
    """A free printer id for a discovered printer: its model's name, else `printer`."""
    model = catalogue.for_reported(record.vendor, record.model)
    base = (model.name if model else record.model) or "printer"
    base = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")[:48] or "printer"
    candidate, n = base, 2
    while candidate in taken:
        candidate = f"{base}-{n}"
        n += 1
    return candidate


@dataclass(frozen=True)
class Alternative:
    """One thing to try when the drawer did not open: a key of the printer and its value."""

    kind: str  # "drawer" | "open_level" | "printer"
    value: str


def alternatives(
    printer: PrinterSettings, tried: Sequence[tuple[int, str]] = ()
) -> list[Alternative]:
    """What to try next after "No, the drawer did not open".

    The other kick connector (pin 2 ↔ pin 5) when the model has two, the other sensor
    polarity (when the sensor disagreed with the person watching), and another printer.
    `tried` lists the (drawer, open_level) pairs already tried, so none is offered twice.
    """
    out: list[Alternative] = []
    model = catalogue.get(printer.model) if printer.model else None
    level = printer.drawer_open_level or "low"
    other_drawer = 2 if printer.drawer == 1 else 1
    if (model is None or model.drawers >= 2) and (other_drawer, level) not in tried:
        out.append(Alternative("drawer", str(other_drawer)))
    other_level = "high" if level == "low" else "low"
    if (printer.drawer, other_level) not in tried:
        out.append(Alternative("open_level", other_level))
    out.append(Alternative("printer", ""))
    return out


def trial_table(table: Mapping[str, object], drawer: int, open_level: str) -> dict[str, object]:
    """A printer's table with the connector and polarity being tried."""
    return {**table, "drawer": drawer, "drawer_open_level": open_level}


def normalize_code(text: str) -> str | None:
    """A typed pairing code (`1234 5678`, `1234-5678`) as its 8 digits, or None."""
    digits = "".join(c for c in text if not c.isspace() and c != "-")
    return digits if _CODE.match(digits) else None


def code_hash(code: str) -> str:
    """What is stored for a pairing code: never the code itself."""
    return hashlib.sha256(f"drawer-agent-pairing:{code}".encode()).hexdigest()


def spelled_code(code: str) -> str:
    """`12345678` → `1234-5678`, easier to read out and type."""
    return f"{code[:4]}-{code[4:]}"


def safe_next(target: str | None, default: str = "/shop") -> str:
    """A redirect target that stays on this console (no scheme, host or `//`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(not c.isprintable() for c in target):
        return default
    return target
