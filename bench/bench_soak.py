"""Soak: a steady event rate for minutes; the SQLite WAL, RSS, loss and doubles over time.

Each agent tree (the current one and, with `--before-root`, an older one) gets its own
broker, its own 20 virtual printers and its own POS, and all of them run at once, so both
see the same machine. Loopback only, bounded in time. Results go to bench/results/soak.md.

    python -m bench.bench_soak --before-root ../before              # 10 min at 150 ev/s
    python -m bench.bench_soak --minutes 1 --out /tmp/soak.md       # smoke
"""

from __future__ import annotations

import argparse
import contextlib
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.bench_core import (
    PRINTERS,
    Case,
    Publisher,
    Setup,
    expected_pulses,
    match,
    start_agent,
)
from bench.common import (
    ROOT,
    PrinterFarm,
    Summary,
    add_tree_arguments,
    agent_trees,
    fmt_ms,
    load_avg,
    machine_info,
    mosquitto,
    tmpdir,
)
from bench.core_report import NAMES, commit_of

RESULTS = ROOT / "bench" / "results" / "soak.md"
SAMPLE_S = 30.0


@dataclass
class Sample:
    """One reading during the soak."""

    at_s: float
    wal_mb: float
    db_mb: float
    rss_mb: float
    published: int


@dataclass
class Run:
    """One agent under soak."""

    kind: str
    samples: list[Sample] = field(default_factory=list)
    events: list[tuple[str, int, float]] = field(default_factory=list)
    lat: Summary | None = None
    dup: int = 0
    acked: int = 0
    multi_acked: int = 0
    wal_end_mb: float = math.nan
    wal_idle_mb: float = math.nan


def mb(path: Path) -> float:
    """File size in MB (0 when absent)."""
    try:
        return path.stat().st_size / 1e6
    except OSError:
        return 0.0


def rss_mb(pid: int) -> float:
    """Current resident set (VmRSS) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def publish_for(pub: Publisher, shop: str, rate: float, seconds: float, run: Run) -> None:
    """Publish at `rate` for `seconds`, appending to `run.events` as it goes."""
    topic = f"shops/{shop}/cash/events"
    terminals = [f"T{i:02d}" for i in range(PRINTERS)]
    start = time.perf_counter() + 0.05
    for i in range(round(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        eid = f"{shop}-{i}"
        idx = i % PRINTERS
        run.events.append((eid, idx, pub.publish(topic, eid, terminals[idx])))


def soak(roots: dict[str, Path], rate: float, seconds: float, out: Path) -> None:
    """Run every agent tree side by side and write the report."""
    info = machine_info()
    runs = {kind: Run(kind) for kind in roots}
    t0 = time.monotonic()
    with tmpdir() as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        agents = {}
        for kind in roots:
            farm = PrinterFarm(PRINTERS)
            stack.callback(farm.close)
            broker = stack.enter_context(mosquitto(work, f"mosquitto-{kind}", tuned=True))
            pub = Publisher(broker, nodelay=True, name=f"soak-{kind}")
            stack.callback(pub.close)
            routes = {f"T{i:02d}": ("127.0.0.1", p) for i, p in enumerate(farm.ports)}
            setup = Setup(work, roots, {"healthy": routes})
            bridge = start_agent(
                kind, f"soak{kind}", broker, Case(kind, "calm", rate, 0), setup, pub
            )
            stack.callback(bridge.stop)
            agents[kind] = (farm, pub, bridge, work / f"soak{kind}.db")
        threads = [
            threading.Thread(
                target=publish_for, args=(agents[k][1], f"soak{k}", rate, seconds, runs[k])
            )
            for k in roots
        ]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(SAMPLE_S / len(threads))
            for kind, (_, _, bridge, db) in agents.items():
                runs[kind].samples.append(
                    Sample(
                        time.monotonic() - t0,
                        mb(Path(f"{db}-wal")),
                        mb(db),
                        rss_mb(bridge.proc.pid),
                        len(runs[kind].events),
                    )
                )
        for kind, (farm, pub, _bridge, db) in agents.items():
            finish(runs[kind], farm, pub, db)
    info["load at end"] = load_avg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(info, roots, runs, rate, seconds, time.monotonic() - t0))
    print(f"wrote {out}")


def finish(run: Run, farm: PrinterFarm, pub: Publisher, db: Path) -> None:
    """Drain, then pair pulses with events and read the WAL once more after an idle moment."""
    farm.wait(expected_pulses(run.events, set()), 30.0)
    ids = [e for e, _, _ in run.events]
    pub.wait(lambda: pub.answered(ids) >= len(ids), 30.0)
    run.wal_end_mb = mb(Path(f"{db}-wal"))
    pulses, _ = farm.dump()
    lat, missing, run.dup, _ = match(run.events, pulses, set())
    run.lat = Summary.of(lat, missing)
    with pub.changed:
        run.acked = sum(1 for e in ids if e in pub.acks)
        run.multi_acked = sum(1 for e in ids if len(pub.acks.get(e, ())) > 1)
    time.sleep(3.0)  # the agent's idle checkpoint runs after a second without commits
    run.wal_idle_mb = mb(Path(f"{db}-wal"))


def render(
    info: dict[str, str],
    roots: dict[str, Path],
    runs: dict[str, Run],
    rate: float,
    seconds: float,
    elapsed: float,
) -> str:
    """The markdown report."""
    out = [
        "# Soak: the WAL, memory, loss and doubles under a steady rate\n",
        f"Generated by `python -m bench.bench_soak` in {elapsed:.0f} s: {rate:g} ev/s for "
        f"{seconds / 60:g} min per agent, every agent at once, each with its own mosquitto "
        "(`set_tcp_nodelay true`), 20 virtual printers and POS. Default agent settings "
        "(drawer-sensor read on).\n",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info.items()],
        *[f"| {NAMES[k]} | `{commit_of(r)}` |" for k, r in roots.items()],
        "",
        "| agent | events | lost | doubled | acked | acked twice | p50 / p99 ms | WAL at end "
        "| WAL 3 s after the last event | WAL max | RSS max |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for kind, run in runs.items():
        assert run.lat is not None
        wal_max = max((s.wal_mb for s in run.samples), default=math.nan)
        rss_max = max((s.rss_mb for s in run.samples), default=math.nan)
        out.append(
            f"| {NAMES[kind]} | {len(run.events)} | {run.lat.missing} | {run.dup} | "
            f"{run.acked} | {run.multi_acked} | {fmt_ms(run.lat.p50)} / {fmt_ms(run.lat.p99)} | "
            f"{run.wal_end_mb:.1f} MB | {run.wal_idle_mb:.1f} MB | {wal_max:.1f} MB | "
            f"{rss_max:.1f} MB |"
        )
    out += ["", "## Samples (every ~30 s)\n"]
    kinds = list(runs)
    out.append("| t (s) | " + " | ".join(f"{NAMES[k]} WAL / DB / RSS MB" for k in kinds) + " |")
    out.append("|---:|" + "---|" * len(kinds))
    for row in zip(*(runs[k].samples for k in kinds), strict=False):
        cells = [f"{s.wal_mb:.1f} / {s.db_mb:.1f} / {s.rss_mb:.0f}" for s in row]
        out.append(f"| {row[0].at_s:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main() -> None:
    """CLI."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=150.0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    add_tree_arguments(ap)
    args = ap.parse_args()
    roots = agent_trees(args)
    soak(roots, args.rate, args.minutes * 60, args.out)


if __name__ == "__main__":
    main()
