"""Publish → ack through each client library, beside the bare MQTT floor.

A real agent (`python -m agent run`, sensor read after the kick off so the ack follows the
written bytes) with 4 virtual printers in a farm process, one mosquitto (`set_tcp_nodelay
true`, as deploy/ ships it), all on loopback. Events go one at a time, rotating over 4 tills
(one per printer), 200 per path:

* bare MQTT floor: an aiomqtt client (TCP_NODELAY) publishing QoS 1 to a topic it is
  subscribed to, publish → its own message back: two broker hops and no agent;
* Python client: `await Client.publish(event)` → Ack;
* TypeScript client: `await client.publish(event)` → Ack, in Node (bench/bench_ts_client.mjs).

Results go to bench/results/clients.md.

    python -m bench.bench_clients            # 200 events per path
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import aiomqtt
from drawer_agent_client import Client

from bench.common import (
    ROOT,
    PrinterFarm,
    Summary,
    fmt_ms,
    free_port,
    machine_info,
    mosquitto,
)

PACKAGE = ROOT / "clients" / "typescript"
TILLS = 4


def write_config(work: Path, broker_port: int, http_port: int, ports: list[int]) -> Path:
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
        "confirm_drawer = false",
        "[security]",
        "max_pulses_per_minute = 10000",
    ]
    for i, port in enumerate(ports):
        lines += [
            f"[printers.p{i}]",
            'host = "127.0.0.1"',
            f"port = {port}",
            'model = "epson-tm-m30"',
        ]
    lines.append("[terminals]")
    lines += [f'T{i} = "p{i}"' for i in range(len(ports))]
    path = work / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def bare_floor(port: int, n: int) -> list[float]:
    topic = f"bench/floor/{uuid.uuid4().hex[:6]}"
    out: list[float] = []
    nodelay = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
    async with aiomqtt.Client(
        "127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, socket_options=nodelay
    ) as c:
        await c.subscribe(topic, qos=1)
        messages = c.messages
        for i in range(n):
            t0 = time.perf_counter()
            await c.publish(topic, json.dumps({"i": i}).encode(), qos=1)
            await anext(messages)
            out.append((time.perf_counter() - t0) * 1000)
    return out


async def python_client(port: int, n: int) -> tuple[list[float], dict[str, int]]:
    out: list[float] = []
    statuses: dict[str, int] = {}
    async with Client(f"mqtt://127.0.0.1:{port}", "bench") as c:
        for _ in range(5):  # warm-up, not counted
            await c.publish({"type": "sale", "terminal_id": "T0"})
        for i in range(n):
            t0 = time.perf_counter()
            ack = await c.publish({"type": "sale", "terminal_id": f"T{i % TILLS}"})
            out.append((time.perf_counter() - t0) * 1000)
            statuses[ack.status] = statuses.get(ack.status, 0) + 1
    return out, statuses


def ts_client(port: int, n: int) -> tuple[list[float], dict[str, int]]:
    if not (PACKAGE / "node_modules").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PACKAGE, check=True)
    subprocess.run(["npm", "run", "build", "--silent"], cwd=PACKAGE, check=True)
    done = subprocess.run(
        ["node", str(ROOT / "bench" / "bench_ts_client.mjs")],
        cwd=PACKAGE,
        env={**os.environ, "DA_MQTT_URL": f"mqtt://127.0.0.1:{port}", "DA_N": str(n)},
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["ms"], result["statuses"]


def wait_ready(http_port: int, timeout: float = 30.0) -> None:
    """Until the agent's /readyz says it is subscribed (polled: another process)."""
    end = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > end:
            raise RuntimeError("the agent did not get ready")
        time.sleep(0.2)


def row(name: str, values: list[float], note: str) -> str:
    s = Summary.of(values)
    return f"| {name} | {s.count} | {fmt_ms(s.p50)} | {fmt_ms(s.p99)} | {fmt_ms(s.max)} | {note} |"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/clients.md")
    args = parser.parse_args()
    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="bench-clients-") as tmp:
        work = Path(tmp)
        with mosquitto(work, tuned=True) as broker_port:
            farm = PrinterFarm(TILLS)
            http_port = free_port()
            config = write_config(work, broker_port, http_port, farm.ports)
            agent = subprocess.Popen(
                [sys.executable, "-m", "agent", "run", "--config", str(config)],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=subprocess.DEVNULL,
                stderr=open(work / "agent.log", "wb"),  # noqa: SIM115
            )
            try:
                wait_ready(http_port)
                floor = asyncio.run(bare_floor(broker_port, args.events))
                py, py_statuses = asyncio.run(python_client(broker_port, args.events))
                ts, ts_statuses = ts_client(broker_port, args.events)
                pulses = farm.count()
            finally:
                agent.send_signal(signal.SIGTERM)
                try:
                    agent.wait(10)
                except subprocess.TimeoutExpired:
                    agent.kill()
                farm.close()
    node = subprocess.run(
        ["node", "--version"], check=False, capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "# Client libraries: publish → ack",
        "",
        "Reproduce with `python -m bench.bench_clients` (bench/bench_clients.py). One event at a",
        "time, rotating over 4 tills on 4 virtual printers (printer farm process); the agent runs",
        "as `python -m agent run` with the sensor read after the kick off (`health.confirm_drawer",
        "= false`), so the ack follows the written bytes; mosquitto with `set_tcp_nodelay true`.",
        "The floor is a bare aiomqtt client publishing QoS 1 to a topic it subscribes to: the same",
        "two broker hops as publish → ack, without the agent. Clients publish unsigned.",
        "",
        "| Machine | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info.items()],
        f"| node | {node} |",
        "",
        "| path | n | p50 ms | p99 ms | max ms | acks |",
        "|---|---:|---:|---:|---:|---|",
        row("bare MQTT floor (publish → own message)", floor, "–"),
        row("Python client `publish` → Ack", py, json.dumps(py_statuses)),
        row("TypeScript client `publish` → Ack", ts, json.dumps(ts_statuses)),
        "",
        f"Pulses counted by the printer farm: {pulses} (5 + 5 warm-up events per client included).",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
