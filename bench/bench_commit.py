"""An event's ledger commits after an idle while, with the WAL kept and with it truncated.

In a shop nearly every event comes after an idle while, and the agent's checkpointer has
run meanwhile. One event here is the agent's four commits (claim, sending, final, acked) on
a real SQLite file in WAL mode with the agent's settings (agent.io.ledger.Ledger). Rows:

* back to back (the floor: no checkpoint and no pause between events);
* after an idle pause and the idle checkpoint as shipped (WAL within journal_size_limit
  kept, so the next commit writes into the file as it is);
* after an idle pause and a TRUNCATE checkpoint, the rule before this change (the naive
  bound: the WAL cut to nothing whenever the agent was idle).

    python -m bench.bench_commit      # about 1 minute; writes bench/results/commit.md
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from agent.io.ledger import Ledger
from bench.common import ROOT, machine_info, tmpdir

RESULTS = ROOT / "bench" / "results" / "commit.md"


def one_event(ledger: Ledger, event_id: str) -> float:
    """The four commits of one pulsed event; their time in ms."""
    now = time.time()
    started = time.perf_counter()
    ledger.claim(
        event_id=event_id,
        type_="sale",
        terminal_id="T1",
        printer_id="front",
        occurred_at=now,
        received_at=now,
        deadline=now + 30,
    )
    ledger.mark_sending(event_id, 1)
    ledger.finish(
        event_id,
        status="opened",
        attempts=1,
        finished_at=now,
        sent_at=now,
        latency_ms=1.0,
        detail="",
        drawer_open=None,
    )
    ledger.mark_acked(event_id)
    return (time.perf_counter() - started) * 1000


def row(path: Path, mode: str, events: int, pause_s: float) -> list[float]:
    """`events` events, each after `pause_s` and the checkpoint of `mode`."""
    times = []
    with Ledger.open(path, background_checkpoints=True) as ledger:
        truncator = sqlite3.connect(path, isolation_level=None)
        try:
            for i in range(20):  # a little history, as a running shop has
                one_event(ledger, f"warm-{i}")
            for i in range(events):
                if mode != "floor":
                    time.sleep(pause_s)
                    ledger.checkpoint(idle=True)
                    if mode == "truncate":
                        truncator.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                times.append(one_event(ledger, f"{mode}-{i}"))
        finally:
            truncator.close()
    return times


def main() -> None:
    """Measure the three rows, interleaved file by file, and write the report."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=40)
    ap.add_argument("--pause", type=float, default=0.5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    info = machine_info()
    results: dict[str, list[float]] = {"floor": [], "kept": [], "truncate": []}
    with tmpdir() as tmp:
        for rnd in range(2):  # two rounds, each mode on its own file, so drift shows
            for mode in results:
                path = Path(tmp) / f"{mode}-{rnd}.db"
                results[mode] += row(path, mode, args.events // 2, args.pause)
    names = {
        "floor": "back to back (floor)",
        "kept": "after an idle pause, WAL kept within the limit (as shipped)",
        "truncate": "after an idle pause, WAL truncated to nothing (before)",
    }
    floor = statistics.median(results["floor"])
    out = [
        "# An event's ledger commits after an idle while (bench/bench_commit.py)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
        + ", ".join(f"{k}: {v}" for k, v in info.items())
        + f". Four commits per event (claim, sending, final, acked); {args.events} events per "
        f"row, idle pause {args.pause:g} s; the ledger file in the system's temp directory.",
        "",
        "| row | events | p50 (ms) | p90 (ms) | max (ms) | p50 ÷ floor |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode, times in results.items():
        q = statistics.quantiles(times, n=10)
        p50 = statistics.median(times)
        out.append(
            f"| {names[mode]} | {len(times)} | {p50:.3f} | {q[8]:.3f} | {max(times):.3f} | "
            f"{p50 / floor:.1f}× |"
        )
    out.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(out))
    print("\n".join(out))


if __name__ == "__main__":
    main()
