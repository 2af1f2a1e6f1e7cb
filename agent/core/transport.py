"""How a printer is reached: TCP 9100, or a character device of one of two kinds (pure).

- `usblp`: a USB Printer Class device bound by Linux's usblp driver (`/dev/usb/lp0`);
  the udev rule in deploy/udev names it `/dev/receipt-printer-<serial>`.
- `tty`: everything else, a serial port (RS-232, USB-serial `/dev/ttyUSB0`, `/dev/ttyACM0`,
  `/dev/serial/by-id/...`) or a Bluetooth SPP port bound with `rfcomm` (`/dev/rfcomm0`).
  These take a baud rate and flow control; the agent sets termios raw mode.
"""

from __future__ import annotations

import enum
import re
from pathlib import PurePosixPath

USBLP_NAME = re.compile(r"^(?:lp\d+|receipt-printer-.+)$")
FLOW_CONTROLS = ("none", "rtscts", "xonxoff")


class DeviceKind(enum.StrEnum):
    """The two kinds of character-device printer."""

    USBLP = "usblp"
    TTY = "tty"


# The character-device major of usblp nodes (USB_MAJOR, Documentation/admin-guide/devices.txt:
# "180 char USB devices ... 0 = /dev/usb/lp0 First USB printer").
USB_MAJOR = 180
USBLP_MINORS = range(16)


def device_kind(path: str, *, major: int | None = None, minor: int | None = None) -> DeviceKind:
    """The kind of device at `path` (pass the resolved path where a symlink may hide it).

    `major`/`minor`, when the caller could stat the node, win over the name: a node passed
    into a container under another name (docker `devices:`) is still usblp.
    """
    if major is not None:
        if major == USB_MAJOR and minor in USBLP_MINORS:
            return DeviceKind.USBLP
        return DeviceKind.TTY
    name = PurePosixPath(path).name
    parent = PurePosixPath(path).parent.name
    if USBLP_NAME.match(name) and (parent in ("usb", "dev") or name.startswith("receipt-")):
        return DeviceKind.USBLP
    return DeviceKind.TTY


def check_device_path(path: str) -> str | None:
    """Why `path` cannot be a printer device, or None when it can."""
    pure = PurePosixPath(path)
    if not pure.is_absolute():
        return f"{path!r} must be an absolute path such as /dev/usb/lp0 or /dev/ttyUSB0"
    if not str(pure).startswith("/dev/"):
        return f"{path!r} is not under /dev"
    if ".." in pure.parts:
        return f"{path!r} must not contain '..'"
    return None
