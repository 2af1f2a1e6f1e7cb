"""Brands and models of receipt printers, mapped to command sets and drawer defaults (pure).

Facts per model come from ../shared/PROTOCOLS.md §1.4 (Star emulations and model strings),
§1.1 and §1.2 (ESC/POS pulse and real-time pulse support).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.core.commands import CommandSet


@dataclass(frozen=True)
class PrinterModel:
    """One catalogue entry."""

    id: str
    vendor: str
    name: str
    command_set: CommandSet
    drawers: int = 2
    pulse_on_ms: int = 100
    pulse_off_ms: int = 500
    realtime_pulse: bool = False
    raster_only: bool = False
    integrated_drawer: bool = False
    escpos_profile: str | None = None
    reports: tuple[str, ...] = ()
    notes: str = ""

    def to_json(self) -> dict[str, object]:
        """JSON-ready view for `drawer-agent models --json`."""
        return {
            "id": self.id,
            "vendor": self.vendor,
            "name": self.name,
            "command_set": str(self.command_set),
            "drawers": self.drawers,
            "pulse_on_ms": self.pulse_on_ms,
            "pulse_off_ms": self.pulse_off_ms,
            "realtime_pulse": self.realtime_pulse,
            "raster_only": self.raster_only,
            "integrated_drawer": self.integrated_drawer,
            "escpos_profile": self.escpos_profile,
            "notes": self.notes,
        }


_TSP100_NOTE = (
    "Raster-only (Star Graphic): text and ESC/POS are ignored, so the Windows-driver "
    "steps the browser extension asked for do not apply; the agent sends Star BEL/SUB, "
    "which raster mode accepts. On TSP100III LAN enable the raw 9100 port "
    "('9100 Multi Session') in the printer's web page if connections are refused."
)
_STARLINE_NOTE = (
    "Star Line mode by default; if the printer was switched to ESC/POS emulation, "
    'set command_set = "escpos" instead.'
)

# Model ids are the contract of `[printers.*] model = ...`; never rename one, add an alias.
MODELS: tuple[PrinterModel, ...] = (
    PrinterModel(
        "epson-tm-t20ii",
        "Epson",
        "TM-T20II",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="TM-T20II",
    ),
    PrinterModel(
        "epson-tm-t20iii",
        "Epson",
        "TM-T20III",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="TM-T20II",
        notes="python-escpos 3.1 has no TM-T20III profile; TM-T20II's matches.",
    ),
    PrinterModel(
        "epson-tm-t88v",
        "Epson",
        "TM-T88V",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="TM-T88V",
    ),
    PrinterModel(
        "epson-tm-t88vi",
        "Epson",
        "TM-T88VI",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="TM-T88V",
    ),
    PrinterModel(
        "epson-tm-t88vii",
        "Epson",
        "TM-T88VII",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="TM-T88V",
    ),
    PrinterModel(
        "epson-tm-m30ii",
        "Epson",
        "TM-m30II",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="default",
    ),
    PrinterModel(
        "epson-tm-m30iii",
        "Epson",
        "TM-m30III",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="default",
    ),
    PrinterModel(
        "star-tsp100iii",
        "Star",
        "TSP100III (TSP143III)",
        CommandSet.STAR_GRAPHIC,
        raster_only=True,
        reports=("TSP113", "TSP143"),
        notes=_TSP100_NOTE,
    ),
    PrinterModel(
        "star-tsp100iv",
        "Star",
        "TSP100IV (TSP143IV)",
        CommandSet.STAR_PRNT,
        reports=("TSP143IV (STR-001)",),
    ),
    PrinterModel(
        "star-tsp650ii",
        "Star",
        "TSP650II",
        CommandSet.STAR_LINE,
        escpos_profile="TSP600",
        notes=_STARLINE_NOTE,
        reports=("TSP654II (STR_T-001)", "TSP654 (STR_T-001)", "TSP651 (STR_T-001)"),
    ),
    PrinterModel(
        "star-tsp700ii",
        "Star",
        "TSP700II",
        CommandSet.STAR_LINE,
        notes=_STARLINE_NOTE,
        reports=("TSP743II (STR_T-001)",),
    ),
    PrinterModel(
        "star-tsp800ii",
        "Star",
        "TSP800II",
        CommandSet.STAR_LINE,
        notes=_STARLINE_NOTE,
        reports=("TSP847II (STR_T-001)",),
    ),
    PrinterModel(
        "star-mcprint2",
        "Star",
        "mC-Print2",
        CommandSet.STAR_PRNT,
        reports=("MCP20 (STR-001)", "MCP21 (STR-001)"),
    ),
    PrinterModel(
        "star-mcprint3", "Star", "mC-Print3", CommandSet.STAR_PRNT, reports=("MCP31 (STR-001)",)
    ),
    PrinterModel(
        "star-mpop",
        "Star",
        "mPOP",
        CommandSet.STAR_PRNT,
        drawers=1,
        integrated_drawer=True,
        notes="Printer and drawer in one unit: only drawer 1 exists, its sensor is built in.",
    ),
    PrinterModel("bixolon-srp-350ii", "Bixolon", "SRP-350II", CommandSet.ESCPOS),
    PrinterModel("bixolon-srp-350iii", "Bixolon", "SRP-350III", CommandSet.ESCPOS),
    PrinterModel("bixolon-srp-330ii", "Bixolon", "SRP-330II", CommandSet.ESCPOS),
    PrinterModel(
        "citizen-ct-s310ii",
        "Citizen",
        "CT-S310II",
        CommandSet.ESCPOS,
        pulse_off_ms=500,
        notes="Citizen asks for a duty cycle ON/(ON+OFF) <= 0.2 (PROTOCOLS §1.1).",
    ),
    PrinterModel(
        "citizen-ct-s801iii",
        "Citizen",
        "CT-S801III",
        CommandSet.ESCPOS,
        notes="Citizen asks for a duty cycle ON/(ON+OFF) <= 0.2 (PROTOCOLS §1.1).",
    ),
    PrinterModel(
        "generic-escpos-80mm",
        "Generic",
        "ESC/POS 80 mm",
        CommandSet.ESCPOS,
        escpos_profile="default",
        notes="Any ESC/POS clone (Xprinter, Rongta, ...). Try drawer = 2 if "
        "drawer 1 does not open: cables wire pin 2 or pin 5.",
    ),
)

_BY_ID = {m.id: m for m in MODELS}


def get(model_id: str) -> PrinterModel | None:
    """Look a model up by catalogue id."""
    return _BY_ID.get(model_id)


def ids() -> tuple[str, ...]:
    """All catalogue ids, in catalogue order."""
    return tuple(_BY_ID)


def for_reported(vendor: str | None, model: str | None) -> PrinterModel | None:
    """Best catalogue entry for a vendor/model string reported by discovery."""
    if not model:
        return None
    wanted = _squash(model)
    for entry in MODELS:
        if vendor is not None and entry.vendor.lower() != vendor.lower():
            continue
        names = {_squash(r) for r in entry.reports}
        names |= {_squash(r.split(" (")[0]) for r in entry.reports}
        names.add(_squash(entry.name.split(" (")[0]))
        if wanted in names:
            return entry
    return None


def _squash(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())
