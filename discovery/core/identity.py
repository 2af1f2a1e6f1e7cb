"""Device identity: MAC normalisation, identity keys and `match =` rules."""

from __future__ import annotations

import re

from discovery.core.model import PrinterRecord

_HEX = re.compile(r"[0-9a-f]{12}")
_SEPARATORS = re.compile(r"[\s:.\-]")
_MAC_OCTETS = 6
_MDNS_SUFFIX = re.compile(r"\._[a-z0-9-]+\._(tcp|udp)\.local\.?$", re.IGNORECASE)


def normalise_mac(value: str | bytes) -> str | None:
    """Return `aa:bb:cc:dd:ee:ff` for a unicast MAC in any common spelling, else None."""
    raw: bytes | None
    if isinstance(value, bytes):
        if len(value) == _MAC_OCTETS:
            raw = value
        else:
            # Some agents return the MAC as ASCII text inside the OCTET STRING.
            try:
                return normalise_mac(value.decode("ascii"))
            except UnicodeDecodeError:
                return None
    else:
        text = value.strip().lower().removeprefix("0x")
        digits = _SEPARATORS.sub("", text)
        if _HEX.fullmatch(digits) and _separators_consistent(text):
            raw = bytes.fromhex(digits)
        elif len(value) == _MAC_OCTETS and all(ord(c) < 256 for c in value):
            # pysnmp renders a binary OCTET STRING as latin-1 text when asked for str().
            raw = value.encode("latin-1")
        else:
            raw = None
    if raw is None or len(raw) != _MAC_OCTETS:
        return None
    if raw in (b"\x00" * 6, b"\xff" * 6) or raw[0] & 0x01:
        # All-zero, broadcast and multicast (I/G bit, IEEE 802 §8.2) are never a device MAC.
        return None
    return ":".join(f"{b:02x}" for b in raw)


def _separators_consistent(text: str) -> bool:
    """Accept `aabbccddeeff`, `aa:bb:..`, `aa-bb-..` and Cisco `aabb.ccdd.eeff` only."""
    if ":" in text or "-" in text:
        parts = re.split(r"[:\-]", text)
        return len(parts) == 6 and all(len(p) == 2 for p in parts)
    if "." in text:
        parts = text.split(".")
        return len(parts) == 3 and all(len(p) == 4 for p in parts)
    return not any(c.isspace() for c in text)


def mdns_instance(name: str) -> str:
    """Strip `._type._tcp.local.` so a configured name matches however it was written."""
    return _MDNS_SUFFIX.sub("", name.strip()).rstrip(".")


def normalise_serial(value: str) -> str:
    """Serial numbers compare case-insensitively, without surrounding blanks."""
    return value.strip().upper()


def matches(
    record: PrinterRecord,
    *,
    mac: str | None = None,
    serial: str | None = None,
    mdns_name: str | None = None,
) -> bool:
    """True when every given criterion matches the record; no criterion never matches."""
    if mac is None and serial is None and mdns_name is None:
        return False
    if mac is not None:
        wanted = normalise_mac(mac)
        if wanted is None or record.mac != wanted:
            return False
    if serial is not None and (
        record.serial is None or normalise_serial(record.serial) != normalise_serial(serial)
    ):
        return False
    if mdns_name is not None:
        # DNS names compare case-insensitively (RFC 1035 §2.3.3).
        if record.mdns_name is None:
            return False
        if mdns_instance(record.mdns_name).casefold() != mdns_instance(mdns_name).casefold():
            return False
    return True


def identity_keys(record: PrinterRecord) -> tuple[str, ...]:
    """Identity keys, strongest first: MAC > serial > mDNS instance name > host."""
    keys: list[str] = []
    if record.mac:
        keys.append(f"mac:{record.mac}")
    if record.serial:
        keys.append(f"serial:{normalise_serial(record.serial)}")
    if record.mdns_name:
        keys.append(f"mdns:{mdns_instance(record.mdns_name).casefold()}")
    keys.append(f"host:{record.host}")
    return tuple(keys)
