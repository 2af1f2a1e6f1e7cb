"""The docker image: its size, the demo shop's cold start to healthy, the agent container's memory.

    nice -n 10 python -m bench.bench_docker [--runs 3]

On a real engine (tests/deploy/docker_engine.py: dockerd started if none answers, stand-in
bases built from Debian packages, the project image built offline with docker/Dockerfile):

* image size: the project image vs the stand-in python:3.11-slim-bookworm it is built on,
  uncompressed (`docker image inspect .Size`) and gzip-compressed (`docker save | gzip`, which
  is how a registry ships layers), and the largest layers (`docker history`);
* cold start: `compose up -d` of docker/compose.yaml under a fresh project (new network,
  new volumes, image present) until `/healthz` answers 200 on the published port and until
  Docker reports the HEALTHCHECK healthy; then `restart agent` to healthy; median of --runs;
* memory after one sale was opened from a container: the agent's VmRSS/VmHWM (pid 1 of the
  container, read from the host's /proc), the container cgroup's memory.current and anon,
  and what `docker stats` shows.

Everything it creates is removed at the end. Writes bench/results/docker.md.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any

from bench.common import ROOT, free_port, load_avg, machine_info
from tests.deploy.docker_engine import (
    PYTHON,
    Project,
    build_project_image,
    compose_cli,
    docker_daemon,
    ensure_standins,
    image_ids,
    remove_images,
    run,
)

OUT = ROOT / "bench" / "results" / "docker.md"
CONFIG = "/etc/drawer-agent/drawer-agent.toml"
POLL_S = 0.1
TIMEOUT_S = 180.0
MIB = 1024 * 1024


def image_size(docker: str, image: str) -> int:
    return int(run([docker, "image", "inspect", "-f", "{{.Size}}", image]).stdout)


def gzip_size(docker: str, image: str) -> int:
    """Bytes of `docker save IMAGE | gzip -6`: the image as a registry would ship it."""
    proc = subprocess.Popen([docker, "save", image], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
    total = 0
    while chunk := proc.stdout.read(1 << 20):
        total += len(packer.compress(chunk))
    total += len(packer.flush())
    assert proc.wait() == 0, f"docker save {image} failed"
    return total


def layers(docker: str, image: str) -> list[tuple[int, str]]:
    """(bytes, instruction) of the image's layers that hold data, largest first."""
    out = run([docker, "history", "--no-trunc", "--human=false", "--format",
               "{{.Size}}\t{{.CreatedBy}}", image]).stdout  # fmt: skip
    rows = []
    for line in out.splitlines():
        size, _, created = line.partition("\t")
        if int(size) > 0:
            rows.append((int(size), " ".join(created.replace("/bin/sh -c #(nop) ", "").split())))
    return sorted(rows, reverse=True)


# In the image: the virtualenv's size, its largest site-packages entries, and its bytecode.
VENV_SIZES = (
    "du -sk /opt/drawer-agent; "
    "du -sk /opt/drawer-agent/lib/python3*/site-packages/* | sort -rn | head -n 10; "
    "find /opt/drawer-agent -name '*.pyc' -printf '%s\\n' "
    "| awk '{s+=$1} END {print int(s/1024), \"*.pyc (all bytecode)\"}'"
)


def venv_sizes(docker: str, image: str) -> list[tuple[int, str]]:
    """(KiB, path) of the virtualenv, its largest entries, and the total of its .pyc files."""
    out = run([docker, "run", "--rm", "--network", "none", "--entrypoint", "sh", image,
               "-c", VENV_SIZES]).stdout  # fmt: skip
    rows = []
    for line in out.splitlines():
        size, _, path = line.partition("\t" if "\t" in line else " ")
        rows.append((int(size), path.strip().rsplit("/site-packages/", 1)[-1]))
    return rows


