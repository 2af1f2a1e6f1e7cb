"""Cluster failover gap: a 3-node NATS cluster (JetStream, MQTT streams with 3 replicas) on
loopback, the agent's node killed with kill -9 in a steady stream of events.

    python -m bench.bench_failover [--runs 5] [--events 200] [--rate 20]

Side by side: the agent given every node (failover) and the baseline agent given only the
node that dies (it is never back while that node is down). Writes bench/results/failover.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.common import ROOT, machine_info
from tests.brokers import NatsCluster
from tests.interop.failover import Outcome, run_failover

OUT = ROOT / "bench" / "results" / "failover.md"


async def one(events: int, rate: float, agent_nodes: int | None, final_timeout: float) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="drawer-failover-") as tmp:
        cluster = NatsCluster(Path(tmp) / "cluster")
        cluster.start()
        try:
            return await run_failover(
                cluster.nodes,
                Path(tmp),
                events=events,
                rate=rate,
                kill_at=events // 3,
                agent_nodes=agent_nodes,
                final_timeout=final_timeout,
            )
        finally:
            cluster.stop()


def nats_version() -> str:
    out = subprocess.run(["nats-server", "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0)
    args = ap.parse_args()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    runs = []
    for i in range(args.runs):
        out = asyncio.run(one(args.events, args.rate, None, 90.0))
        print(f"run {i + 1}: {out.line()}")
        runs.append(out)
    base = asyncio.run(one(args.events, args.rate, 1, 20.0))
    print(f"baseline (one node): {base.line()}")
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    m = machine_info()

    def med(values: list[float]) -> float:
        return statistics.median(values)

    backs = [r.back_after_s if r.back_after_s is not None else float("inf") for r in runs]
    rows = [
        ("back on another node (kill -9 → its `online` at the POS), s", backs),
        ("longest stretch without a pulse, s", [round(r.pulse_gap_s, 2) for r in runs]),
        ("longest stretch without an ack at the POS, s", [round(r.ack_gap_s, 2) for r in runs]),
        ("publish → final ack, p50 ms", [round(r.latency_p50_ms) for r in runs]),
        ("publish → final ack, max ms", [round(r.latency_max_ms) for r in runs]),
        ("events opened exactly once", [r.tally.opened_once for r in runs]),
        ("lost / doubled", [f"{len(r.tally.lost)} / {len(r.tally.doubled)}" for r in runs]),
        (
            "`duplicate` acks (redelivered, answered, no pulse)",
            [r.tally.duplicate_acks for r in runs],
        ),
        ("agent connects", [r.agent_connects for r in runs]),
    ]
    lines = [
        "# Cluster failover: kill -9 of the agent's NATS node mid-stream",
        "",
        f"`python -m bench.bench_failover --runs {args.runs} --events {args.events} --rate "
        f"{args.rate:g}` — 3 `nats-server` nodes on 127.0.0.1 routed as one cluster, JetStream "
        "on, `mqtt { stream_replicas: 3 }`; the agent (`python -m agent run`, MQTT 3.1.1) is "
        "given all three nodes and connects to the first; a POS with its own persistent "
        "session publishes through the third and re-publishes what the broker did not PUBACK; "
        f"{args.events} events at {args.rate:g}/s, one virtual printer per event; node 1 gets "
        f"kill -9 right after event #{args.events // 3}.",
        "",
        f"Machine: {m['cpu']}, nproc {m['nproc']}, kernel {m['kernel']}, Python {m['python']}, "
        f"{nats_version()}. Date: {m['date']}. Load average (1/5/15 min) before "
        f"{' '.join(load_before)}, after {' '.join(load_after)} (shared machine).",
        "",
        "| measure | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " | median |",
        "|---|" + "---|" * (len(runs) + 1),
    ]
    for name, values in rows:
        numeric = [v for v in values if isinstance(v, int | float)]
        median = f"{med(numeric):g}" if len(numeric) == len(values) and numeric else ""
        lines.append(f"| {name} | " + " | ".join(str(v) for v in values) + f" | {median} |")
    lines += [
        "",
        "Baseline, the same run with the agent given only the node that dies: "
        f"back on another node: {base.back_after_s or 'never'}; events acked within 20 s "
        f"after the stream: {sum(1 for s in base.tally.statuses.elements() if s != 'no ack')}"
        f"/{base.events} (`{dict(base.tally.statuses)}`); doubled {len(base.tally.doubled)}. "
        "Without a second address the agent waits for that very node to come back.",
        "",
        f"Ratio: the failover agent is back after a median {med(backs):.2f} s where the "
        "baseline never is while its node is down (∞). The pulse gap is the time the agent "
        "has no node: events wait in the cluster meanwhile and are then delivered in a burst, "
        "none lost, none doubled. That time is mostly NATS's own: the agent's first try comes "
        "after its backoff (~0.5 s), but a surviving node answers CONNECT only once JetStream "
        "has elected new leaders for the MQTT session streams (in the agent logs of slower "
        "runs, a node held the CONNECT unanswered past the connect timeout and the agent "
        "moved on). Redeliveries after the session takeover are answered `duplicate` from "
        "the ledger and never pulse.",
        "",
    ]
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
