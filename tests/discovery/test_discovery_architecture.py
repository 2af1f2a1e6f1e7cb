"""Functional core / I/O shell: pure modules import no I/O; discovery never imports agent."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "discovery"
PURE = [
    "model",
    "identify",
    "identity",
    "merge",
    "mdns_parse",
    "snmp_parse",
    "probe_parse",
    "subnets",
    "text",
]
IO_MODULES = {
    "asyncio",
    "socket",
    "selectors",
    "ssl",
    "sqlite3",
    "subprocess",
    "zeroconf",
    "pysnmp",
    "pyasn1",
    "ifaddr",
    "time",
}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_do_no_io(module: str) -> None:
    names = imports(PACKAGE / "core" / f"{module}.py")
    roots = {n.split(".")[0] for n in names}
    assert not roots & IO_MODULES
    local = {n for n in names if n.startswith("discovery.") and not n.startswith("discovery.core")}
    assert not local, f"{module} imports impure discovery modules {local}"


def test_discovery_never_imports_agent() -> None:
    for path in PACKAGE.rglob("*.py"):
        roots = {n.split(".")[0] for n in imports(path)}
        assert "agent" not in roots, path.name
