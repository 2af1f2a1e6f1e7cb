"""Printers attached to this machine: USB (usblp), serial and Bluetooth ttys (pure).

USB printers of the USB Printer Class are bound by Linux's usblp driver, which publishes
each one's IEEE 1284 device ID at /sys/class/usbmisc/lpN/device/ieee1284_id (`MFG:EPSON;
MDL:TM-T20III;CMD:ESC/POS;...`). The stable path to configure is the one the udev rule in
deploy/udev creates from the USB serial number: lpN numbers follow plug order.

Serial and Bluetooth ports say nothing about what is attached: they are candidates
(`/dev/serial/by-id/*`, the stable names udev gives USB-serial adapters; `/dev/rfcomm*`,
Bluetooth SPP ports bound with `rfcomm bind`), identified only with `--identify`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from discovery.core.identify import Clues, identify, parse_device_id
from discovery.core.text import clean_text

STABLE_PREFIX = "/dev/receipt-printer-"
# udev replaces every character of a SYMLINK outside this set with "_" (udev(7), SYMLINK).
_UDEV_UNSAFE = re.compile(r"[^0-9A-Za-z#+\-.:=@_/\u0080-\U0010ffff]")


@dataclass(frozen=True)
class LocalPrinter:
    """A printer (or a candidate port) on this machine, with the path to configure."""

    kind: str  # "usb", "serial" or "bluetooth"
    path: str  # stable path for `device = ...`
    node: str  # the kernel's node now (/dev/usb/lp0, /dev/ttyUSB0, /dev/rfcomm0)
    vendor: str | None = None
    model: str | None = None
    command_set: str | None = None
    serial: str | None = None
    note: str = ""
    # Where the port is on this machine, for --identify (the path under the root read).
    at: str = ""

    def to_json(self) -> dict[str, object]:
        """Plain-JSON form for `discover --json`."""
        return {
            "kind": self.kind,
            "device": self.path,
            "node": self.node,
            "vendor": self.vendor,
            "model": self.model,
            "command_set": self.command_set,
            "serial": self.serial,
            "note": self.note,
        }


def udev_name(serial: str) -> str:
    """The symlink deploy/udev's rule makes for a USB serial number."""
    return STABLE_PREFIX + _UDEV_UNSAFE.sub("_", serial)


def usb_printer(lp: str, device_id: str | None, usb_serial: str | None) -> LocalPrinter:
    """One usblp printer from its 1284 device ID and its USB device's serial number."""
    text = clean_text(device_id) or ""
    ident = identify(Clues(device_id=text)) if text else None
    serial = clean_text(usb_serial) or parse_device_id(text).get("SN")
    node = f"/dev/usb/{lp}"
    if usb_serial and clean_text(usb_serial):
        path, note = udev_name(clean_text(usb_serial) or ""), ""
    else:
        path = node
        note = "no USB serial number: the udev rule cannot name it; lpN follows plug order"
    return LocalPrinter(
        kind="usb",
        path=path,
        node=node,
        vendor=ident.vendor if ident else None,
        model=ident.model if ident else None,
        command_set=ident.command_set if ident else None,
        serial=serial,
        note=note,
    )


def serial_candidate(by_id: str, node: str, at: str = "") -> LocalPrinter:
    """A USB-serial adapter's stable by-id name and the tty it points at."""
    path = f"/dev/serial/by-id/{by_id}"
    return LocalPrinter(
        kind="serial",
        path=path,
        node=node,
        note="serial port: what is attached is unknown (identify with --identify)",
        at=at or path,
    )


def rfcomm_candidate(name: str, at: str = "") -> LocalPrinter:
    """A bound Bluetooth SPP port (`rfcomm bind`): the mPOP and other Bluetooth printers."""
    return LocalPrinter(
        kind="bluetooth",
        path=f"/dev/{name}",
        node=f"/dev/{name}",
        note="Bluetooth SPP port: opening it connects (keep_open = true recommended)",
        at=at or f"/dev/{name}",
    )


def identified(
    candidate: LocalPrinter, vendor: str | None, model: str | None, command_set: str | None
) -> LocalPrinter:
    """A candidate port after `--identify` got an answer from it."""
    return LocalPrinter(
        kind=candidate.kind,
        path=candidate.path,
        node=candidate.node,
        vendor=vendor,
        model=model,
        command_set=command_set,
        serial=candidate.serial,
        note="identified by its status reply" if command_set else candidate.note,
        at=candidate.at,
    )


def render_blocks(printers: Sequence[LocalPrinter], used: set[str] | None = None) -> str:
    """Ready-to-paste `[printers.<id>]` tables with `device = ...` for local printers."""
    used = set() if used is None else used
    blocks = []
    for p in printers:
        base = " ".join(x for x in (p.vendor, p.model) if x) or f"{p.kind}-printer"
        slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")[:40] or "printer"
        pid, n = slug, 2
        while pid in used:
            pid, n = f"{slug}-{n}", n + 1
        used.add(pid)
        lines = [f"[printers.{pid}]", f"device = {json.dumps(p.path, ensure_ascii=False)}"]
        if p.command_set:
            lines.append(f"command_set = {json.dumps(p.command_set)}")
        else:
            lines.append('# command_set = "escpos"  # unknown: set escpos, star-prnt, ...')
        if p.kind == "bluetooth":
            lines.append("keep_open = true  # an rfcomm tty connects when opened")
        elif p.kind == "serial":
            lines.append("baudrate = 9600  # the printer's setting (DIP switches / utility)")
        lines.append("drawer = 1")
        if p.note and p.kind == "usb":
            lines.append(f"# {p.note}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
