"""container_checks against hand-made inspect and probe documents: each flaw is named.

The runtime test applies the same checks to the real containers; these show that every check
can fail, one flaw at a time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from container_checks import Hardening, inspect_problems, probe_problems

WANT = Hardening(
    uid=10001,
    read_only_mounts=frozenset({"/etc/drawer-agent/drawer-agent.toml", "/run/secrets/token"}),
    writable=frozenset({"/var/lib/drawer-agent"}),
    tmpfs=frozenset({"/tmp"}),
)

# The fields of `docker inspect` (Engine API ContainerInspect) that the checks read, as the
# hardened agent service of docker/compose.yaml shows them.
GOOD: dict[str, Any] = {
    "Config": {"User": "10001:10001"},
    "HostConfig": {
        "ReadonlyRootfs": True,
        "CapAdd": None,
        "CapDrop": ["ALL"],
        "Privileged": False,
        "SecurityOpt": ["no-new-privileges:true"],
        "Tmpfs": {"/tmp": ""},
        "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
    },
    "Mounts": [
        {"Type": "bind", "Destination": "/etc/drawer-agent/drawer-agent.toml", "RW": False},
        {"Type": "bind", "Destination": "/run/secrets/token", "RW": False},
        {"Type": "volume", "Destination": "/var/lib/drawer-agent", "RW": True},
    ],
}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            node = node[key]
        node[last] = value

    return apply


def _mount(destination: str, **fields: Any) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        for mount in doc["Mounts"]:
            if mount["Destination"] == destination:
                mount.update(fields)

    return apply


def _drop_mount(destination: str) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        doc["Mounts"] = [m for m in doc["Mounts"] if m["Destination"] != destination]

    return apply


def _add_mount(destination: str) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        doc["Mounts"].append({"Type": "bind", "Destination": destination, "RW": True})

    return apply


def test_the_hardened_document_passes() -> None:
    assert inspect_problems(GOOD, WANT) == []
    # The other spellings docker-run(1) accepts for the option.
    for spelling in ("no-new-privileges", "no-new-privileges=true"):
        doc = copy.deepcopy(GOOD)
        doc["HostConfig"]["SecurityOpt"] = ["label=disable", spelling]
        assert inspect_problems(doc, WANT) == []


@pytest.mark.parametrize(
    ("flaw", "problem"),
    [
        (_set("Config.User", ""), "runs as user root (unset), not 10001"),
        (_set("Config.User", "0:0"), "runs as user 0:0, not 10001"),
        (_set("HostConfig.ReadonlyRootfs", False), "root filesystem is writable"),
        (_set("HostConfig.CapDrop", None), "capabilities not all dropped"),
        (_set("HostConfig.CapDrop", ["NET_RAW"]), "capabilities not all dropped"),
        (_set("HostConfig.CapAdd", ["NET_ADMIN"]), "capabilities added: ['NET_ADMIN']"),
        (_set("HostConfig.Privileged", True), "privileged"),
        (_set("HostConfig.SecurityOpt", None), "no-new-privileges missing"),
        (_set("HostConfig.SecurityOpt", ["no-new-privileges:false"]), "no-new-privileges missing"),
        (_set("HostConfig.Tmpfs", None), "/tmp is no tmpfs"),
        (_mount("/run/secrets/token", RW=True), "/run/secrets/token is mounted writable"),
        (_mount("/etc/drawer-agent/drawer-agent.toml", RW=True), "drawer-agent.toml is mounted"),
        (_drop_mount("/run/secrets/token"), "/run/secrets/token is not mounted"),
        (_drop_mount("/var/lib/drawer-agent"), "/var/lib/drawer-agent is not mounted"),
        (_add_mount("/srv/extra"), "unexpected writable mount /srv/extra"),
        (
            _set("HostConfig.PortBindings", {"8080/tcp": [{"HostIp": "", "HostPort": "8080"}]}),
            "8080/tcp published on all addresses",
        ),
        (
            _set("HostConfig.PortBindings", {"8080/tcp": [{"HostIp": "0.0.0.0"}]}),
            "8080/tcp published on 0.0.0.0",
        ),
    ],
)
def test_each_flaw_is_named(flaw: Callable[[dict[str, Any]], None], problem: str) -> None:
    doc = copy.deepcopy(GOOD)
    flaw(doc)
    problems = inspect_problems(doc, WANT)
    assert len(problems) == 1, problems
    assert problem in problems[0]


def test_a_plain_docker_run_fails_every_hardening_check() -> None:
    """`docker run IMAGE` as root with the defaults: nothing of the hardening is there."""
    plain = {"Config": {"User": ""}, "HostConfig": {"CapDrop": None, "SecurityOpt": None},
             "Mounts": []}  # fmt: skip
    problems = inspect_problems(plain, WANT)
    assert len(problems) == 8, problems


PROBE_GOOD: dict[str, Any] = {
    "pid1_uid": "10001",
    "pid1_gid": "10001",
    "pid1_cap_eff": "0000000000000000",
    "pid1_cap_bnd": "0000000000000000",
    "pid1_no_new_privs": "1",
    "root_fs": "EROFS",
    "writable": {"/tmp": "ok", "/var/lib/drawer-agent": "ok"},
    "read_only": {"/run/secrets/token": "EROFS", "/etc/drawer-agent/drawer-agent.toml": "EACCES"},
}


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("pid1_uid", "0", "pid 1 runs as uid/gid ('0', '10001')"),
        ("pid1_gid", "0", "pid 1 runs as uid/gid ('10001', '0')"),
        # CAP_NET_BIND_SERVICE alone (bit 10): any capability at all is one too many.
        ("pid1_cap_eff", "0000000000000400", "pid1_cap_eff = 0000000000000400, not 0"),
        ("pid1_cap_bnd", "00000000a80425fb", "pid1_cap_bnd = 00000000a80425fb, not 0"),
        ("pid1_no_new_privs", "0", "NoNewPrivs = 0, not 1"),
        ("root_fs", "EACCES", "writing to / gives EACCES, not EROFS"),
        ("root_fs", "ok", "writing to / gives ok, not EROFS"),
        ("writable", {"/tmp": "EROFS", "/var/lib/drawer-agent": "ok"}, "under /tmp gives EROFS"),
        ("read_only", {"/run/secrets/token": "ok"}, "appending to /run/secrets/token gives ok"),
    ],
)
def test_each_probe_flaw_is_named(key: str, value: Any, problem: str) -> None:
    seen = copy.deepcopy(PROBE_GOOD)
    assert probe_problems(seen, WANT) == []
    seen[key] = value
    problems = probe_problems(seen, WANT)
    assert len(problems) == 1, problems
    assert problem in problems[0]
