"""The retained inventory (pure): configured printers with their health and tills, then the
discovered ones no configured printer is at."""

from agent.core import health
from agent.core.inventory import build_inventory
from agent.core.mapping import RuntimeMapping
from agent.core.settings import validate_printer


def mapping():
    printers = {
        "front": validate_printer("front", {"host": "10.0.0.5", "model": "epson-tm-t20iii"}),
        "usb": validate_printer("usb", {"device": "/dev/usb/lp0", "model": "epson-tm-m30"}),
    }
    return RuntimeMapping.build(printers, {"T1": "front"})


def record(host, port=9100, **extra):
    return {"host": host, "port": port, "vendor": "EPSON", "model": "TM-m30III", **extra}


def test_configured_first_with_health_tills_and_the_discovered_record_at_its_address():
    live = health.PrinterHealth("front", "10.0.0.5", online=True, drawer_open=False, checked_at=1.0)
    found = [record("10.0.0.5", mac="00:26:ab:00:00:01"), record("10.0.0.9", name="Bar")]
    inv = build_inventory(
        mapping(),
        {"front": live},
        found,
        lambda pid: ("10.0.0.5", 9100) if pid == "front" else None,
    )
    front, usb, bar = inv["printers"]
    assert (front["printer_id"], front["brand"], front["command_set"]) == (
        "front",
        "Epson",
        "escpos",
    )
    assert front["online"] is True and front["drawer_open"] is False and front["tills"] == ["T1"]
    assert front["identity"] == {"mac": "00:26:ab:00:00:01"}  # from the record at its address
    assert usb["device"] == "/dev/usb/lp0" and usb["address"] is None and usb["online"] is None
    # Negative control: the record at another address stays a separate, unconfigured entry.
    assert bar["configured"] is False and bar["printer_id"] is None
    assert (bar["address"], bar["name"], bar["brand"]) == ("10.0.0.9:9100", "Bar", "EPSON")
    assert len(inv["printers"]) == 3 and inv["revision"] == 0
