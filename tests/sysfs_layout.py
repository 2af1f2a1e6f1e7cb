"""A sysfs subset laid out as Linux does for usblp printers, for discovery and udev tests."""

from __future__ import annotations

import os
from pathlib import Path


def make_sysfs(root: Path, printers: list[tuple[str | None, str | None]]) -> Path:
    """One USB device per (1284 device ID, USB serial); usbmisc/lpN points at its node.

    As on a real system: /sys/class/usbmisc/lpN -> /sys/devices/.../<usb>/<intf>/usbmisc/lpN,
    whose `device` is the interface (with `ieee1284_id`, written by usblp) and whose
    interface's parent is the USB device (with `serial`). `uevent` and `subsystem` are there
    so udev can walk the tree.
    """
    for i, (device_id, serial) in enumerate(printers):
        usb = root / "devices" / "pci0000:00" / "0000:00:14.0" / "usb1" / f"1-{i + 1}"
        interface = usb / f"1-{i + 1}:1.0"
        node = interface / "usbmisc" / f"lp{i}"
        node.mkdir(parents=True)
        (root / "bus" / "usb").mkdir(parents=True, exist_ok=True)
        (root / "class" / "usbmisc").mkdir(parents=True, exist_ok=True)
        (usb / "uevent").write_text(f"DEVTYPE=usb_device\nDEVNAME=bus/usb/001/00{i + 2}\n")
        (interface / "uevent").write_text("DEVTYPE=usb_interface\nDRIVER=usblp\n")
        (node / "uevent").write_text(f"MAJOR=180\nMINOR={i}\nDEVNAME=usb/lp{i}\n")
        (node / "dev").write_text(f"180:{i}\n")
        for d, target in ((usb, root / "bus" / "usb"), (interface, root / "bus" / "usb")):
            (d / "subsystem").symlink_to(os.path.relpath(target, d))
        (node / "subsystem").symlink_to(os.path.relpath(root / "class" / "usbmisc", node))
        (node / "device").symlink_to(os.path.relpath(interface, node))
        if device_id is not None:
            (interface / "ieee1284_id").write_text(device_id + "\n")
        if serial is not None:
            (usb / "serial").write_text(serial + "\n")
        link = root / "class" / "usbmisc" / f"lp{i}"
        link.symlink_to(os.path.relpath(node, link.parent))
    return root
