"""Functional core / I/O shell, checked two ways: in fresh interpreters and on the source.

At run time each core module is imported alone in a new interpreter and `sys.modules` must
hold no I/O or broker/network library afterwards. On the source, no core file may itself
import socket, selectors, ssl, asyncio or sqlite3 (the standard library may pull socket in
indirectly: plain pydantic does, through email.utils), nor any first-party module outside
its own core. Every check has a negative control on a temporary package.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("agent", "discovery")
CORE_PACKAGES = ("agent.core", "discovery.core")

# Loaded by importing a core module: the I/O and library roots the core must not drag in.
CORE_RUNTIME_FORBIDDEN = frozenset(
    {
        "asyncio",
        "sqlite3",
        "aiomqtt",
        "paho",
        "aiohttp",
        "zeroconf",
        "pysnmp",
        "amqtt",
        "escpos",
        "jwt",
        "prometheus_client",
        "ifaddr",
    }
)
# Imported by a core file itself (checked on the source, see the module docstring).
CORE_SOURCE_FORBIDDEN = frozenset(
    {"socket", "selectors", "select", "ssl", "asyncio", "sqlite3", "subprocess", "threading"}
)
# Third-party libraries a core file may import: pure, no I/O of their own.
CORE_LIBRARIES = frozenset({"pydantic", "pydantic_core", "annotated_types", "typing_extensions"})

CLI_FORBIDDEN = frozenset({"zeroconf", "pysnmp", "aiohttp", "amqtt", "escpos"})
DISCOVERY_PACKAGE_FORBIDDEN = frozenset({"zeroconf", "pysnmp", "sqlite3", "asyncio"})
# What `drawer-agent run` imports before it starts: the CLI, the settings reader, the log
# set-up and the wiring module (cli.cmd_run).
RUN_IMPORT_PATH = ("agent.cli", "agent.io.logs", "agent.io.settings_io", "agent.service.app")

# --- the checks -------------------------------------------------------------------------------

_PROBE = textwrap.dedent(
    """
    import importlib, json, sys
    sys.path[:0] = json.loads(sys.argv[1])
    statement, forbidden, results = sys.argv[2], json.loads(sys.argv[3]), {}
    for module in json.loads(sys.argv[4]):
        before = set(sys.modules)
        if module:
            importlib.import_module(module)
        else:
            exec(statement, {"__name__": "__probe__"})
        loaded = set(sys.modules) - before
        results[module] = sorted(
            {f for f in forbidden for m in loaded if m == f or m.startswith(f + ".")}
        )
    print(json.dumps(results))
    """
)


def loaded_by(
    modules: Sequence[str],
    forbidden: Iterable[str],
    *,
    statement: str = "",
    path: Sequence[Path] = (),
    separately: bool = True,
) -> dict[str, list[str]]:
    """The forbidden modules (or packages, by prefix) that importing each of `modules` loads.

    Each module gets its own fresh interpreter when `separately`, so what one module pulls
    in is never blamed on, or hidden by, another; otherwise all share one interpreter in
    order. With no modules, `statement` is run instead (reported under the key "").
    """
    groups = [[m] for m in modules] if separately else [list(modules)]
    if not modules:
        groups = [[""]]
    found: dict[str, list[str]] = {}
    for group in groups:
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                _PROBE,
                json.dumps([str(p) for p in path]),
                statement,
                json.dumps(sorted(forbidden)),
                json.dumps(group),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, f"importing {group} failed:\n{proc.stderr}"
        found.update(json.loads(proc.stdout.splitlines()[-1]))
    return found


def module_name(path: Path, root: Path) -> str:
    """`agent/core/x.py` -> `agent.core.x`; a package's `__init__.py` -> the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules_in(package: str, root: Path = ROOT) -> list[str]:
    """Every module of a package directory, the package itself included."""
    directory = root.joinpath(*package.split("."))
    return sorted(module_name(p, root) for p in directory.rglob("*.py"))


def imported_names(path: Path, root: Path) -> set[str]:
    """Every name a file imports, with `from . import x` and `from pkg import x` resolved.

    `from pkg import x` yields both `pkg` and `pkg.x`: x may be a submodule, which is what
    `first_party_module` decides from the files.
    """
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names.add(target)
            names |= {f"{target}.{alias.name}" for alias in node.names if alias.name != "*"}
    return names


