"""deploy/drawer-agent.service: hardening keys, and systemd's own verifier.

The unit is parsed in Python (systemd allows repeated keys, so configparser does not fit)
and checked for the hardening this project promises. When ``systemd-analyze`` is
installed (Debian: package ``systemd``; PID 1 need not be systemd) the unit also goes
through ``systemd-analyze verify`` and ``systemd-analyze security --offline``. Without the
binary those two tests fall back to the in-Python checks below and say so; they never skip.
"""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from deploy_helpers import DEPLOY, find_tool

UNIT = DEPLOY / "drawer-agent.service"
EXECUTABLE = "/usr/local/bin/drawer-agent"
CONFIG = "/etc/drawer-agent/drawer-agent.toml"
# systemd-analyze security exposure, 0-100 (it prints it divided by 10). The unit scores
# 1.2 at the time of writing; anything above 2.0 means some hardening was lost.
MAX_EXPOSURE = 20

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    sections: Unit = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("["):
            assert line.endswith("]"), f"line {number}: {raw}"
            current = sections.setdefault(line[1:-1], defaultdict(list))
            continue
        assert current is not None, f"line {number}: key outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"line {number}: not key=value: {raw}"
        current[key.strip()].append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> Unit:
    return parse_unit(UNIT.read_text())


def one(unit: Unit, section: str, key: str) -> str:
    values = unit[section].get(key)
    assert values, f"[{section}] {key}= is missing"
    return values[-1]


def test_service_basics(unit: Unit) -> None:
    assert set(unit) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    assert one(unit, "Service", "Type") == "simple"
    assert "WatchdogSec" not in service, "the agent does not call sd_notify"
    assert one(unit, "Service", "ExecStart") == f"{EXECUTABLE} run --config {CONFIG}"
    assert one(unit, "Service", "Restart") == "always"
    assert int(one(unit, "Service", "RestartSec").rstrip("s")) >= 1
    # With RestartSec >= 1 and the default burst of 5 in 10 s a crash loop would
    # otherwise stop the service for good.
    assert one(unit, "Unit", "StartLimitIntervalSec") == "0"
    assert "network-online.target" in one(unit, "Unit", "After")
    assert "network-online.target" in one(unit, "Unit", "Wants")
    assert one(unit, "Install", "WantedBy") == "multi-user.target"
    for command in service.get("ExecStartPre", []):
        assert command.startswith(f"{EXECUTABLE} check-config "), command


def test_hardening(unit: Unit) -> None:
    expected = {
        "DynamicUser": "yes",
        "StateDirectory": "drawer-agent",
        "ConfigurationDirectory": "drawer-agent",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        "SystemCallArchitectures": "native",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "UMask": "0077",
    }
    for key, value in expected.items():
        assert one(unit, "Service", key) == value, key
    filters = unit["Service"]["SystemCallFilter"]
    assert filters[0] == "@system-service"
    assert all(f.startswith("~") for f in filters[1:]), "later filters may only deny"
    assert "User" not in unit["Service"], "DynamicUser=yes: no fixed user"


def test_credentials_match_the_example_config(unit: Unit) -> None:
    """Each secret the example config reads from the credentials dir is loaded by the unit."""
    loaded = {c.split(":", 1)[0] for c in unit["Service"].get("LoadCredential", [])}
    for credential in unit["Service"].get("LoadCredential", []):
        _, _, source = credential.partition(":")
        assert source.startswith("/etc/drawer-agent/credentials/"), credential
    config = (DEPLOY / "drawer-agent.toml").read_text()
    prefix = "/run/credentials/drawer-agent.service/"
    referenced = set(re.findall(rf'^[^#\n]*"{re.escape(prefix)}([^"]+)"', config, re.M))
    assert referenced, "the example config should read secrets from systemd credentials"
    assert referenced == loaded


def _stubbed_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable stub, for systemd-analyze.

    ``verify`` checks that the ExecStart binary exists; drawer-agent is not installed at
    /usr/local/bin here. Only that path is replaced.
    """
    stub = tmp_path / "drawer-agent"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    copy = tmp_path / "drawer-agent.service"
    copy.write_text(UNIT.read_text().replace(EXECUTABLE, str(stub)))
    return copy


def test_systemd_analyze_verify(tmp_path: Path, unit: Unit) -> None:
    """Real: ``systemd-analyze verify``, failing on any warning about the unit.

    Fallback without systemd-analyze: every key must be one this test knows systemd accepts
    (a typo like ``ProtectSytem=`` would otherwise go unnoticed).
    """
    analyze = find_tool("systemd-analyze")
    if analyze is None:
        known = KNOWN_KEYS
        for section, keys in unit.items():
            unknown = set(keys) - known[section]
            assert not unknown, f"[{section}] unknown keys (fallback check): {unknown}"
        return
    copy = _stubbed_unit(tmp_path)
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, check=False
    )
    # verify exits 0 on unknown keys but warns on stderr, so any mention of the unit fails.
    complaints = [line for line in result.stderr.splitlines() if copy.name in line]
    assert result.returncode == 0, result.stderr
    assert not complaints, "\n".join(complaints)


def test_systemd_analyze_verify_catches_mistakes(tmp_path: Path) -> None:
    """Negative control for the test above: a misspelt key is reported."""
    analyze = find_tool("systemd-analyze")
    copy = _stubbed_unit(tmp_path)
    copy.write_text(copy.read_text().replace("ProtectSystem=", "ProtectSytem="))
    if analyze is None:
        keys = parse_unit(copy.read_text())["Service"]
        assert set(keys) - KNOWN_KEYS["Service"] == {"ProtectSytem"}
        return
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert "ProtectSytem" in result.stderr


def test_systemd_analyze_security_exposure(tmp_path: Path, unit: Unit) -> None:
    """Real: ``systemd-analyze security --offline=true --threshold=20`` (exposure <= 2.0).

    Fallback without systemd-analyze: the key-by-key hardening test above already ran;
    here we additionally require the extra protections that make up most of the score.
    """
    analyze = find_tool("systemd-analyze")
    if analyze is None:
        for key in ("ProtectClock", "ProtectHostname", "ProtectKernelLogs", "RestrictRealtime"):
            assert one(unit, "Service", key) == "yes", f"{key} (fallback check)"
        return
    copy = _stubbed_unit(tmp_path)
    result = subprocess.run(
        [analyze, "security", "--offline=true", f"--threshold={MAX_EXPOSURE}", str(copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    overall = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert overall, result.stdout + result.stderr
    assert result.returncode == 0, f"exposure {overall.group(1)} > {MAX_EXPOSURE / 10}"


KNOWN_KEYS: dict[str, set[str]] = {
    "Unit": {"Description", "Documentation", "After", "Wants", "StartLimitIntervalSec"},
    "Service": {
        "Type", "ExecStartPre", "ExecStart", "Restart", "RestartSec", "KillSignal",
        "TimeoutStopSec", "Environment", "DynamicUser", "StateDirectory", "StateDirectoryMode",
        "ConfigurationDirectory", "WorkingDirectory", "LoadCredential", "UMask",
        "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
        "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock",
        "ProtectHostname", "ProtectProc", "PrivateMounts", "NoNewPrivileges",
        "CapabilityBoundingSet", "AmbientCapabilities", "RestrictSUIDSGID", "LockPersonality",
        "RestrictRealtime", "RestrictNamespaces", "RemoveIPC", "PrivateUsers",
        "RestrictAddressFamilies", "SystemCallArchitectures", "SystemCallFilter",
        "SystemCallErrorNumber",
    },
    "Install": {"WantedBy"},
}  # fmt: skip
