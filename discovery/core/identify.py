"""Table-driven vendor, model and command-set identification (PROTOCOLS §1.4, §2.4, §4, §5)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# IANA Private Enterprise Numbers (PROTOCOLS §5.2). Star Micronics has none.
ENTERPRISE_VENDORS: dict[int, str] = {
    1248: "Epson",
    345: "Epson",
    33550: "Bixolon",
    33241: "Citizen",
    20438: "Citizen",
    41149: "SNBC",
    263: "Seiko Instruments",
}
_ENTERPRISES_PREFIX = "1.3.6.1.4.1."

# Free-text vendor patterns, tried in order: "SEIKO EPSON" must say Epson, not Seiko.
VENDOR_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bEPSON\b", re.IGNORECASE), "Epson"),
    (re.compile(r"\bBIXOLON\b", re.IGNORECASE), "Bixolon"),
    (re.compile(r"\bCITIZEN\b", re.IGNORECASE), "Citizen"),
    (re.compile(r"\bSNBC\b|\bBEIYANG\b", re.IGNORECASE), "SNBC"),
    (re.compile(r"\bSEWOO\b|\bLUKHAN\b", re.IGNORECASE), "Sewoo"),
    (re.compile(r"\bSEIKO\s+INSTRUMENTS\b|\bSII\b", re.IGNORECASE), "Seiko Instruments"),
    # Star model strings (PROTOCOLS §1.4) identify the vendor even without the word "Star".
    (
        re.compile(
            r"\bSTAR(\s+MICRONICS)?\b|\bSTR(_T)?-001\b|\bTSP\d{3}|\bMCP\d{2}|\bFVP10\b"
            r"|\bTUP\d{3}|\bmPOP\b|\bBSC10",
            re.IGNORECASE,
        ),
        "Star",
    ),
)

MODEL_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\bTM-[A-Z]?\d+[A-Z0-9]*(?:-[A-Z0-9]+)?", re.IGNORECASE),  # Epson TM-T20III, TM-m30
    re.compile(r"\b(?:TSP\d{3}[A-Z]*|MCP\d{2}[A-Z]*|FVP10|TUP\d{3}|BSC10(?:II)?|mPOP|SP7\d\d)\b"),
    re.compile(r"\bSRP-[A-Z0-9]+", re.IGNORECASE),  # Bixolon
    re.compile(r"\b(?:CT-[A-Z]\d+[A-Z0-9]*|CBM-?\d+[A-Z0-9]*|iDP-?\d+)", re.IGNORECASE),  # Citizen
    re.compile(r"\bRP-[A-Z]\d+[A-Z0-9]*", re.IGNORECASE),  # Seiko Instruments RP-F10
    re.compile(r"\bLK-T\d+[A-Z0-9]*", re.IGNORECASE),  # Sewoo LK-T21
)

# Star model → command set, first match wins (PROTOCOLS §1.4, Star SDK ModelCapability).
# Model rules come before the `(STR_T-001)`/`(STR-001)` suffix rules: the SP700 dot-impact
# reports `SP742 (STR-001)` but speaks STAR command mode (BEL/SUB, ASB), not StarPRNT, and
# a TSP100 (I-III) is raster-only Star Graphic whatever suffix its NIC adds.
STAR_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bTSP1[04]\dIV|\bTSP100IV", re.IGNORECASE), "star-prnt"),
    (re.compile(r"\bTSP1\d\d(?!\d)", re.IGNORECASE), "star-graphic"),  # TSP100/113/143 I-III
    (re.compile(r"\bSP7\d\d", re.IGNORECASE), "star-line"),  # SP700: STAR dot-impact mode
    (re.compile(r"\bSTR_T-001\b", re.IGNORECASE), "star-line"),
    (re.compile(r"\bSTR-001\b", re.IGNORECASE), "star-prnt"),
    (re.compile(r"\bMCP[23]\d|\bmPOP\b|\bBSC10II\b|\bL20\d\b", re.IGNORECASE), "star-prnt"),
    (re.compile(r"\bBSC10(?!II)\b", re.IGNORECASE), "escpos"),
    (re.compile(r"\bTSP(65\d|7\d\d|8\d\d)|\bFVP10\b|\bTUP5\d\d", re.IGNORECASE), "star-line"),
)

_DEVICE_ID_KEYS = {
    "MFG": "MFG",
    "MANUFACTURER": "MFG",
    "MDL": "MDL",
    "MODEL": "MDL",
    "CMD": "CMD",
    "COMMAND SET": "CMD",
    "COMMANDSET": "CMD",
    "SN": "SN",
    "SERN": "SN",
    "SERIALNUMBER": "SN",
}
_ESCPOS_VENDORS = frozenset({"Epson", "Bixolon", "Citizen", "SNBC", "Sewoo"})
_STAR_SUFFIX = re.compile(r"\s*\((?:STR_T|STR)-001\)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Clues:
    """Everything a source told us that can name the device."""

    sys_object_id: str | None = None
    device_id: str | None = None  # IEEE 1284 device ID text
    mfg: str | None = None  # explicit maker: mDNS usb_MFG, GS I 'B'
    mdl: str | None = None  # explicit model: mDNS usb_MDL, GS I 'C'
    cmd: str | None = None  # explicit command sets: mDNS usb_CMD
    texts: tuple[str, ...] = ()  # sysDescr, hrDeviceDescr, TXT ty/product


@dataclass(frozen=True)
class Identification:
    """Vendor, model and command set; any may be unknown."""

    vendor: str | None = None
    model: str | None = None
    command_set: str | None = None


def parse_device_id(text: str) -> dict[str, str]:
    """Parse an IEEE 1284 device ID (`MFG:EPSON;MDL:TM-T20;CMD:ESC/POS;`) to canonical keys."""
    fields: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition(":")
        if not sep:
            continue
        canonical = _DEVICE_ID_KEYS.get(key.strip().upper())
        if canonical and value.strip() and canonical not in fields:
            fields[canonical] = value.strip()
    return fields


def vendor_from_sys_object_id(oid: str) -> str | None:
    """Vendor from the enterprise number under 1.3.6.1.4.1 (PROTOCOLS §5.2)."""
    oid = oid.strip().lstrip(".")
    if not oid.startswith(_ENTERPRISES_PREFIX):
        return None
    pen = oid[len(_ENTERPRISES_PREFIX) :].split(".", 1)[0]
    return ENTERPRISE_VENDORS.get(int(pen)) if pen.isdigit() else None


def vendor_from_text(text: str) -> str | None:
    """Vendor named or implied by free text."""
    for pattern, vendor in VENDOR_PATTERNS:
        if pattern.search(text):
            return vendor
    return None


def model_from_text(text: str) -> str | None:
    """First known receipt-printer model name in free text."""
    for pattern in MODEL_PATTERNS:
        found = pattern.search(text)
        if found:
            return found.group(0)
    return None


def command_set_for(
    vendor: str | None, model_texts: tuple[str, ...], cmd: str | None
) -> str | None:
    """Command set from the 1284 CMD field, then the Star model rules, then the vendor.

    The device's own CMD field beats a rule on its model name: a TSP654II switched to
    ESC/POS emulation reports `MDL:TSP654II …;CMD:ESC/POS;` and must get ESC/POS. A bare
    `CMD:STAR` only says "a Star dialect"; the model rules say which one.
    """
    star_family = False
    if cmd:
        upper = cmd.upper()
        if "ESC/POS" in upper or "ESCPOS" in upper:
            return "escpos"
        if "STARPRNT" in upper:
            return "star-prnt"
        star_family = "STAR" in upper and vendor in ("Star", None)
    if vendor == "Star" or vendor is None:
        for text in model_texts:
            for pattern, command_set in STAR_RULES:
                if pattern.search(text):
                    return command_set
    if star_family:
        return "star-line"
    if vendor in _ESCPOS_VENDORS:
        return "escpos"
    return None


def identify(clues: Clues) -> Identification:
    """Combine clues: enterprise number > MFG field > free text, for vendor and model."""
    fields = parse_device_id(clues.device_id) if clues.device_id else {}
    mfg = clues.mfg or fields.get("MFG")
    mdl = clues.mdl or fields.get("MDL")
    cmd = clues.cmd or fields.get("CMD")
    texts = tuple(t for t in (mdl, *clues.texts, clues.device_id) if t)

    vendor = vendor_from_sys_object_id(clues.sys_object_id) if clues.sys_object_id else None
    if vendor is None and mfg:
        vendor = vendor_from_text(mfg) or _title(mfg)
    if vendor is None:
        vendor = next((v for v in map(vendor_from_text, texts) if v), None)

    model = None
    if mdl:
        model = model_from_text(mdl) or _clean_model(mdl, vendor)
    if model is None:
        model = next((m for m in map(model_from_text, texts) if m), None)
    if vendor is None and model is not None:
        vendor = vendor_from_text(model)
    return Identification(vendor, model, command_set_for(vendor, texts, cmd))


def _title(maker: str) -> str | None:
    """A maker we have no pattern for is kept as the device spelled it, if it is readable."""
    maker = maker.replace("\ufffd", "").strip()
    if sum(c.isascii() and c.isalnum() for c in maker) < 2:
        return None
    return maker[:64]


def _clean_model(mdl: str, vendor: str | None) -> str | None:
    model = _STAR_SUFFIX.sub("", mdl).strip()
    if vendor and model.upper().startswith(vendor.upper() + " "):
        model = model[len(vendor) + 1 :].strip()
    return model[:64] or None
