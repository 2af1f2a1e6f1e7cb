"""This machine's USB printers (sysfs laid out in a tmp dir) and serial/Bluetooth candidates."""

import json
import subprocess
import sys
import tomllib

import pytest

from agent.core.errors import ConfigError
from agent.core.settings import validate
from agent.devtools.emulator import PtyPrinter
from discovery.core.local import render_blocks, udev_name, usb_printer
from discovery.io.local import serial_ports, usb_printers
from tests.sysfs_layout import make_sysfs

EPSON_ID = "MFG:EPSON;CMD:ESC/POS;MDL:TM-T20III;CLS:PRINTER;DES:EPSON TM-T20III;"
STAR_ID = "MFG:STAR;CMD:STAR;MDL:TSP143IIIU (STR_T-001);CLS:PRINTER;"


@pytest.mark.parametrize(
    ("device_id", "serial", "expected"),
    [
        (
            EPSON_ID,
            "X5E0000001",
            ("Epson", "TM-T20III", "escpos", "/dev/receipt-printer-X5E0000001"),
        ),
        (
            STAR_ID,
            "2581518070600391",
            ("Star", "TSP143IIIU", "star-graphic", "/dev/receipt-printer-2581518070600391"),
        ),
        (EPSON_ID, None, ("Epson", "TM-T20III", "escpos", "/dev/usb/lp0")),
        ("garbage\x00\xff", "S N/1", (None, None, None, "/dev/receipt-printer-S_N/1")),
        (None, "A1", (None, None, None, "/dev/receipt-printer-A1")),
    ],
)
def test_usb_printer_from_its_1284_id(device_id, serial, expected):
    p = usb_printer("lp0", device_id, serial)
    assert (p.vendor, p.model, p.command_set, p.path) == expected
    assert p.node == "/dev/usb/lp0"
    assert ("plug order" in p.note) is (serial is None)


def test_udev_name_replaces_what_udev_replaces():
    assert udev_name("AB 12*x") == "/dev/receipt-printer-AB_12_x"
    assert udev_name("a.b-c_d:e=f@g#h+i") == "/dev/receipt-printer-a.b-c_d:e=f@g#h+i"


def test_reader_on_a_tmp_sysfs(tmp_path):
    root = make_sysfs(tmp_path / "sys", [(EPSON_ID, "X5E0000001"), (STAR_ID, None)])
    found = usb_printers(str(root))
    assert [(p.node, p.path, p.model, p.serial) for p in found] == [
        ("/dev/usb/lp0", "/dev/receipt-printer-X5E0000001", "TM-T20III", "X5E0000001"),
        ("/dev/usb/lp1", "/dev/usb/lp1", "TSP143IIIU", None),
    ]


def test_reader_without_usbmisc_finds_nothing(tmp_path):
    assert usb_printers(str(tmp_path)) == []
    assert serial_ports(str(tmp_path)) == []


def test_serial_and_bluetooth_candidates(tmp_path):
    dev = tmp_path / "dev"
    (dev / "serial" / "by-id").mkdir(parents=True)
    (dev / "ttyUSB0").write_text("")
    (dev / "rfcomm0").write_text("")
    (dev / "serial" / "by-id" / "usb-Prolific-if00-port0").symlink_to("../../ttyUSB0")
    found = serial_ports(str(dev))
    assert [(p.kind, p.path, p.node) for p in found] == [  # named as under /dev
        ("serial", "/dev/serial/by-id/usb-Prolific-if00-port0", "/dev/ttyUSB0"),
        ("bluetooth", "/dev/rfcomm0", "/dev/rfcomm0"),
    ]


def test_blocks_are_valid_agent_config(tmp_path):
    root = make_sysfs(tmp_path / "sys", [(EPSON_ID, "X5E0000001"), (STAR_ID, "S2")])
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "rfcomm0").write_text("")
    text = render_blocks(usb_printers(str(root)) + serial_ports(str(dev)))
    raw = tomllib.loads(text)
    assert raw["printers"]["bluetooth-printer"]["keep_open"] is True
    # Negative control: the Bluetooth port's block names no command set (nothing is known
    # about it without --identify), so it is not a printer until its hint is uncommented.
    with pytest.raises(ConfigError, match="needs model or command_set"):
        validate({"shop_id": "s", **raw}, lambda p: b"")
    raw = tomllib.loads(text.replace('# command_set = "escpos"', 'command_set = "escpos"'))
    settings = validate({"shop_id": "s", **raw}, lambda p: b"")
    assert {p.device for p in settings.printers.values()} == {
        "/dev/receipt-printer-X5E0000001",
        "/dev/receipt-printer-S2",
        "/dev/rfcomm0",
    }
    assert settings.printers["star-tsp143iiiu"].command_set == "star-graphic"


def discover(*args):
    return subprocess.run(
        [sys.executable, "-m", "agent", "discover", "--no-mdns", "--no-snmp", "--no-probe", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_discover_prints_a_block_with_the_stable_path(tmp_path):
    root = make_sysfs(tmp_path / "sys", [(EPSON_ID, "X5E0000001")])
    out = discover("--sys-root", str(root), "--dev-root", str(tmp_path / "nodev"))
    assert out.returncode == 0, out.stderr
    assert 'device = "/dev/receipt-printer-X5E0000001"' in out.stdout
    assert 'command_set = "escpos"' in out.stdout
    rows = json.loads(
        discover("--json", "--sys-root", str(root), "--dev-root", str(tmp_path)).stdout
    )
    assert rows == [
        {
            "kind": "usb",
            "device": "/dev/receipt-printer-X5E0000001",
            "node": "/dev/usb/lp0",
            "vendor": "Epson",
            "model": "TM-T20III",
            "command_set": "escpos",
            "serial": "X5E0000001",
            "note": "",
        }
    ]


async def run_discover(*args):
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        "discover",
        "--no-mdns",
        "--no-snmp",
        "--no-probe",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_serial_port_is_written_to_only_with_identify(tmp_path):
    async with PtyPrinter() as vp:
        dev = tmp_path / "dev"
        (dev / "serial" / "by-id").mkdir(parents=True)
        (dev / "serial" / "by-id" / "usb-FTDI-if00-port0").symlink_to(vp.path)
        args = ("--sys-root", str(tmp_path / "nosys"), "--dev-root", str(dev))
        code, out, _ = await run_discover(*args)
        assert code == 0 and "usb-FTDI-if00-port0" in out
        assert vp.received == b""  # listed, never written to
        code, out, err = await run_discover(*args, "--identify")
    assert code == 0, err
    assert vp.received.startswith(b"\x10\x04\x01")  # DLE EOT 1 first (PROTOCOLS §2.1)
    assert b"\x1b\x70" not in vp.received and vp.pulses == []  # never a kick
    assert "TM-T20III" in out and 'command_set = "escpos"' in out