def first_party_module(name: str, root: Path) -> str:
    """The deepest module of `name` that exists as a file or package under `root`."""
    parts = name.split(".")
    here, found = root, []
    for part in parts:
        if (here / part / "__init__.py").is_file():
            here = here / part
            found.append(part)
        elif (here / f"{part}.py").is_file():
            found.append(part)
            break
        else:
            break
    return ".".join(found)


def core_source_violations(
    path: Path,
    root: Path = ROOT,
    first_party: Sequence[str] = FIRST_PARTY,
) -> set[str]:
    """What one core file imports that a pure module may not.

    Forbidden standard-library I/O modules, third-party libraries other than the pure ones,
    and first-party modules outside a core package (`agent.core`, `discovery.core`); a
    top-level package's `__init__` is allowed (`from agent import __version__`).
    """
    bad = set()
    for name in imported_names(path, root):
        top = name.split(".")[0]
        if top in first_party:
            target = first_party_module(name, root)
            if target != top and not target.startswith(f"{top}.core"):
                bad.add(target)
        elif top in CORE_SOURCE_FORBIDDEN:
            bad.add(name)
        elif top and top not in sys.stdlib_module_names and top not in CORE_LIBRARIES:
            # A whole-package import is one name; `from lib import a, b` adds lib.a, lib.b.
            bad.add(top)
    return bad


def importers_of(roots: Iterable[str], package: str, root: Path = ROOT) -> set[str]:
    """Files of `package` that import anything under one of `roots`."""
    roots = set(roots)
    return {
        path.relative_to(root).as_posix()
        for path in (root / package).rglob("*.py")
        if any(n.split(".")[0] in roots for n in imported_names(path, root))
    }


# --- the rules --------------------------------------------------------------------------------

CORE_MODULES = [m for package in CORE_PACKAGES for m in modules_in(package)]


def test_the_core_is_where_the_rules_say():
    """The lists below are found from the files, so a new core module is checked too."""
    assert "agent.core.commands" in CORE_MODULES
    assert "discovery.core.model" in CORE_MODULES
    assert len(CORE_MODULES) > 20


def test_importing_a_core_module_loads_no_io_library():
    loaded = loaded_by(CORE_MODULES, CORE_RUNTIME_FORBIDDEN)
    assert set(loaded) == set(CORE_MODULES)
    assert {m: found for m, found in loaded.items() if found} == {}


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_source_imports_no_io(module):
    path = ROOT.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    assert core_source_violations(path) == set()


@pytest.mark.parametrize(
    "argv", [["--help"], ["check-config", "{config}"]], ids=["help", "check-config"]
)
def test_cli_start_loads_no_heavy_library(tmp_path, argv):
    config = tmp_path / "agent.toml"
    config.write_text('shop_id = "s1"\n[mqtt]\nurl = "mqtt://127.0.0.1:1883"\n')
    argv = [a.format(config=config) for a in argv]
    statement = (
        "import contextlib, io, sys\n"
        "from agent.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        rc = main({argv!r})\n"
        "    except SystemExit as exc:\n"
        "        rc = exc.code\n"
        "assert rc == 0, rc\n"
    )
    assert loaded_by([], CLI_FORBIDDEN, statement=statement) == {"": []}


def test_the_discovery_package_loads_no_io():
    assert loaded_by(["discovery"], DISCOVERY_PACKAGE_FORBIDDEN) == {"discovery": []}


def test_run_never_imports_the_devtools():
    loaded = loaded_by(RUN_IMPORT_PATH, {"agent.devtools"}, separately=False)
    assert {m: found for m, found in loaded.items() if found} == {}


def test_only_the_mqtt_adapter_imports_aiomqtt_or_paho():
    assert importers_of({"aiomqtt", "paho"}, "agent") == {"agent/io/mqtt_link.py"}


def test_only_the_signing_adapter_imports_pyjwt():
    assert importers_of({"jwt"}, "agent") | importers_of({"jwt"}, "discovery") == {
        "agent/io/signing.py"
    }


