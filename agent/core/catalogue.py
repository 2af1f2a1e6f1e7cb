"""Brands and models of receipt printers, mapped to command sets and drawer defaults (pure).

Facts per model come from ../shared/PROTOCOLS.md §1.4 (Star emulations and model strings),
§1.1 and §1.2 (ESC/POS pulse and real-time pulse support), and the vendor documents cited in
each entry's `source`. Where a fact was not found in a vendor document it says so ("[U]"):
verify such entries on site before relying on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.core.commands import CommandSet

# How a printer can be reached. The agent itself speaks `lan`/`wifi` (TCP 9100); the
# others need a device transport (a tty, /dev/usb/lp*, or an RFCOMM-bound Bluetooth port).
CONNECTIONS = ("lan", "wifi", "usb", "bluetooth", "serial")

# Sources cited below, by key (full references in ../shared/PROTOCOLS.md where noted).
_EPSON_DC4 = (
    "Epson ESC/POS Command Reference, DLE DC4 fn=1 'Generate pulse in real-time', model list "
    "(download4.epson.biz/sec_pubs/pos/reference_en/escpos/dle_dc4_fn1.html)"
)
_STAR_SDK = (
    "Star StarPRNT SDK ModelCapability.java (emulation, model-name strings per interface, "
    "canUseCashDrawer), star-micronics/StarPRNT-SDK-Android-Java @8bbd354"
)
_STAR_IO10 = (
    "StarIO10 StarPrinterModel (TSP100IIILAN/IIIW/IIIU, SP700, SM_L200) and its USB "
    "device filter, star-micronics/react-native-star-io10 src/StarPrinterModel.ts, "
    "README.md @f081f16"
)
_BIXOLON_DC4 = (
    "Bixolon command manuals list DLE DC4 fn=1: SRP-350/352plusA&C Rev 1.03 p.8, "
    "SRP-350/352plusIII Rev 1.00 command list, SRP-330 Rev 1.01 command list"
)
_CITIZEN_DC4 = (
    "Citizen command reference, DLE DC4 fn m t (fn = 1) support models CT-S280/S300/S2000/"
    "S4000/S310 (azmanual.top/manuals/66818 p.220)"
)


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
    connections: tuple[str, ...] = ()
    source: str = ""
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
            "connections": list(self.connections),
            "reports": list(self.reports),
            "escpos_profile": self.escpos_profile,
            "source": self.source,
            "notes": self.notes,
        }


_TSP100_RASTER = (
    "Raster-only (Star Graphic): text and ESC/POS are ignored, so the Windows-driver "
    "steps the browser extension asked for do not apply; the agent sends Star BEL/SUB, "
    "which raster mode accepts."
)
_TSP100_NOTE = (
    _TSP100_RASTER + " On TSP100III LAN enable the raw 9100 port "
    "('9100 Multi Session') in the printer's web page if connections are refused."
)
_TSP100_USB_NOTE = (
    _TSP100_RASTER
    + " Its USB port may be in Star's 'vendor class' mode (USB class 255), which Linux's "
    "usblp does not drive: /dev/usb/lp* appears only in printer class [U]."
)
_STARLINE_NOTE = (
    "Star Line mode by default; if the printer was switched to ESC/POS emulation, "
    'set command_set = "escpos" instead.'
)
_CITIZEN_DUTY = "Citizen asks for a duty cycle ON/(ON+OFF) <= 0.2 (PROTOCOLS §1.1)."
_LAN_ESCPOS = ("lan", "usb", "serial")

# Model ids are the contract of `[printers.*] model = ...`; never rename one, add an alias.
MODELS: tuple[PrinterModel, ...] = (
    # --- Epson (ESC/POS) -------------------------------------------------------------------
    PrinterModel(
        "epson-tm-t20",
        "Epson",
        "TM-T20",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="TM-T20II",
        reports=("TM-T20",),
        connections=("lan", "usb", "serial"),
        source=f"{_EPSON_DC4}; TM-T20 TRG M00028503 (serial pin table p.83, network appendix)",
        notes="python-escpos 3.1 has no TM-T20 profile; TM-T20II's matches.",
    ),
    PrinterModel(
        "epson-tm-t20ii",
        "Epson",
        "TM-T20II",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="TM-T20II",
        reports=("TM-T20II",),
        connections=("lan", "usb", "serial"),
        source=f"{_EPSON_DC4}; connections [U]",
    ),
    PrinterModel(
        "epson-tm-t20iii",
        "Epson",
        "TM-T20III",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="TM-T20II",
        reports=("TM-T20III",),
        connections=("lan", "usb", "serial"),
        source=f"{_EPSON_DC4}; TM-T20III TRG p.86 (USB printer and vendor class)",
        notes="python-escpos 3.1 has no TM-T20III profile; TM-T20II's matches.",
    ),
    PrinterModel(
        "epson-tm-t82iii",
        "Epson",
        "TM-T82III",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="default",
        reports=("TM-T82III",),
        connections=("lan", "usb", "serial"),
        source=f"{_EPSON_DC4}; connections [U]",
    ),
    PrinterModel(
        "epson-tm-t88iv",
        "Epson",
        "TM-T88IV",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="TM-T88IV",
        reports=("TM-T88IV",),
        connections=("lan", "wifi", "usb", "serial"),
        source=(
            f"{_EPSON_DC4}; TM-T88IV User's Manual 410423401 (serial DIP switches); "
            "LAN/wireless through its UB-E/UB-R interface boards [U]"
        ),
        notes="Interfaces are plug-in boards: what it reaches depends on the one fitted.",
    ),
    PrinterModel(
        "epson-tm-t88v",
        "Epson",
        "TM-T88V",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="TM-T88V",
        reports=("TM-T88V",),
        connections=("lan", "usb", "serial"),
        source=f"{_EPSON_DC4}; connections [U]",
    ),
    PrinterModel(
        "epson-tm-t88vi",
        "Epson",
        "TM-T88VI",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="TM-T88V",
        reports=("TM-T88VI",),
        connections=("lan", "usb", "serial"),
        source=f"{_EPSON_DC4}; connections [U]",
    ),
    PrinterModel(
        "epson-tm-t88vii",
        "Epson",
        "TM-T88VII",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="TM-T88V",
        reports=("TM-T88VII",),
        connections=("lan", "usb", "serial"),
        source=f"{_EPSON_DC4}; connections [U]",
    ),
    PrinterModel(
        "epson-tm-m30",
        "Epson",
        "TM-m30",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="default",
        reports=("TM-m30",),
        connections=("lan", "wifi", "usb", "bluetooth"),
        source=f"{_EPSON_DC4}; connections per model variant [U]",
        notes="First generation, common with iPad POS. Wi-Fi or Bluetooth by variant.",
    ),
    PrinterModel(
        "epson-tm-m30ii",
        "Epson",
        "TM-m30II",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="default",
        reports=("TM-m30II", "TM-m30II-H", "TM-m30II-NT", "TM-m30II-S", "TM-m30II-SL"),
        connections=("lan", "wifi", "usb", "bluetooth"),
        source=f"{_EPSON_DC4}; connections per model variant [U]",
    ),
    PrinterModel(
        "epson-tm-m30iii",
        "Epson",
        "TM-m30III",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="default",
        reports=("TM-m30III", "TM-m30III-H"),
        connections=("lan", "wifi", "usb", "bluetooth"),
        source=f"{_EPSON_DC4}; connections per model variant [U]",
    ),
    PrinterModel(
        "epson-tm-m50",
        "Epson",
        "TM-m50",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="default",
        reports=("TM-m50",),
        connections=("lan", "usb"),
        source=f"{_EPSON_DC4}; connections [U]",
    ),
    PrinterModel(
        "epson-tm-u220",
        "Epson",
        "TM-U220 (impact)",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        escpos_profile="TM-U220",
        reports=("TM-U220", "TM-U220A", "TM-U220B", "TM-U220D", "TM-U220PA", "TM-U220PB"),
        connections=("lan", "wifi", "usb", "serial"),
        source=(
            f"{_EPSON_DC4}; Epson APG ESC p: TM-U220 stretches an OFF time < 100 ms to 100 ms "
            "(PROTOCOLS §1.1); LAN/wireless through UB-E/UB-R boards [U]"
        ),
        notes="Dot-impact. Interfaces are plug-in boards: it reaches what the fitted one does.",
    ),
    # --- Star (Star Line / StarPRNT / Star Graphic) -----------------------------------------
    PrinterModel(
        "star-tsp100iii",
        "Star",
        "TSP100III (TSP143III)",
        CommandSet.STAR_GRAPHIC,
        raster_only=True,
        reports=("TSP113", "TSP143", "TSP143III", "TSP143IIIBI", "TSP100-"),
        connections=("lan", "wifi", "usb", "bluetooth"),
        source=f"{_STAR_SDK}; {_STAR_IO10}",
        notes=_TSP100_NOTE + " Pick the variant id when you know it.",
    ),
    PrinterModel(
        "star-tsp143iiilan",
        "Star",
        "TSP143IIILAN (TSP100III)",
        CommandSet.STAR_GRAPHIC,
        raster_only=True,
        reports=("TSP143IIILAN", "TSP100IIILAN"),
        connections=("lan",),
        source=f"{_STAR_SDK}; {_STAR_IO10}",
        notes=_TSP100_NOTE,
    ),
    PrinterModel(
        "star-tsp143iiiw",
        "Star",
        "TSP143IIIW (TSP100III)",
        CommandSet.STAR_GRAPHIC,
        raster_only=True,
        reports=("TSP143IIIW", "TSP100IIIW"),
        connections=("wifi",),
        source=f"{_STAR_SDK}; {_STAR_IO10}",
        notes=_TSP100_NOTE,
    ),
    PrinterModel(
        "star-tsp143iiiu",
        "Star",
        "TSP143IIIU (TSP100III)",
        CommandSet.STAR_GRAPHIC,
        raster_only=True,
        reports=("TSP143IIIU", "TSP100IIIU", "Star TSP143IIIU"),
        connections=("usb",),
        source=f"{_STAR_SDK}; {_STAR_IO10} (USB product id 0003: TSP100IIU+/IIIU/IV)",
        notes=_TSP100_USB_NOTE,
    ),
    PrinterModel(
        "star-tsp100iv",
        "Star",
        "TSP100IV (TSP143IV)",
        CommandSet.STAR_PRNT,
        reports=("TSP143IV (STR-001)", "TSP143IV", "TSP143IV-UE", "TSP143IV-UEWB"),
        connections=("lan", "wifi", "usb", "bluetooth"),
        source=f"{_STAR_SDK} (LAN 'TSP143IV (STR-001)', USB 'Star TSP143IV-UE'); {_STAR_IO10}",
        notes="Wi-Fi and Bluetooth on the UEWB variant.",
    ),
    PrinterModel(
        "star-tsp650ii",
        "Star",
        "TSP650II",
        CommandSet.STAR_LINE,
        escpos_profile="TSP600",
        notes=_STARLINE_NOTE,
        reports=("TSP654II (STR_T-001)", "TSP654 (STR_T-001)", "TSP651 (STR_T-001)"),
        connections=("lan", "usb", "serial"),
        source=f"{_STAR_SDK}; {_STAR_IO10} (USB product id 0001); serial [U]",
    ),
    PrinterModel(
        "star-tsp700ii",
        "Star",
        "TSP700II",
        CommandSet.STAR_LINE,
        notes=_STARLINE_NOTE,
        reports=("TSP743II (STR_T-001)", "TSP743 (STR_T-001)", "TSP700II"),
        connections=("lan", "usb", "serial"),
        source=f"{_STAR_SDK}; {_STAR_IO10} (USB product id 0001); serial [U]",
    ),
    PrinterModel(
        "star-tsp800ii",
        "Star",
        "TSP800II",
        CommandSet.STAR_LINE,
        notes=_STARLINE_NOTE,
        reports=("TSP847II (STR_T-001)", "TSP847 (STR_T-001)", "TSP800II"),
        connections=("lan", "usb", "serial"),
        source=f"{_STAR_SDK}; {_STAR_IO10} (USB product id 0001); serial [U]",
    ),
    PrinterModel(
        "star-fvp10",
        "Star",
        "FVP10",
        CommandSet.STAR_LINE,
        reports=("FVP10 (STR_T-001)", "FVP10"),
        connections=("lan", "usb"),
        source=f"{_STAR_SDK} (LAN 'FVP10 (STR_T-001)', canUseCashDrawer)",
        notes=_STARLINE_NOTE,
    ),
    PrinterModel(
        "star-tup500",
        "Star",
        "TUP500 (TUP592/TUP542)",
        CommandSet.STAR_LINE,
        drawers=0,
        reports=("TUP592 (STR_T-001)", "TUP542 (STR_T-001)", "TUP592", "TUP542"),
        connections=("lan", "usb"),
        source=f"{_STAR_SDK} (LAN 'TUP592 (STR_T-001)', canUseCashDrawer = false)",
        notes="Kiosk printer: Star's SDK gives it no cash drawer, so it cannot open one.",
    ),
    PrinterModel(
        "star-sp742",
        "Star",
        "SP742 (SP700, impact)",
        CommandSet.STAR_LINE,
        reports=("SP742 (STR-001)", "SP742", "SP742ML", "SP742MU", "SP742MD", "SP742MW"),
        connections=("lan", "wifi", "usb", "serial"),
        source=(
            f"{_STAR_SDK} (SP700: StarDotImpact, LAN 'SP742 (STR-001)'); {_STAR_IO10} "
            "(USB product id 0001); wifi/serial by interface variant [U]"
        ),
        notes="Dot-impact, STAR command mode: BEL/SUB and ESC BEL work as in Star Line mode "
        "(STAR Command Spec Rev 0.70 pp.3-49..3-51).",
    ),
    PrinterModel(
        "star-mcprint2",
        "Star",
        "mC-Print2",
        CommandSet.STAR_PRNT,
        reports=("MCP20 (STR-001)", "MCP21 (STR-001)", "mC-Print2", "mC-Print2-"),
        connections=("lan", "usb", "bluetooth"),
        source=f"{_STAR_SDK} (LAN 'MCP20 (STR-001)', Bluetooth 'mC-Print2-', USB); {_STAR_IO10}",
    ),
    PrinterModel(
        "star-mcprint3",
        "Star",
        "mC-Print3",
        CommandSet.STAR_PRNT,
        reports=("MCP31 (STR-001)", "MCP31L", "MCP31LB", "mC-Print3", "mC-Print3-"),
        connections=("lan", "usb", "bluetooth"),
        source=f"{_STAR_SDK} (LAN 'MCP31 (STR-001)', Bluetooth 'mC-Print3-', USB); {_STAR_IO10}",
        notes="Bluetooth on the MCP31LB variant.",
    ),
    PrinterModel(
        "star-mpop",
        "Star",
        "mPOP",
        CommandSet.STAR_PRNT,
        drawers=1,
        integrated_drawer=True,
        reports=("mPOP", "STAR mPOP-"),
        connections=("usb", "bluetooth"),
        source=f"{_STAR_SDK} (Bluetooth 'STAR mPOP-', USB 'mPOP'; canSetDrawerOpenStatus false)",
        notes="Printer and drawer in one unit: only drawer 1 exists, its sensor is built in.",
    ),
    PrinterModel(
        "star-sm-l200",
        "Star",
        "SM-L200 (mobile)",
        CommandSet.STAR_PRNT,
        drawers=0,
        reports=("SM-L200", "STAR L200-", "STAR L204-"),
        connections=("bluetooth",),
        source=f"{_STAR_SDK} (Bluetooth 'STAR L200-', canUseCashDrawer = false); {_STAR_IO10}",
        notes="Mobile printer with no drawer kick connector: it cannot open a drawer.",
    ),
    # --- Bixolon (ESC/POS) -----------------------------------------------------------------
    PrinterModel(
        "bixolon-srp-350ii",
        "Bixolon",
        "SRP-350II",
        CommandSet.ESCPOS,
        reports=("SRP-350II",),
        connections=_LAN_ESCPOS,
        source="connections [U]",
    ),
    PrinterModel(
        "bixolon-srp-350iii",
        "Bixolon",
        "SRP-350III",
        CommandSet.ESCPOS,
        reports=("SRP-350III", "SRP-352III"),
        connections=_LAN_ESCPOS,
        source="connections [U]",
    ),
    PrinterModel(
        "bixolon-srp-350plusiii",
        "Bixolon",
        "SRP-350plusIII",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        reports=("SRP-350plusIII", "SRP-352plusIII"),
        connections=("lan", "wifi", "usb", "bluetooth", "serial"),
        source=f"{_BIXOLON_DC4}; connections by interface variant [U]",
    ),
    PrinterModel(
        "bixolon-srp-330ii",
        "Bixolon",
        "SRP-330II",
        CommandSet.ESCPOS,
        reports=("SRP-330II",),
        connections=_LAN_ESCPOS,
        source="connections [U]",
    ),
    PrinterModel(
        "bixolon-srp-330iii",
        "Bixolon",
        "SRP-330III",
        CommandSet.ESCPOS,
        reports=("SRP-330III", "SRP-332III"),
        connections=("lan", "wifi", "usb", "bluetooth", "serial"),
        source="connections by interface variant [U]; DLE DC4 not confirmed for this model",
    ),
    PrinterModel(
        "bixolon-srp-q300",
        "Bixolon",
        "SRP-Q300",
        CommandSet.ESCPOS,
        reports=("SRP-Q300", "SRP-Q302"),
        connections=("lan", "wifi", "usb", "bluetooth", "serial"),
        source="connections by interface variant [U]; DLE DC4 not confirmed for this model",
    ),
    PrinterModel(
        "bixolon-srp-e300",
        "Bixolon",
        "SRP-E300",
        CommandSet.ESCPOS,
        reports=("SRP-E300", "SRP-E302"),
        connections=_LAN_ESCPOS,
        source="connections [U]; DLE DC4 not confirmed for this model",
    ),
    # --- Citizen (ESC/POS) -----------------------------------------------------------------
    PrinterModel(
        "citizen-ct-s310ii",
        "Citizen",
        "CT-S310II",
        CommandSet.ESCPOS,
        pulse_off_ms=500,
        reports=("CT-S310II",),
        connections=("lan", "usb", "bluetooth", "serial"),
        source="connections by interface variant [U]",
        notes=_CITIZEN_DUTY,
    ),
    PrinterModel(
        "citizen-ct-s801iii",
        "Citizen",
        "CT-S801III",
        CommandSet.ESCPOS,
        reports=("CT-S801III",),
        connections=("lan", "wifi", "usb", "bluetooth", "serial"),
        source="connections by interface variant [U]",
        notes=_CITIZEN_DUTY,
    ),
    PrinterModel(
        "citizen-ct-e351",
        "Citizen",
        "CT-E351",
        CommandSet.ESCPOS,
        reports=("CT-E351",),
        connections=("lan", "wifi", "usb", "bluetooth"),
        source=(
            "Citizen command reference covers CT-D150/E351 (ASB, GS ( E); DLE DC4 not listed "
            "for it, so not used); connections by variant [U]"
        ),
        notes=_CITIZEN_DUTY,
    ),
    PrinterModel(
        "citizen-ct-s4000",
        "Citizen",
        "CT-S4000",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        reports=("CT-S4000",),
        connections=("lan", "usb", "serial"),
        source=f"{_CITIZEN_DC4}; GS I model 'CT-S4000'; connections by interface board [U]",
        notes=_CITIZEN_DUTY,
    ),
    # --- Sewoo (ESC/POS) -------------------------------------------------------------------
    PrinterModel(
        "sewoo-lk-t21",
        "Sewoo",
        "LK-T21",
        CommandSet.ESCPOS,
        realtime_pulse=True,
        reports=("LK-T21",),
        connections=("lan", "usb", "serial"),
        source=(
            "LK-T21 Technical Manual p.24 (DLE EOT), p.26 (DLE DC4 n m t, executed even "
            "off-line) (easymanua.ls/lukhan/lk-t21); connections [U]"
        ),
    ),
    # --- Generic ESC/POS -------------------------------------------------------------------
    PrinterModel(
        "generic-escpos-80mm",
        "Generic",
        "ESC/POS 80 mm",
        CommandSet.ESCPOS,
        escpos_profile="default",
        reports=("XP-80C", "XP-80", "RP326", "POS-80"),
        connections=CONNECTIONS,
        source="ESC/POS clones (PROTOCOLS §1.1); real-time pulse not assumed",
        notes="Any ESC/POS clone (Xprinter, Rongta, ...). Try drawer = 2 if "
        "drawer 1 does not open: cables wire pin 2 or pin 5.",
    ),
    PrinterModel(
        "generic-escpos-58mm",
        "Generic",
        "ESC/POS 58 mm",
        CommandSet.ESCPOS,
        escpos_profile="POS-5890",
        reports=("POS-5890", "POS-58", "ZJ-5870", "XP-58", "NT-5890K"),
        connections=("usb", "bluetooth", "serial"),
        source="python-escpos 58 mm profiles (POS-5890, ZJ-5870); real-time pulse not assumed",
        notes="58 mm clones: many have no drawer connector, and some answer DLE EOT 1 only "
        "(paper then reads unknown). Try drawer = 2 if drawer 1 does not open.",
    ),
)

_BY_ID = {m.id: m for m in MODELS}

# Words a reported string may start with before the model name (mDNS `ty`, sysDescr).
_VENDOR_WORDS = re.compile(
    r"^\s*(?:seiko\s+epson(?:\s+corp\.?)?|epson|star(?:\s+micronics)?|bixolon|citizen|"
    r"sewoo(?:\s+tech)?|lukhan)\b[\s:,-]*",
    re.IGNORECASE,
)
_VENDOR_ALIASES = {"sewoo": {"sewoo", "lukhan", "sewootech"}, "epson": {"epson", "seikoepson"}}
_PARENTHESISED = re.compile(r"\([^)]*\)")


def get(model_id: str) -> PrinterModel | None:
    """Look a model up by catalogue id."""
    return _BY_ID.get(model_id)


def ids() -> tuple[str, ...]:
    """All catalogue ids, in catalogue order."""
    return tuple(_BY_ID)


def for_reported(vendor: str | None, model: str | None) -> PrinterModel | None:
    """Catalogue entry for a model string a printer reports, or None when not known.

    Accepts what discovery sees: an IEEE 1284 `MDL:` value (`TSP654II (STR_T-001)`), a
    GS I model name, an SNMP sysDescr or mDNS `ty`/`product` (`EPSON TM-m30`, `(TM-m30)`).
    Matching is exact on the model name after dropping the vendor words, parentheses,
    case and punctuation: an unknown variant is None rather than a wrong guess.
    """
    wanted = _key(model or "")
    if not wanted:
        return None
    for entry in MODELS:
        if vendor is not None and entry.vendor != "Generic" and not _same_vendor(entry, vendor):
            continue
        if wanted in _names(entry):
            return entry
    return None


def _key(text: str) -> str:
    """Model name reduced to what identifies it: `Star TSP143IIILAN (STR_T-001)` -> tsp143iiilan."""
    bare = _PARENTHESISED.sub(" ", text).strip() or text.strip("() ")
    return _squash(_VENDOR_WORDS.sub("", bare))


def _names(entry: PrinterModel) -> set[str]:
    return {_key(r) for r in (*entry.reports, entry.name)} - {""}


def _same_vendor(entry: PrinterModel, vendor: str) -> bool:
    said, own = _squash(vendor), _squash(entry.vendor)
    return said.startswith(own) or said in _VENDOR_ALIASES.get(own, ())


def _squash(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())
