"""Pure modules stay free of I/O and library imports (functional core, I/O shell)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = [
    "agent/core/commands.py",
    "agent/core/catalogue.py",
    "agent/core/status.py",
    "agent/core/events.py",
    "agent/core/policy.py",
    "agent/core/retry.py",
    "agent/core/ratelimit.py",
    "agent/core/topics.py",
    "agent/core/acks.py",
    "agent/core/settings.py",
    "agent/core/errors.py",
    "agent/core/addresses.py",
    "agent/core/health.py",
    "agent/core/fleet.py",
]
FORBIDDEN = {
    "asyncio",
    "socket",
    "ssl",
    "select",
    "selectors",
    "subprocess",
    "sqlite3",
    "aiomqtt",
    "paho",
    "zeroconf",
    "pysnmp",
    "aiohttp",
    "jwt",
    "escpos",
    "amqtt",
    "prometheus_client",
    "time",
    "threading",
    "os",
}
IO_MODULES = {
    "agent.io.ledger",
    "agent.io.mqtt_link",
    "agent.io.printer_link",
    "agent.service.dispatcher",
    "agent.service.app",
    "agent.service.intake",
    "agent.io.http_api",
    "agent.devtools.emulator",
    "agent.cli",
    "agent.io.settings_io",
    "agent.devtools.demo",
    "agent.devtools.embedded_broker",
    "agent.io.logs",
    "agent.io.metrics",
    "agent.service.fleet",
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_module_has_no_io_imports(module):
    found = imports_of(ROOT / module)
    bad = {n for n in found if n.split(".")[0] in FORBIDDEN or n in IO_MODULES}
    assert not bad, f"{module} imports {sorted(bad)}"


def test_only_the_adapter_imports_aiomqtt():
    users = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "agent").rglob("*.py")
        if any(n.split(".")[0] in ("aiomqtt", "paho") for n in imports_of(p))
    }
    assert users == {"agent/io/mqtt_link.py"}


def test_discovery_never_imports_agent():
    for path in (ROOT / "discovery").rglob("*.py"):
        assert not any(n.split(".")[0] == "agent" for n in imports_of(path)), path


@pytest.mark.parametrize("module", ["agent/devtools/emulation.py", "agent/devtools/emulator.py"])
def test_virtual_printer_encodes_vendor_facts_not_the_agents(module):
    """The emulator shares no constant with the agent, so a shared mistake cannot hide."""
    found = imports_of(ROOT / module)
    assert not {n for n in found if n.startswith(("agent.core", "agent.io", "agent.service"))}
