"""Pure checks of a container's hardening: `docker inspect` JSON and an in-container probe.

Each function returns the list of problems it found (empty when the container is hardened), so
the runtime test can show them all at once and the unit tests can feed it bad documents.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The spellings Docker accepts for the option (docker-run(1), "--security-opt").
NO_NEW_PRIVILEGES = {"no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"}


@dataclass(frozen=True)
class Hardening:
    """What a hardened service looks like from outside and from inside."""

    uid: int
    read_only_mounts: frozenset[str]  # destinations that must be mounted read-only
    writable: frozenset[str] = frozenset()  # destinations that may be writable (the ledger)
    tmpfs: frozenset[str] = frozenset()  # scratch directories a read-only root still needs


def inspect_problems(info: Mapping[str, Any], want: Hardening) -> list[str]:
    """What `docker inspect CONTAINER` (one element) shows that `want` forbids."""
    problems = []
    config = info.get("Config") or {}
    host = info.get("HostConfig") or {}
    user = str(config.get("User") or "")
    if user.partition(":")[0] != str(want.uid):
        problems.append(f"runs as user {user or 'root (unset)'}, not {want.uid}")
    if host.get("ReadonlyRootfs") is not True:
        problems.append("root filesystem is writable (read_only: true missing)")
    if "ALL" not in {c.upper() for c in host.get("CapDrop") or []}:
        problems.append(f"capabilities not all dropped (CapDrop {host.get('CapDrop')})")
    if host.get("CapAdd"):
        problems.append(f"capabilities added: {host['CapAdd']}")
    if host.get("Privileged"):
        problems.append("privileged")
    if not NO_NEW_PRIVILEGES & set(host.get("SecurityOpt") or []):
        problems.append(f"no-new-privileges missing (SecurityOpt {host.get('SecurityOpt')})")
    mounts = {m.get("Destination"): m for m in info.get("Mounts") or []}
    for destination in sorted(want.read_only_mounts):
        if destination not in mounts:
            problems.append(f"{destination} is not mounted")
        elif mounts[destination].get("RW") is not False:
            problems.append(f"{destination} is mounted writable")
    for destination in sorted(want.writable - set(mounts)):
        problems.append(f"{destination} is not mounted")
    for destination, mount in sorted(mounts.items()):
        if mount.get("RW") and destination not in want.writable | want.read_only_mounts:
            problems.append(f"unexpected writable mount {destination}")
    for destination in sorted(want.tmpfs - set(host.get("Tmpfs") or {})):
        problems.append(f"{destination} is no tmpfs")
    for port, bindings in sorted((host.get("PortBindings") or {}).items()):
        for binding in bindings or []:
            if binding.get("HostIp") not in {"127.0.0.1", "::1"}:
                problems.append(f"{port} published on {binding.get('HostIp') or 'all addresses'}")
    return problems


# Runs in the container (python3 -c PROBE SPEC, SPEC from probe_spec): its identity,
# capabilities, and what it may write.
PROBE = r"""
import errno, json, os, sys
def attempt(path, create):
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        return errno.errorcode[exc.errno]
    if create:
        os.remove(path)
    return "ok"
spec = json.loads(sys.argv[1])
status = dict(l.split(":", 1) for l in open("/proc/1/status").read().splitlines())
print(json.dumps({
    "pid1_uid": status["Uid"].split()[0], "pid1_gid": status["Gid"].split()[0],
    "pid1_cap_eff": status["CapEff"].strip(), "pid1_cap_bnd": status["CapBnd"].strip(),
    "pid1_no_new_privs": status["NoNewPrivs"].strip(),
    "root_fs": attempt("/probe-root", True),
    "writable": {p: attempt(p + "/probe", True) for p in spec["writable"]},
    "read_only": {p: attempt(p, False) for p in spec["read_only"]},
}))
"""


def probe_spec(want: Hardening) -> str:
    """PROBE's argument: the directories it must be able to write, the files it must not."""
    writable = sorted(want.writable | want.tmpfs)
    return json.dumps({"writable": writable, "read_only": sorted(want.read_only_mounts)})


def probe_problems(seen: Mapping[str, Any], want: Hardening) -> list[str]:
    """What PROBE's output shows that `want` forbids (pid 1 is the service's process)."""
    problems = []
    ids = (seen.get("pid1_uid"), seen.get("pid1_gid"))
    if ids != (str(want.uid), str(want.uid)):
        problems.append(f"pid 1 runs as uid/gid {ids}, not {want.uid}")
    for key in ("pid1_cap_eff", "pid1_cap_bnd"):
        if int(str(seen.get(key, "1")), 16) != 0:
            problems.append(f"{key} = {seen.get(key)}, not 0")
    if seen.get("pid1_no_new_privs") != "1":
        problems.append(f"NoNewPrivs = {seen.get('pid1_no_new_privs')}, not 1")
    if seen.get("root_fs") != "EROFS":
        problems.append(f"writing to / gives {seen.get('root_fs')}, not EROFS")
    for path, result in sorted((seen.get("read_only") or {}).items()):
        if result not in {"EROFS", "EACCES"}:
            problems.append(f"appending to {path} gives {result}, not EROFS/EACCES")
    for path, result in sorted((seen.get("writable") or {}).items()):
        if result != "ok":
            problems.append(f"writing under {path} gives {result}")
    return problems
