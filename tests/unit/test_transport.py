"""Which kind of character device a printer path names (pure)."""

import pytest

from agent.core.transport import DeviceKind, check_device_path, device_kind


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/dev/usb/lp0", DeviceKind.USBLP),
        ("/dev/usb/lp15", DeviceKind.USBLP),
        ("/dev/lp0", DeviceKind.USBLP),
        ("/dev/receipt-printer-X5E0000001", DeviceKind.USBLP),  # deploy/udev's stable name
        ("/dev/ttyUSB0", DeviceKind.TTY),
        ("/dev/ttyACM0", DeviceKind.TTY),
        ("/dev/rfcomm0", DeviceKind.TTY),
        ("/dev/pts/3", DeviceKind.TTY),
        ("/dev/serial/by-id/usb-Prolific_USB-Serial-if00-port0", DeviceKind.TTY),
        ("/dev/serial/by-id/lp0", DeviceKind.TTY),  # not usblp's directory
        ("/dev/usb/lpx", DeviceKind.TTY),
    ],
)
def test_device_kind(path, kind):
    assert device_kind(path) is kind


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/dev/usb/lp0", None),
        ("dev/ttyUSB0", "absolute"),
        ("/tmp/tty", "not under /dev"),
        ("/dev/../etc/passwd", "'..'"),
    ],
)
def test_check_device_path(path, problem):
    found = check_device_path(path)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize(
    ("path", "major", "minor", "kind"),
    [
        ("/dev/drawer-printer", 180, 0, DeviceKind.USBLP),  # usblp renamed by docker devices:
        ("/dev/drawer-printer", 188, 0, DeviceKind.TTY),  # ttyUSB
        ("/dev/usb/lp0", 180, 96, DeviceKind.TTY),  # major 180, not a printer minor
        ("/dev/usb/lp0", 166, 0, DeviceKind.TTY),  # the number wins over the name
    ],
)
def test_device_number_wins_over_the_name(path, major, minor, kind):
    assert device_kind(path, major=major, minor=minor) is kind
