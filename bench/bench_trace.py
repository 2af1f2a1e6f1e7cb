"""Where an event's time goes inside the agent: receipt → kick bytes, step by step.

The same agent, printers and broker as bench_core (default mosquitto, POS with TCP_NODELAY,
20 virtual printers, sensor read on), 50 ev/s, one tree after the other (`--before-root`
for a side by side). A wrapper run instead of `-m agent` stamps `perf_counter_ns()` at the
entry or exit of each step of the hot path and writes the stamps to the agent's log at
exit; events at 50 ev/s do not overlap, so each `rx` starts one event's sequence.

    python -m bench.bench_trace --before-root ../before   # about 1 minute
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import bench.bench_core as core
from bench.common import (
    ROOT,
    PrinterFarm,
    add_tree_arguments,
    agent_trees,
    fmt_ms,
    load_avg,
    machine_info,
    tmpdir,
)
from bench.core_report import NAMES, commit_of

RESULTS = ROOT / "bench" / "results" / "trace.md"
# With the sensor read on (the default), a printer's lane is busy reading the drawer for
# ~0.4 s after each kick, and the early connect waits for an idle lane (Dispatcher.warm).
VARIANTS = (("sensor on", ()), ("sensor off", ("health.confirm_drawer=false",)))

# (class path, method, label, stamped at "entry" or "exit"), in hot-path order.
STEPS = (
    ("agent.service.intake:Intake", "handle", "rx", "entry"),
    ("agent.service.intake:Intake", "_decode", "decoded", "exit"),
    ("agent.service.admission:Admission", "open", "decided", "entry"),
    ("agent.service.admission:Admission", "known", "known", "exit"),
    ("agent.io.printer_link:Early", "start", "syn", "exit"),
    ("agent.io.ledger:Ledger", "claim", "claimed", "exit"),
    ("agent.io.mqtt_link:MqttLink", "ack", "puback", "exit"),
    ("agent.service.dispatcher:Dispatcher", "_attempt", "attempt", "entry"),
    ("agent.io.printer_link:Early", "finish", "connected", "exit"),
    ("agent.io.printer_link:Session", "status", "status read", "exit"),
    ("agent.io.ledger:Ledger", "mark_sending", "sending", "exit"),
    ("agent.io.printer_link:Session", "kick", "kick", "entry"),
)
WRAPPER = """
import atexit, functools, importlib, inspect, sys, time
from agent import cli
STEPS = __STEPS__
stamps = []
def wrap(owner, name, label, at):
    f = owner.__dict__[name]
    static = isinstance(f, classmethod)
    f = f.__func__ if static else f
    if inspect.iscoroutinefunction(f):
        async def w(*a, **k):
            if at == "entry": stamps.append((label, time.perf_counter_ns()))
            r = await f(*a, **k)
            if at == "exit": stamps.append((label, time.perf_counter_ns()))
            return r
    else:
        def w(*a, **k):
            if at == "entry": stamps.append((label, time.perf_counter_ns()))
            r = f(*a, **k)
            if at == "exit": stamps.append((label, time.perf_counter_ns()))
            return r
    w = functools.wraps(f)(w)
    setattr(owner, name, classmethod(w) if static else w)
for path, name, label, at in STEPS:
    module, cls = path.split(":")
    wrap(getattr(importlib.import_module(module), cls), name, label, at)
def dump():
    for label, ns in stamps:
        print(f"TRACE {label}={ns}", file=sys.stderr)
atexit.register(dump)
sys.exit(cli.main(sys.argv[1:]))
""".replace("__STEPS__", repr(STEPS))
STAMP = re.compile(r"TRACE (.+)=(\d+)")


def sequences(log: Path) -> list[list[tuple[str, int]]]:
    """One list of (label, ns) per event, each starting at its `rx`."""
    out: list[list[tuple[str, int]]] = []
    for label, ns in STAMP.findall(log.read_text(errors="replace")):
        if label == "rx":
            out.append([])
        if out:
            out[-1].append((label, int(ns)))
    return out


def steps(seqs: list[list[tuple[str, int]]]) -> tuple[dict[str, list[float]], int, int]:
    """Microseconds per step over the events that took the usual path (a pulse)."""
    shapes = Counter(tuple(label for label, _ in s) for s in seqs)
    usual = max((shape for shape in shapes if shape[-1] == "kick"), key=shapes.__getitem__)
    d: dict[str, list[float]] = defaultdict(list)
    for s in seqs:
        if tuple(label for label, _ in s) != usual:
            continue
        for (a, ta), (b, tb) in itertools.pairwise(s):
            d[f"{a} → {b}"].append((tb - ta) / 1000)
        d["rx → kick (total)"].append((s[-1][1] - s[0][1]) / 1000)
    return d, shapes[usual], len(seqs)


def main() -> None:
    """Trace each tree at 50 ev/s and write the report."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    add_tree_arguments(ap)
    args = ap.parse_args()
    roots = agent_trees(args)
    core.AGENT_ARGV = ["-c", WRAPPER]
    info = machine_info()
    traced = {}
    with tmpdir() as tmp, contextlib.ExitStack() as stack:
        farm = PrinterFarm(core.PRINTERS)
        stack.callback(farm.close)
        rig = core.Rig(stack, core.Setup(Path(tmp), roots, core.routes_for(farm)), farm)
        for variant, overrides in VARIANTS:
            for kind in roots:
                case = core.Case(kind, "calm", 50, args.seconds, agent_set=overrides)
                ph = rig.measure(case, 5.0)
                core.progress(0.0, ph)
                log = Path(tmp) / f"{kind}{rig.n}.log"
                traced[f"{NAMES[kind]}, {variant}"] = (ph, *steps(sequences(log)))
    info["load at end"] = load_avg()
    kinds = list(traced)
    labels = list(dict.fromkeys(k for kind in kinds for k in traced[kind][1]))
    out = [
        "# Inside the agent: receipt → kick bytes, step by step (bench/bench_trace.py)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
        + ", ".join(f"{k}: {v}" for k, v in info.items())
        + ".",
        "",
        *[f"- {NAMES[kind]}: `{commit_of(root)}`" for kind, root in roots.items()],
        "",
        f"Default mosquitto, POS with TCP_NODELAY, 20 virtual printers, 50 ev/s for "
        f"{args.seconds:g} s per tree and sensor setting. Each step's time runs "
        "from the previous stamp to its own (µs, p50 / p90); *rx* is the agent's receipt of "
        "the message, *kick* the moment the kick is handed to the socket. The wrappers add a "
        "few µs per step.",
        "",
        "| step | " + " | ".join(kinds) + " |",
        "|---|" + "---:|" * len(kinds),
    ]
    for label in labels:
        cells = []
        for kind in kinds:
            v = traced[kind][1].get(label)
            cells.append(
                "–" if not v else f"{statistics.median(v):.0f} / {sorted(v)[int(len(v) * 0.9)]:.0f}"
            )
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out += [
        "| events traced (of all) | "
        + " | ".join(f"{traced[k][2]} of {traced[k][3]}" for k in kinds)
        + " |",
        "| publish → first byte at the printer p50 / p99 (ms) | "
        + " | ".join(
            f"{fmt_ms(traced[k][0].lat.p50)} / {fmt_ms(traced[k][0].lat.p99)}" for k in kinds
        )
        + " |",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
