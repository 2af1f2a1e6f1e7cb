"""deploy/drawer-agent.service.d/devices.conf: opens the printer devices, keeps the hardening.

Merged with the unit the way systemd merges a drop-in (a later assignment replaces a plain
key, list keys such as DeviceAllow= add up), then checked key by key, by
`systemd-analyze verify` on the unit with its drop-in directory beside it, and by
`systemd-analyze security --offline` against the same exposure limit as the unit alone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_helpers import DEPLOY, find_tool
from test_deploy_systemd import EXECUTABLE, MAX_EXPOSURE, UNIT, parse_unit

DROPIN = DEPLOY / "drawer-agent.service.d" / "devices.conf"
LIST_KEYS = {"DeviceAllow", "SupplementaryGroups", "SystemCallFilter"}
# PrivateDevices is the one key the drop-in turns off; DevicePolicy replaces what it gave.
OPENED = {"PrivateDevices": "no"}


def merged(unit_text: str, dropin_text: str) -> dict[str, list[str]]:
    service = {k: list(v) for k, v in parse_unit(unit_text)["Service"].items()}
    for key, values in parse_unit(dropin_text)["Service"].items():
        if key in LIST_KEYS:
            service.setdefault(key, []).extend(values)
        else:
            service[key] = list(values)
    return service


def test_dropin_opens_only_the_printer_devices():
    service = merged(UNIT.read_text(), DROPIN.read_text())
    assert service["PrivateDevices"] == ["no"]
    assert service["DevicePolicy"] == ["closed"]
    allowed = {v.split()[0] for v in service["DeviceAllow"]}
    assert allowed == {"char-usb", "char-ttyS", "char-ttyUSB", "char-ttyACM", "char-rfcomm"}
    assert all(v.split()[1] == "rw" for v in service["DeviceAllow"])  # never mknod (m)
    assert set(" ".join(service["SupplementaryGroups"]).split()) == {"lp", "dialout"}
    assert "~@raw-io" in service["SystemCallFilter"]


def test_dropin_keeps_every_other_hardening_key():
    base = parse_unit(UNIT.read_text())["Service"]
    service = merged(UNIT.read_text(), DROPIN.read_text())
    for key, values in base.items():
        if key in OPENED or key in LIST_KEYS:
            continue
        assert service[key] == list(values), f"{key} changed by the drop-in"
    for key in LIST_KEYS & set(base):
        assert service[key][: len(base[key])] == list(base[key]), key


def test_negative_control_a_weakening_dropin_is_caught():
    weak = DROPIN.read_text() + "\nNoNewPrivileges=no\n"
    base = parse_unit(UNIT.read_text())["Service"]
    service = merged(UNIT.read_text(), weak)
    changed = [
        k for k in base if k not in OPENED and k not in LIST_KEYS and service[k] != list(base[k])
    ]
    assert changed == ["NoNewPrivileges"]


def unit_dir(tmp_path: Path) -> Path:
    stub = tmp_path / "drawer-agent"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    (tmp_path / "drawer-agent.service").write_text(UNIT.read_text().replace(EXECUTABLE, str(stub)))
    (tmp_path / "drawer-agent.service.d").mkdir()
    shutil.copy(DROPIN, tmp_path / "drawer-agent.service.d" / "devices.conf")
    return tmp_path / "drawer-agent.service"


def analyze() -> str:
    found = find_tool("systemd-analyze")
    if found is None:
        pytest.fail("systemd-analyze is not installed: run .ci/run (package systemd)")
    return found


def test_systemd_analyze_verify_with_the_dropin(tmp_path):
    unit = unit_dir(tmp_path)
    result = subprocess.run([analyze(), "verify", str(unit)], capture_output=True, text=True)
    complaints = [
        line
        for line in result.stderr.splitlines()
        if "drawer-agent" in line or "devices.conf" in line
    ]
    assert result.returncode == 0, result.stderr
    assert not complaints, "\n".join(complaints)


def test_systemd_analyze_verify_reads_the_dropin(tmp_path):
    # Negative control: a misspelt key in the drop-in is reported, so the drop-in is loaded.
    unit = unit_dir(tmp_path)
    conf = tmp_path / "drawer-agent.service.d" / "devices.conf"
    conf.write_text(conf.read_text().replace("DevicePolicy=", "DevicePolcy="))
    result = subprocess.run([analyze(), "verify", str(unit)], capture_output=True, text=True)
    assert "DevicePolcy" in result.stderr


def test_systemd_analyze_security_with_the_dropin(tmp_path):
    unit = unit_dir(tmp_path)
    result = subprocess.run(
        [analyze(), "security", "--offline=true", f"--threshold={MAX_EXPOSURE}", str(unit)],
        capture_output=True,
        text=True,
    )
    overall = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert overall, result.stdout + result.stderr
    assert result.returncode == 0, f"exposure {overall.group(1)} > {MAX_EXPOSURE / 10}"
