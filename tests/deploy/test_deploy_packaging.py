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
