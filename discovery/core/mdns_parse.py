"""DNS-SD service info → Sighting (PROTOCOLS §4; TXT keys per RFC 6763 §6)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from discovery.core.identify import Clues, identify
from discovery.core.identity import mdns_instance
from discovery.core.model import Sighting
from discovery.core.text import clean_text

PDL_DATASTREAM = "_pdl-datastream._tcp.local."
PRINTER = "_printer._tcp.local."
IPP = "_ipp._tcp.local."
HTTP = "_http._tcp.local."
PRINT_TYPES = (PDL_DATASTREAM, PRINTER, IPP)
ALL_TYPES = (*PRINT_TYPES, HTTP)
# RFC 6763 §6.1 caps a TXT string at 255 bytes; a sane printer TXT is far below this many keys.
MAX_TXT_KEYS = 64


def decode_txt(properties: Mapping[bytes, bytes | None]) -> dict[str, str]:
    """TXT keys are case-insensitive (RFC 6763 §6.4); the first occurrence wins (§6.4)."""
    txt: dict[str, str] = {}
    for raw_key, raw_value in list(properties.items())[:MAX_TXT_KEYS]:
        key = clean_text(raw_key, 64)
        value = clean_text(raw_value)
        if key and value and key.lower() not in txt:
            txt[key.lower()] = value
    return txt


def parse_service(
    service_type: str,
    name: str,
    *,
    addresses: Sequence[str],
    port: int | None,
    properties: Mapping[bytes, bytes | None],
    now: float,
) -> Sighting | None:
    """Build a Sighting from a resolved service; None when it has no usable IPv4 address."""
    host = next((a for a in addresses if _is_ipv4(a)), None)
    instance = clean_text(mdns_instance(name))
    if host is None or instance is None:
        return None
    txt = decode_txt(properties)
    product = txt.get("product", "").strip("() ") or None
    found = identify(
        Clues(
            mfg=txt.get("usb_mfg"),
            mdl=txt.get("usb_mdl"),
            cmd=txt.get("usb_cmd"),
            texts=tuple(t for t in (txt.get("ty"), product) if t),
        )
    )
    model = found.model or product
    return Sighting(
        source="mdns",
        host=host,
        seen_at=now,
        # Only the raw AppSocket service advertises the port we send pulses to.
        port=port if service_type.lower() == PDL_DATASTREAM and port else None,
        vendor=found.vendor,
        model=model[:64] if model else None,
        command_set=found.command_set,
        serial=txt.get("usb_ser"),
        name=instance,
        mdns_name=instance,
        enrich_only=service_type.lower() == HTTP,
    )


def _is_ipv4(address: str) -> bool:
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return True