def healthz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return int(r.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def until_healthy(shop: Project, started: float, *, not_started_at: str | None = None
                  ) -> tuple[float, float]:  # fmt: skip
    """Seconds from ``started`` until /healthz answers 200, and until Docker says healthy."""
    cid = shop.container("agent")
    http_s: float | None = None
    deadline = started + TIMEOUT_S
    while time.monotonic() < deadline:
        state = shop.inspect(cid)["State"]
        fresh = not_started_at is None or state["StartedAt"] != not_started_at
        if http_s is None and fresh and healthz(shop.http_port):
            http_s = time.monotonic() - started
        if fresh and state.get("Health", {}).get("Status") == "healthy":
            return (http_s if http_s is not None else time.monotonic() - started,
                    time.monotonic() - started)  # fmt: skip
        if state["Status"] in {"exited", "dead"}:
            raise RuntimeError(f"agent {state}\n{shop.logs('agent')}")
        time.sleep(POLL_S)
    raise RuntimeError(f"agent not healthy within {TIMEOUT_S:g} s\n{shop.logs('agent')}")


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (kB) of a host pid."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            out[key] = int(rest.split()[0])
    return out


def cgroup_memory(pid: int) -> dict[str, Any]:
    """The memory of the pid's cgroup (bytes): in use, anonymous, page cache, peak.

    cgroup v2 (memory.current, memory.stat anon/file, memory.peak) or the v1 memory
    controller (memory.usage_in_bytes, memory.stat rss/cache, memory.max_usage_in_bytes).
    """
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    groups = {parts[1]: parts[2] for parts in (x.split(":", 2) for x in lines)}
    v1 = next((path for names, path in groups.items() if "memory" in names.split(",")), None)
    if v1 is not None:
        folder = Path("/sys/fs/cgroup/memory") / v1.lstrip("/")
        names = ("v1", "memory.usage_in_bytes", "rss", "cache", "memory.max_usage_in_bytes")
    else:
        folder = Path("/sys/fs/cgroup") / groups[""].lstrip("/")
        names = ("v2", "memory.current", "anon", "file", "memory.peak")
    version, current, anon, file, peak = names
    stat = dict(x.split() for x in (folder / "memory.stat").read_text().splitlines())
    out: dict[str, Any] = {
        "cgroup": version,
        "current": int((folder / current).read_text()),
        "anon": int(stat[anon]),
        "file": int(stat[file]),
    }
    if (folder / peak).exists():
        out["peak"] = int((folder / peak).read_text())
    return out


def memory(shop: Project) -> dict[str, Any]:
    cid = shop.container("agent")
    pid = int(shop.inspect(cid)["State"]["Pid"])
    stats = run([shop.docker, "stats", "--no-stream", "--format", "{{.MemUsage}}", cid]).stdout
    return {**proc_status(pid), **cgroup_memory(pid), "docker_stats": stats.strip()}


def one_run(docker: str, compose: list[str], image: str) -> dict[str, Any]:
    name = f"drawer-agent-bench-{secrets.token_hex(4)}"
    shop = Project(docker=docker, compose=compose, name=name, image=image, http_port=free_port())
    try:
        started = time.monotonic()
        shop.cmd("up", "-d", "--no-build")
        up_s = time.monotonic() - started
        http_s, healthy_s = until_healthy(shop, started)
        sale = ("publish", "--type", "sale", "--terminal", "T1", "--config", CONFIG)
        result = shop.cmd("run", "--rm", "-T", "agent", *sale, check=False, timeout=120)
        ack = json.loads(result.stdout[result.stdout.find("{") :])
        assert ack["status"] == "opened", ack
        mem = memory(shop)
        before = shop.inspect(shop.container("agent"))["State"]["StartedAt"]
        restarted = time.monotonic()
        shop.cmd("restart", "agent")
        restart_http_s, restart_healthy_s = until_healthy(shop, restarted, not_started_at=before)
        return {"up_s": up_s, "http_s": http_s, "healthy_s": healthy_s,
                "restart_http_s": restart_http_s, "restart_healthy_s": restart_healthy_s,
                "memory": mem}  # fmt: skip
    finally:
        left = shop.remove()
        assert not left, f"left behind: {left}"


def mib(value: float) -> str:
    return f"{value / MIB:.1f} MiB"


def report(args: argparse.Namespace, info: dict[str, str], found: dict[str, Any]) -> str:
    runs = found["runs"]

    def row(name: str, values: list[float], unit: str = "s") -> str:
        cells = " | ".join(f"{v:.1f}" for v in values)
        return f"| {name}, {unit} | {cells} | **{statistics.median(values):.1f}** |"

    header = "| measure | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " | median |"
    mem = [r["memory"] for r in runs]
    sizes = found["sizes"]
    lines = [
        "# Docker image",
        "",
        f"`nice -n 10 python -m bench.bench_docker --runs {args.runs}` — Docker Engine "
        f"{found['engine']}, {found['compose']}; the project image built offline by the "
        "classic builder from docker/Dockerfile on a stand-in `python:3.11-slim-bookworm` "
        "(Debian bookworm's python3 3.11 and python3-venv, built with mmdebstrap; no registry "
        "is reachable here), the demo shop of docker/compose.yaml on its own bridge network.",
        "",
        f"Machine: {info['cpu']}, nproc {info['nproc']}, kernel {info['kernel']}. "
        f"Date: {info['date']}. Load average (1/5/15 min) before {info['load at start']}, "
        f"after {found['load_after']} (shared machine).",
        "",
        "## Size",
        "",
        "| image | uncompressed | gzip (as shipped by a registry) |",
        "|---|---|---|",
        f"| drawer-agent (project image) | {mib(sizes['image'])} | {mib(sizes['image_gz'])} |",
        f"| stand-in python:3.11-slim-bookworm alone | {mib(sizes['base'])} | "
        f"{mib(sizes['base_gz'])} |",
        f"| what the project adds | {mib(sizes['image'] - sizes['base'])} | "
        f"{mib(sizes['image_gz'] - sizes['base_gz'])} |",
        "",
        "The official `python:3.11-slim-bookworm` was not measured here (no registry); its "
        "size is the one Docker Hub publishes per architecture on the tag's page, compressed. "
        "The stand-in is not that image (Debian's python3 packages instead of a Python built "
        "into /usr/local), so compare the project's own layers, which are the same on either "
        f"base. Build: {found['build_s']:.0f} s (offline, wheelhouse built on the host).",
        "",
        "Largest layers of the project image:",
        "",
        "| bytes | instruction |",
        "|---|---|",
        *(
            f"| {mib(size)} | `{text[:110]}` |" if text else f"| {mib(size)} | (the base image) |"
            for size, text in found["layers"][:5]
        ),
        "",
        "The virtualenv `/opt/drawer-agent` (`du -sk` in the image) and its largest entries:",
        "",
        "| KiB | path |",
        "|---|---|",
        *(f"| {kib:,} | `{path}` |" for kib, path in found["venv"]),
        "",
        "## Cold start and restart",
        "",
        header,
        "|---|" + "---|" * (len(runs) + 1),
        row("`up -d` returns (network, 2 volumes, 3 containers)", [r["up_s"] for r in runs]),
        row("`up -d` → /healthz 200 on the published port", [r["http_s"] for r in runs]),
        row("`up -d` → Docker HEALTHCHECK healthy", [r["healthy_s"] for r in runs]),
        row("`restart agent` → /healthz 200", [r["restart_http_s"] for r in runs]),
        row("`restart agent` → healthy", [r["restart_healthy_s"] for r in runs]),
        "",
        "Docker runs the first HEALTHCHECK probe one `--interval` (30 s) after the container "
        "starts (Engine 20.10 has no `--start-interval`, added in 25), so *healthy* cannot come "
        "sooner than that; the agent itself answers `/healthz` much earlier.",
        "",
        "## Memory of the agent container (after one sale opened from a container)",
        "",
        header,
        "|---|" + "---|" * (len(runs) + 1),
        row("agent VmRSS (pid 1)", [m["VmRSS"] / 1024 for m in mem], "MiB"),
        row("agent VmHWM (peak RSS)", [m["VmHWM"] / 1024 for m in mem], "MiB"),
        row(f"cgroup ({mem[0]['cgroup']}) memory in use", [m["current"] / MIB for m in mem], "MiB"),
        row("cgroup anonymous (rss / anon)", [m["anon"] / MIB for m in mem], "MiB"),
        row("cgroup page cache (cache / file)", [m["file"] / MIB for m in mem], "MiB"),
        *(
            [row("cgroup peak in use", [m["peak"] / MIB for m in mem], "MiB")]
            if all("peak" in m for m in mem)
            else []
        ),
        "",
        "`docker stats` MEM USAGE: " + "; ".join(f"`{m['docker_stats']}`" for m in mem) + ".",
        "",
        "VmRSS counts every resident page the agent maps, including the Python runtime and the "
        "shared libraries read from the image, which the kernel charges to whichever cgroup "
        "read them first (the `printer` container runs the same image); the cgroup figures are "
        "what the agent container itself is charged for, which is what a `mem_limit` caps.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="cold starts to take the median of")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    info = machine_info()
    with docker_daemon() as docker:
        keep = image_ids(docker)
        image = f"drawer-agent:bench-{secrets.token_hex(4)}"
        try:
            ensure_standins(docker)
            build_s = build_project_image(docker, image)
            found: dict[str, Any] = {
                "engine": run([docker, "version", "-f", "{{.Server.Version}}"]).stdout.strip(),
                "compose": run([*compose_cli(docker), "version", "--short"]).stdout.strip(),
                "build_s": build_s,
                "layers": layers(docker, image),
                "venv": venv_sizes(docker, image),
                "sizes": {
                    "image": image_size(docker, image),
                    "base": image_size(docker, PYTHON.tag),
                    "image_gz": gzip_size(docker, image),
                    "base_gz": gzip_size(docker, PYTHON.tag),
                },
                "runs": [],
            }
            compose = compose_cli(docker)
            for n in range(args.runs):
                found["runs"].append(one_run(docker, compose, image))
                r = found["runs"][-1]
                print(f"run {n + 1}: healthz {r['http_s']:.1f} s, healthy {r['healthy_s']:.1f} s, "
                      f"RSS {r['memory']['VmRSS'] / 1024:.1f} MiB", flush=True)  # fmt: skip
        finally:
            left = remove_images(docker, keep)
            assert not left, f"images left behind: {left}"
    found["load_after"] = load_avg()
    found["compose"] = "docker-compose " + found["compose"]
    text = report(args, info, found)
    OUT.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
