"""SNMP varbinds → Sighting (PROTOCOLS §5.1 OIDs)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from discovery.core.identify import Clues, identify
from discovery.core.identity import normalise_mac
from discovery.core.model import Sighting
from discovery.core.text import clean_text

SYS_DESCR = "1.3.6.1.2.1.1.1"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2"
SYS_NAME = "1.3.6.1.2.1.1.5"
IF_PHYS_ADDRESS = "1.3.6.1.2.1.2.2.1.6"
HR_DEVICE_DESCR = "1.3.6.1.2.1.25.3.2.1.3"
HR_PRINTER_STATUS = "1.3.6.1.2.1.25.3.5.1.1"
PRT_GENERAL_SERIAL = "1.3.6.1.2.1.43.5.1.1.17"
PPM_1284_DEVICE_ID = "1.3.6.1.4.1.2699.1.2.1.2.1.1.3"

# One GETNEXT per host fetches the first instance under each prefix: scalars come back as
# `.0` and table columns as their first row, whatever the agent's ifIndex/hrDeviceIndex is.
QUERY_PREFIXES = (
    SYS_DESCR,
    SYS_OBJECT_ID,
    SYS_NAME,
    IF_PHYS_ADDRESS,
    HR_DEVICE_DESCR,
    PRT_GENERAL_SERIAL,
    PPM_1284_DEVICE_ID,
    HR_PRINTER_STATUS,
)
PRINTER_STATUS = {1: "other", 2: "unknown", 3: "idle", 4: "printing", 5: "warmup"}
_PRINTERISH = re.compile(r"print|receipt|pos\b|thermal", re.IGNORECASE)
_OID = re.compile(r"\d+(\.\d+)+")


@dataclass(frozen=True)
class Oid:
    """An OBJECT IDENTIFIER value, distinct from text."""

    value: str


# The adapter maps pysnmp values to these: OCTET STRING → bytes, INTEGER family → int,
# OBJECT IDENTIFIER → Oid, NULL / noSuchObject / noSuchInstance / endOfMibView → None.
SnmpValue = bytes | int | Oid | None


@dataclass(frozen=True)
class SnmpReply:
    """Fields of interest, each None when missing or of the wrong type."""

    sys_descr: str | None = None
    sys_object_id: str | None = None
    sys_name: str | None = None
    mac: str | None = None
    hr_device_descr: str | None = None
    serial: str | None = None
    device_id: str | None = None
    printer_status: str | None = None


def first_under(varbinds: Sequence[tuple[str, SnmpValue]], prefix: str) -> SnmpValue:
    """Value of the first varbind inside `prefix`; GETNEXT may have walked past it."""
    for oid, value in varbinds:
        if oid.lstrip(".").startswith(prefix + "."):
            return value
    return None


def parse_reply(varbinds: Sequence[tuple[str, SnmpValue]]) -> SnmpReply:
    """Pick each field out of a GETNEXT response, ignoring wrong types."""

    def text(prefix: str) -> str | None:
        value = first_under(varbinds, prefix)
        return clean_text(value) if isinstance(value, bytes) else None

    oid = first_under(varbinds, SYS_OBJECT_ID)
    mac = first_under(varbinds, IF_PHYS_ADDRESS)
    status = first_under(varbinds, HR_PRINTER_STATUS)
    device_id = first_under(varbinds, PPM_1284_DEVICE_ID)
    return SnmpReply(
        sys_descr=text(SYS_DESCR),
        sys_object_id=oid.value if isinstance(oid, Oid) and _OID.fullmatch(oid.value) else None,
        sys_name=text(SYS_NAME),
        mac=normalise_mac(mac) if isinstance(mac, bytes) else None,
        hr_device_descr=text(HR_DEVICE_DESCR),
        serial=text(PRT_GENERAL_SERIAL),
        device_id=clean_text(strip_1284_length(device_id))
        if isinstance(device_id, bytes)
        else None,
        printer_status=PRINTER_STATUS.get(status) if isinstance(status, int) else None,
    )


def strip_1284_length(value: bytes) -> bytes:
    """Drop the 2-byte big-endian length that starts a 1284 device ID, if an agent kept it."""
    if len(value) >= 2 and int.from_bytes(value[:2], "big") in (len(value), len(value) - 2):
        return value[2:]
    return value


def to_sighting(host: str, reply: SnmpReply, now: float) -> Sighting | None:
    """A Sighting for printers only: routers and PCs also answer SNMP on a LAN."""
    found = identify(
        Clues(
            sys_object_id=reply.sys_object_id,
            device_id=reply.device_id,
            texts=tuple(t for t in (reply.hr_device_descr, reply.sys_descr) if t),
        )
    )
    printerish = (
        found.vendor is not None
        or reply.device_id is not None
        or reply.printer_status is not None
        or reply.serial is not None
        or any(_PRINTERISH.search(t) for t in (reply.sys_descr, reply.hr_device_descr) if t)
    )
    if not printerish:
        return None
    return Sighting(
        source="snmp",
        host=host,
        seen_at=now,
        vendor=found.vendor,
        model=found.model,
        command_set=found.command_set,
        mac=reply.mac,
        serial=reply.serial,
        name=reply.sys_name,
    )