def test_the_signing_adapter_does_no_io():
    names = imported_names(ROOT / "agent/io/signing.py", ROOT)
    banned = {"asyncio", "socket", "aiomqtt", "aiohttp", "sqlite3", "time", "subprocess"}
    assert not {n.split(".")[0] for n in names} & banned


def test_discovery_never_imports_the_agent():
    assert importers_of({"agent"}, "discovery") == set()


@pytest.mark.parametrize("module", ["agent/devtools/emulation.py", "agent/devtools/emulator.py"])
def test_the_virtual_printer_shares_no_constant_with_the_agent(module):
    """The emulator encodes vendor facts itself, so a mistake shared with the agent cannot hide."""
    names = {first_party_module(n, ROOT) for n in imported_names(ROOT / module, ROOT)}
    assert not {n for n in names if n.startswith(("agent.core", "agent.io", "agent.service"))}


# --- negative controls: the same functions on a package that breaks each rule -----------------


@pytest.fixture
def impure(tmp_path):
    """A package shaped like ours whose core breaks the rules in each form the checks resolve."""
    pkg = tmp_path / "fakeagent"
    (pkg / "core").mkdir(parents=True)
    (pkg / "io").mkdir()
    for init in (pkg / "__init__.py", pkg / "core" / "__init__.py", pkg / "io" / "__init__.py"):
        init.write_text("")
    (pkg / "io" / "link.py").write_text("import asyncio\n")
    (pkg / "dispatcher.py").write_text("import sqlite3\n")
    (pkg / "core" / "pure.py").write_text("import json\nfrom fakeagent.core import rules\n")
    (pkg / "core" / "rules.py").write_text("import re\n")
    files = {
        "direct": "import asyncio\n",
        "from_stdlib": "from socket import create_connection\n",
        "relative": "from ..io import link\n",
        "package_attribute": "from fakeagent import dispatcher\n",
        "library": "import aiomqtt\n",
        "type_checking": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ssl\n",
    }
    for name, source in files.items():
        (pkg / "core" / f"{name}.py").write_text(source)
    return tmp_path


def test_the_runtime_check_fails_on_a_core_module_that_imports_asyncio(impure):
    modules = ["fakeagent.core.direct", "fakeagent.core.relative", "fakeagent.core.pure"]
    loaded = loaded_by(modules, CORE_RUNTIME_FORBIDDEN, path=[impure])
    assert loaded == {
        "fakeagent.core.direct": ["asyncio"],
        "fakeagent.core.relative": ["asyncio"],  # through the I/O module it imports
        "fakeagent.core.pure": [],
    }


def test_the_runtime_check_sees_a_package_prefix(impure):
    loaded = loaded_by(["fakeagent.core.relative"], {"fakeagent.io"}, path=[impure])
    assert loaded == {"fakeagent.core.relative": ["fakeagent.io"]}


def test_the_runtime_check_runs_a_statement(impure):
    loaded = loaded_by([], {"sqlite3"}, statement="import fakeagent.dispatcher", path=[impure])
    assert loaded == {"": ["sqlite3"]}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("direct", {"asyncio"}),
        ("from_stdlib", {"socket", "socket.create_connection"}),
        ("relative", {"fakeagent.io", "fakeagent.io.link"}),
        # Resolved to the submodule it names, not recorded as an import of the package.
        ("package_attribute", {"fakeagent.dispatcher"}),
        ("library", {"aiomqtt"}),
        ("type_checking", {"ssl"}),
        ("pure", set()),
    ],
)
def test_the_source_check_fails_on_each_import_form(impure, name, expected):
    path = impure / "fakeagent" / "core" / f"{name}.py"
    assert core_source_violations(path, impure, ("fakeagent",)) == expected


def test_relative_imports_resolve_from_a_package_init(tmp_path):
    pkg = tmp_path / "p" / "core"
    pkg.mkdir(parents=True)
    (tmp_path / "p" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from . import a\nfrom .. import io\n")
    assert imported_names(pkg / "__init__.py", tmp_path) == {"p.core", "p.core.a", "p", "p.io"}
