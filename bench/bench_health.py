"""Health-probe cost: 200 configured virtual printers probed every 5 s by a real agent.

The printers live in a separate process (bench.common farm); the agent runs as
`python -m agent run` against a throw-away mosquitto. After a warm-up, the agent's CPU
(utime + stime from /proc/PID/stat, as % of one core) and RSS (VmRSS, peak VmHWM) are
measured over the window; the probe count comes from the agent's own /metrics.
Results go to bench/results/health.md.

    python -m bench.bench_health                 # 200 printers, 5 s, 45 s window
    python -m bench.bench_health --quick         # 50 printers, 15 s window
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import ROOT, PrinterFarm, free_port, machine_info, mosquitto, proc_cpu_s

CPU_TARGET_PCT = 5.0
RSS_TARGET_MB = 100.0


def write_config(
    work: Path, broker_port: int, http_port: int, ports: list[int], interval_s: float
) -> Path:
    lines = [
        'shop_id = "bench"',
        'log_level = "WARNING"',
        "[mqtt]",
        f'url = "mqtt://127.0.0.1:{broker_port}"',
        "[http]",
        f'listen = "127.0.0.1:{http_port}"',
        "[state]",
        f'path = "{work / "ledger.db"}"',
        "[health]",
        f"interval_s = {interval_s}",
    ]
    for i, port in enumerate(ports):
        lines += [
            f"[printers.p{i:03d}]",
            'host = "127.0.0.1"',
            f"port = {port}",
            'command_set = "escpos"',
        ]
    path = work / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def scrape(http_port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("drawer_agent_probe_seconds_count"):
            out["probes"] = float(line.split()[-1])
        elif line.startswith("drawer_agent_printer_up{"):
            out["up"] = out.get("up", 0.0) + float(line.split()[-1])
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--printers", type=int, default=200)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=45.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/health.md")
    args = parser.parse_args()
    if args.quick:
        args.printers, args.window, args.warmup = 50, 15.0, 6.0
    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="bench-health-") as tmp:
        work = Path(tmp)
        with mosquitto(work) as broker_port:
            farm = PrinterFarm(args.printers)
            http_port = free_port()
            config = write_config(work, broker_port, http_port, farm.ports, args.interval)
            agent = subprocess.Popen(
                [sys.executable, "-m", "agent", "run", "--config", str(config)],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=subprocess.DEVNULL,
                stderr=open(work / "agent.log", "wb"),  # noqa: SIM115
            )
            try:
                time.sleep(args.warmup)
                before = scrape(http_port)
                cpu0, t0 = proc_cpu_s(agent.pid), time.monotonic()
                samples = []
                while time.monotonic() - t0 < args.window:
                    time.sleep(1.0)
                    samples.append(rss_mb(agent.pid)[0])
                cpu1, t1 = proc_cpu_s(agent.pid), time.monotonic()
                after = scrape(http_port)
                rss, hwm = rss_mb(agent.pid)
                _, connections = farm.dump()
            finally:
                agent.send_signal(signal.SIGTERM)
                try:
                    agent.wait(10)
                except subprocess.TimeoutExpired:
                    agent.kill()
                farm.close()
            log_tail = (work / "agent.log").read_text()[-2000:]
    elapsed = t1 - t0
    cpu_pct = (cpu1 - cpu0) / elapsed * 100
    probes = after["probes"] - before["probes"]
    expected = args.printers * elapsed / args.interval
    per_probe_us = (cpu1 - cpu0) / probes * 1e6 if probes else float("nan")
    rows = [
        (
            "CPU, % of one core",
            f"{cpu_pct:.2f} %",
            f"≤ {CPU_TARGET_PCT:g} %",
            f"{cpu_pct / CPU_TARGET_PCT:.2f}×",
        ),
        (
            "RSS at end (VmRSS)",
            f"{rss:.1f} MiB",
            f"≤ {RSS_TARGET_MB:g} MB",
            f"{rss / RSS_TARGET_MB:.2f}×",
        ),
        (
            "RSS peak (VmHWM)",
            f"{hwm:.1f} MiB",
            f"≤ {RSS_TARGET_MB:g} MB",
            f"{hwm / RSS_TARGET_MB:.2f}×",
        ),
        ("RSS max sampled each 1 s", f"{max(samples):.1f} MiB", "", ""),
    ]
    md = [
        "# Health probes: CPU and memory of the agent",
        "",
        f"`python -m bench.bench_health{' --quick' if args.quick else ''}` — "
        f"{args.printers} configured ESC/POS virtual printers (one separate process, "
        f"127.0.0.1), `[health] interval_s = {args.interval:g}`, probes staggered over the "
        f"interval; each probe is connect + `DLE EOT 1..4` + 4-byte reply + close under the "
        f"printer lock. Agent = `python -m agent run` (its own process, log level WARNING, "
        f"real mosquitto). Warm-up {args.warmup:g} s, then a {elapsed:.1f} s window.",
        "",
        f"Machine: {info['cpu']}, nproc {info['nproc']}, kernel {info['kernel']}, "
        f"Python {info['python']}, {info['mosquitto']}. Date: {info['date']}.",
        "",
        "| measure | value | target | ratio |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
        f"Probes in the window (agent's `drawer_agent_probe_seconds_count`): {probes:.0f} "
        f"(expected ≈ {expected:.0f}); {per_probe_us:.0f} µs of agent CPU per probe "
        f"(connect, write, read, close, parse, compare, metrics). Printers up at the end: "
        f"{after.get('up', 0):.0f}/{args.printers}. Connections seen by the farm since start: "
        f"{sum(connections)}.",
        "",
        "CPU is measured for the agent process only (utime + stime); the printer farm and "
        "mosquitto run in their own processes and are not counted. The retained status is "
        "published only on change, so a steady fleet costs no MQTT traffic per probe.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(md))
    print("\n".join(md))
    if "Traceback" in log_tail:
        print(log_tail, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
