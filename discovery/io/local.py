"""Read this machine's USB printers and serial/Bluetooth ports from sysfs and /dev.

Only reads: sysfs attributes and directory listings. Nothing is opened for writing here;
`--identify` sends status requests through the agent's device link, never this module.
Both roots are parameters, so tests lay out a directory like sysfs and /dev.
"""

from __future__ import annotations

import os
from pathlib import Path

from discovery.core.local import LocalPrinter, rfcomm_candidate, serial_candidate, usb_printer

MAX_ATTR = 4096


def _read(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            return f.read(MAX_ATTR).decode("utf-8", errors="replace")
    except OSError:
        return None


def usb_printers(sys_root: str = "/sys") -> list[LocalPrinter]:
    """usblp printers: /sys/class/usbmisc/lp*/device/ieee1284_id and the USB serial number."""
    base = Path(sys_root) / "class" / "usbmisc"
    try:
        names = sorted(n for n in os.listdir(base) if n.startswith("lp"))
    except OSError:
        return []
    found = []
    for lp in names:
        interface = base / lp / "device"  # the USB interface usblp is bound to
        device_id = _read(interface / "ieee1284_id")
        # The serial number is an attribute of the USB device, the interface's parent.
        serial = _read(interface.resolve().parent / "serial")
        found.append(usb_printer(lp, device_id, serial.strip() if serial else None))
    return found


def serial_ports(dev_root: str = "/dev") -> list[LocalPrinter]:
    """USB-serial adapters by their stable /dev/serial/by-id name, and bound rfcomm ports."""
    found = []
    by_id = Path(dev_root) / "serial" / "by-id"
    try:
        names = sorted(os.listdir(by_id))
    except OSError:
        names = []
    root = os.path.realpath(dev_root)
    for name in names:
        target = os.path.realpath(by_id / name)
        # The tty it points at, named as under /dev when the root read is not /dev itself.
        inside = os.path.commonpath([root, target]) == root
        node = "/dev/" + os.path.relpath(target, root) if inside else target
        found.append(serial_candidate(name, node, at=str(by_id / name)))
    try:
        rfcomm = sorted(n for n in os.listdir(dev_root) if n.startswith("rfcomm"))
    except OSError:
        rfcomm = []
    found += [rfcomm_candidate(name, at=str(Path(dev_root) / name)) for name in rfcomm]
    return found
