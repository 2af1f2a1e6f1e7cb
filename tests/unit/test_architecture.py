"""Pure modules stay free of I/O and library imports (functional core, I/O shell)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = [
    "agent/commands.py",
    "agent/catalogue.py",
    "agent/status.py",
    "agent/events.py",
    "agent/policy.py",
    "agent/retry.py",
    "agent/ratelimit.py",
    "agent/topics.py",
    "agent/acks.py",
    "agent/settings.py",
    "agent/emulation.py",
    "agent/errors.py",
    "agent/addresses.py",
    "agent/health.py",
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
    "agent.ledger",
    "agent.mqtt_link",
    "agent.printer_link",
    "agent.dispatcher",
    "agent.app",
    "agent.intake",
    "agent.http_api",
    "agent.emulator",
    "agent.cli",
    "agent.settings_io",
    "agent.demo",
    "agent.embedded_broker",
    "agent.logs",
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
        for p in (ROOT / "agent").glob("*.py")
        if any(n.split(".")[0] in ("aiomqtt", "paho") for n in imports_of(p))
    }
    assert users == {"agent/mqtt_link.py"}


def test_discovery_never_imports_agent():
    for path in (ROOT / "discovery").glob("*.py"):
        assert not any(n.split(".")[0] == "agent" for n in imports_of(path)), path
