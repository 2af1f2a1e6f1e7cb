"""pyproject.toml ships every subpackage, so a non-editable install (image, quick start) runs.

An editable install (the dev venv) imports from the work tree and hides a package list that
misses agent.core & co; `pip install .` and the docker image do not.
"""

from __future__ import annotations

import fnmatch
import tomllib

from deploy_helpers import REPO


def packages_on_disk() -> set[str]:
    return {
        ".".join(init.parent.relative_to(REPO).parts)
        for top in ("agent", "discovery")
        for init in (REPO / top).rglob("__init__.py")
    }


def shipped(patterns: list[str], packages: set[str]) -> set[str]:
    return {p for p in packages if any(fnmatch.fnmatchcase(p, pat) for pat in patterns)}


def test_every_package_is_shipped() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["packages"]["find"]["include"]
    packages = packages_on_disk()
    assert {"agent", "agent.core", "agent.io", "discovery.core"} <= packages
    assert shipped(patterns, packages) == packages


def test_a_top_level_only_list_misses_subpackages() -> None:
    """Negative control: the old `packages = ["agent", "discovery"]` fails the check above."""
    packages = packages_on_disk()
    assert shipped(["agent", "discovery"], packages) != packages


def package_data_files(package_data: dict[str, list[str]]) -> set[str]:
    """Files under agent/ the wheel ships as package data, by setuptools' glob rules."""
    shipped_files: set[str] = set()
    for package, patterns in package_data.items():
        root = REPO.joinpath(*package.split("."))
        for pattern in patterns:
            shipped_files |= {str(p.relative_to(REPO)) for p in root.glob(pattern) if p.is_file()}
    return shipped_files


def console_files() -> set[str]:
    web = REPO / "agent" / "io" / "web"
    return {
        str(p.relative_to(REPO))
        for p in web.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_the_console_templates_static_files_and_messages_are_shipped() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    files = console_files()
    assert {"agent/io/web/messages/fr.json", "agent/io/web/templates/base.html"} <= files
    assert files <= package_data_files(setuptools["package-data"])


def test_a_package_data_list_without_the_console_misses_it() -> None:
    """Negative control: the package data before the console ships none of its files."""
    assert not console_files() & package_data_files({"agent": ["py.typed", "data/*"]})
