"""The import graph of agent/ and discovery/: no cycle (type-checking imports included), and
only the CLI imports the wiring module."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_architecture import first_party_module, imported_names, module_name

ROOT = Path(__file__).resolve().parents[2]
WIRING = "agent.service.app"


def graph(root: Path, packages: tuple[str, ...] = ("agent", "discovery")) -> dict[str, set[str]]:
    """Module → the project modules it imports, anywhere in the file (TYPE_CHECKING too).

    Names are resolved as the architecture test resolves them. `from pkg import x` yields
    `pkg` and `pkg.x`; when x is a module, the edge goes to x alone, not to the package.
    """
    files = {module_name(p, root): p for pkg in packages for p in (root / pkg).rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for mod, path in files.items():
        found = {first_party_module(n, root) for n in imported_names(path, root)} - {"", mod}
        edges[mod] = {m for m in found if not any(o.startswith(m + ".") for o in found)}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_in_the_project():
    edges = graph(ROOT)
    assert "agent.service.dispatcher" in edges["agent.service.app"]
    # A package's __init__ re-exporting its children is not a cycle of behaviour; leave
    # package modules out only where they import nothing but their own children.
    assert cycles(edges) == []


def test_only_the_cli_imports_the_wiring_module():
    importers = {m for m, targets in graph(ROOT).items() if WIRING in targets}
    assert importers <= {"agent.cli"}, importers


def test_a_cycle_through_a_type_checking_import_is_found(tmp_path):
    pkg = tmp_path / "agent"
    (pkg / "service").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "service" / "__init__.py").write_text("")
    (pkg / "service" / "a.py").write_text("from agent.service import b\n")
    (pkg / "service" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import X\n"
    )
    edges = graph(tmp_path, ("agent",))
    assert cycles(edges) == [["agent.service.a", "agent.service.b"]]


def test_from_package_import_module_counts_as_importing_that_module(tmp_path):
    pkg = tmp_path / "agent"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "app.py").write_text("")
    (pkg / "http.py").write_text("from agent import app\n")
    assert graph(tmp_path, ("agent",))["agent.http"] == {"agent.app"}
