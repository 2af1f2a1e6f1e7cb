"""Core-path benchmark: MQTT publish -> first kick byte at a LAN printer, on loopback.

One run measures, side by side and against the same mosquitto and the same 20 virtual
printers (a separate process):

* floors: a bare MQTT pub->sub hop, a bare TCP connect+write, and the combined floor
  (an asyncio subscriber that opens a TCP connection and writes 5 bytes per event);
* a naive synchronous bridge (paho `on_message` + blocking socket per event, no ledger);
* drawer-agent itself (`python -m agent run`, SQLite ledger in WAL on a temp file);
* the three bridges again with one printer hanging in connect (SYNs dropped);
* sustained throughput at >= 1,000 events/s.

Every bridge runs in its own process; the publisher (this process) stamps `time.time()`
just before each publish and the printer farm stamps `time.time()` when the kick bytes are
decoded (same host clock). Results go to bench/results/core.md.

    python -m bench.bench_core            # full run, about 5 minutes
    python -m bench.bench_core --quick    # smoke, about 1 minute
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    KICK,
    ROOT,
    PrinterFarm,
    Summary,
    fmt_ms,
    machine_info,
    mosquitto,
    proc_cpu_s,
    proc_hwm_mb,
    ratio,
    tmpdir,
)

PRINTERS = 20
RATES = (1, 50, 500)
CONNECT_TIMEOUT_S = 1.0  # the naive bridge and the floor use the agent's default
RESULTS = ROOT / "bench" / "results" / "core.md"
AGENT_SET: list[str] = []  # --agent-set section.key=value (TOML value), for experiments
AGENT_ROOT = ROOT  # --agent-root runs the agent from another tree (e.g. a scratch copy)


def say(obj: object) -> None:
    """One JSON line on stdout (bridge -> bench)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# =========================================================================== bridges
# Each runs as `python -m bench.bench_core --role ROLE --spec JSON` in its own process.


async def role_hop(spec: dict[str, Any]) -> None:
    """Bare MQTT hop: an aiomqtt subscriber that only timestamps (the agent's MQTT stack)."""
    import aiomqtt

    got: list[tuple[float, bytes]] = []
    loop = asyncio.get_running_loop()
    async with aiomqtt.Client("127.0.0.1", spec["broker"], identifier=f"hop-{os.getpid()}") as c:
        await c.subscribe(spec["topic"], qos=1)

        async def read() -> None:
            async for m in c.messages:
                got.append((time.time(), bytes(m.payload)))  # type: ignore[arg-type]

        task = asyncio.create_task(read())
        say({"ready": True})
        await loop.run_in_executor(None, sys.stdin.readline)
        task.cancel()
        say({json.loads(p)["event_id"]: t for t, p in got})


async def role_floor(spec: dict[str, Any]) -> None:
    """Combined floor: aiomqtt subscriber that connects and writes 5 bytes per event."""
    import aiomqtt

    routes = {k: tuple(v) for k, v in spec["routes"].items()}
    tasks: set[asyncio.Task[None]] = set()
    errors = Counter[str]()

    async def kick(host: str, port: int) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                _, w = await asyncio.open_connection(host, port)
            w.write(KICK)
            await w.drain()
            w.close()
            await w.wait_closed()
        except (OSError, TimeoutError) as exc:
            errors[type(exc).__name__] += 1

    async with aiomqtt.Client("127.0.0.1", spec["broker"], identifier=f"floor-{os.getpid()}") as c:
        await c.subscribe(spec["topic"], qos=1)
        say({"ready": True})
        async for m in c.messages:
            ev = json.loads(m.payload)  # type: ignore[arg-type]
            t = asyncio.create_task(kick(*routes[ev["terminal_id"]]))
            tasks.add(t)
            t.add_done_callback(tasks.discard)


def role_naive(spec: dict[str, Any]) -> None:
    """What a first attempt looks like: paho callback, blocking socket per event, no ledger."""
    import paho.mqtt.client as mqtt

    routes = {k: tuple(v) for k, v in spec["routes"].items()}
    topic = spec["topic"]

    def on_connect(client: Any, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        client.subscribe(topic, qos=1)

    def on_subscribe(*_a: Any) -> None:
        say({"ready": True})

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        try:
            ev = json.loads(msg.payload)
            host, port = routes[ev["terminal_id"]]
            s = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
            s.sendall(KICK)
            s.close()
        except Exception as exc:  # a first attempt swallows everything
            print(f"naive: {exc!r}", file=sys.stderr)

    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"naive-{os.getpid()}", clean_session=True
    )
    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    c.connect("127.0.0.1", spec["broker"])
    c.loop_forever()


# =========================================================================== publisher


class Publisher:
    """The POS side: a paho client with its network thread; collects acks and agent status."""

    def __init__(self, broker: int) -> None:
        import paho.mqtt.client as mqtt

        self.acks: dict[str, list[tuple[str, float]]] = {}
        self.agent_ms: dict[str, float] = {}  # the ack's latency_ms: agent receipt -> write
        self.online: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pos")
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.on_message = self._on_message
        subscribed = threading.Event()
        c.on_subscribe = lambda *_a: subscribed.set()
        c.connect("127.0.0.1", broker)
        # A POS that publishes events and also takes QoS 1 acks on one connection must turn
        # Nagle off: otherwise its PUBACKs hold back the next PUBLISH until the broker's
        # delayed ACK (~40 ms on Linux). Measured: agent p50 20-35 ms without this line.
        c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.loop_start()
        c.subscribe([("shops/+/cash/acks", 1), ("shops/+/agent/status", 1)])
        if not subscribed.wait(10):
            raise RuntimeError("publisher could not subscribe")
        self.client = c

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        now = time.time()
        shop = msg.topic.split("/")[1]
        body = json.loads(msg.payload)
        if msg.topic.endswith("/acks"):
            with self.lock:
                self.acks.setdefault(body.get("event_id"), []).append((body["status"], now))
                if body.get("latency_ms") is not None:
                    self.agent_ms[body["event_id"]] = body["latency_ms"]
        elif body.get("state") == "online":
            self.online.setdefault(shop, threading.Event()).set()

    def wait_online(self, shop: str, timeout: float = 20.0) -> None:
        """Wait for the agent of `shop` to publish its retained online status."""
        ev = self.online.setdefault(shop, threading.Event())
        if not ev.wait(timeout):
            raise RuntimeError(f"agent for {shop} never came online")

    def publish_paced(
        self, topic: str, prefix: str, rate: float, count: int
    ) -> list[tuple[str, int, float]]:
        """Publish `count` events at `rate`/s round-robin over the terminals."""
        events = []
        start = time.perf_counter() + 0.02
        for i in range(count):
            target = start + i / rate
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            idx = i % PRINTERS
            eid = f"{prefix}-{i}"
            payload = json.dumps(
                {
                    "event_id": eid,
                    "type": "sale",
                    "terminal_id": f"T{idx:02d}",
                    "occurred_at": datetime.fromtimestamp(time.time(), UTC).isoformat(
                        timespec="milliseconds"
                    ),
                    "amount": 12.5,
                    "currency": "EUR",
                    "payment_method": "cash",
                },
                separators=(",", ":"),
            )
            ts = time.time()
            self.client.publish(topic, payload, qos=1)
            events.append((eid, idx, ts))
        return events

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


# =========================================================================== bridges as processes


@dataclass
class Bridge:
    """A running bridge process."""

    kind: str
    proc: subprocess.Popen[str]
    shop: str
    log: Path | None = None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(6)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_bridge(
    kind: str,
    shop: str,
    broker: int,
    routes: dict[str, tuple[str, int]],
    work: Path,
    pub: Publisher,
) -> Bridge:
    """Start the floor, naive or agent bridge for `shop` and wait until it subscribed."""
    topic = f"shops/{shop}/cash/events"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if kind == "agent":
        cfg = work / f"{shop}.toml"
        lines = [
            f'shop_id = "{shop}"',
            "[mqtt]",
            f'url = "mqtt://127.0.0.1:{broker}"',
            "[security]",
            "max_pulses_per_minute = 0   # bench: 50 pulses/s per drawer would hit the limiter",
            "[dispatch]",
            "queue_size = 100000",
            "grace_s = 0.5",
            "[http]",
            'listen = "127.0.0.1:0"',
            "[state]",
            f'path = "{work / (shop + ".db")}"',
        ]
        for tid, (host, port) in routes.items():
            lines += [
                f"[printers.P{tid[1:]}]",
                f'host = "{host}"',
                f"port = {port}",
                'command_set = "escpos"',
            ]
        lines.append("[terminals]")
        lines += [f'{tid} = "P{tid[1:]}"' for tid in routes]
        for item in AGENT_SET:
            key, value = item.split("=", 1)
            section, name = key.split(".", 1)
            where = lines.index(f"[{section}]") if f"[{section}]" in lines else None
            if where is None:
                lines[1:1] = [f"[{section}]", f"{name} = {value}"]
            else:
                lines.insert(where + 1, f"{name} = {value}")
        cfg.write_text("\n".join(lines) + "\n")
        log = work / f"{shop}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(cfg)],
            cwd=AGENT_ROOT,
            env={**os.environ, "PYTHONPATH": str(AGENT_ROOT)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
            text=True,
        )
        bridge = Bridge(kind, proc, shop, log)
        try:
            pub.wait_online(shop)
        except RuntimeError:
            bridge.stop()
            raise RuntimeError(f"agent did not start: {log.read_text()[-2000:]}") from None
        return bridge
    spec = json.dumps({"broker": broker, "topic": topic, "routes": routes})
    log = work / f"{shop}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_core", "--role", kind, "--spec", spec],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        bufsize=1,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"{kind} bridge died: {log.read_text()[-2000:]}")
    return Bridge(kind, proc, shop, log)


# =========================================================================== one phase


@dataclass
class Phase:
    """The measured result of one (bridge, scenario, rate) run."""

    bridge: str
    scenario: str  # calm | hung | sustained | floor
    rate: float
    published: int
    publish_s: float
    lat: Summary
    healthy_expected: int
    pulses: int
    dup: int
    negative: int
    acks: Counter[str] = field(default_factory=Counter)
    acked_events: int = 0
    multi_acked: int = 0
    ack_lat: Summary | None = None
    agent_lat: Summary | None = None
    cpu_pct: float = math.nan
    hwm_mb: float = math.nan
    to_hung: int = 0
    hung_pulses: int = 0
    window_s: float = 0.0
    last_pulse_s: float = math.nan
    resets: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def loss(self) -> int:
        """Healthy-printer events with no pulse by the end of the drain window."""
        return self.lat.missing


def match(
    events: list[tuple[str, int, float]], pulses: list[list[float]], hung: bool
) -> tuple[list[float], int, int, int, float]:
    """Pair the i-th event for a printer with its i-th pulse (per-printer FIFO)."""
    lat: list[float] = []
    missing = dup = neg = 0
    per: dict[int, list[float]] = {}
    for _, idx, ts in events:
        per.setdefault(idx, []).append(ts)
    last = 0.0
    for idx, sent in per.items():
        if hung and idx == 0:
            continue
        got = sorted(pulses[idx])
        n = min(len(sent), len(got))
        for j in range(n):
            d = (got[j] - sent[j]) * 1000.0
            neg += d < 0
            lat.append(d)
        missing += len(sent) - n
        dup += max(0, len(got) - len(sent))
        if got:
            last = max(last, got[-1])
    return lat, missing, dup, neg, last


def run_phase(
    pub: Publisher,
    farm: PrinterFarm,
    bridge: Bridge,
    scenario: str,
    rate: float,
    duration: float,
    drain_s: float,
) -> Phase:
    """Publish `rate`/s for `duration` s through `bridge` and measure."""
    hung = scenario == "hung"
    count = max(1, round(rate * duration))
    farm.dump()  # forget anything left over
    with pub.lock:
        pub.acks.clear()
        pub.agent_ms.clear()
    pid = bridge.proc.pid
    cpu0, wall0 = proc_cpu_s(pid), time.monotonic()
    prefix = f"{bridge.shop}-{scenario}-{rate:g}"
    t_pub = time.perf_counter()
    events = pub.publish_paced(f"shops/{bridge.shop}/cash/events", prefix, rate, count)
    publish_s = time.perf_counter() - t_pub
    healthy = sum(1 for _, idx, _ in events if not (hung and idx == 0))
    want_acks = bridge.kind == "agent"
    end = time.monotonic() + drain_s
    while time.monotonic() < end:
        done = farm.count() >= healthy
        if want_acks:
            with pub.lock:
                opened = sum(1 for v in pub.acks.values() if any(s != "duplicate" for s, _ in v))
            done = done and opened >= healthy
        if done:
            break
        time.sleep(0.05)
    cpu1, wall1 = proc_cpu_s(pid), time.monotonic()
    hwm = proc_hwm_mb(pid)
    window = time.time() - events[0][2]
    pulses, conns = farm.dump()
    lat, missing, dup, neg, last = match(events, pulses, hung)
    ph = Phase(
        bridge=bridge.kind,
        scenario=scenario,
        rate=rate,
        published=count,
        publish_s=publish_s,
        lat=Summary.of(lat, missing),
        healthy_expected=healthy,
        pulses=sum(len(p) for p in pulses),
        dup=dup,
        negative=neg,
        cpu_pct=100.0 * (cpu1 - cpu0) / (wall1 - wall0),
        hwm_mb=hwm,
        to_hung=count - healthy,
        hung_pulses=len(pulses[0]) if hung else 0,
        window_s=window,
        last_pulse_s=(last - events[0][2]) if last else math.nan,
        resets=sum(conns) - sum(len(p) for p in pulses),
    )
    if want_acks:
        with pub.lock:
            acks = dict(pub.acks)
            ph.agent_lat = Summary.of(list(pub.agent_ms.values()))
        sent_at = {eid: ts for eid, _, ts in events}
        ack_lat = []
        for eid, lst in acks.items():
            for status, _ in lst:
                ph.acks[status] += 1
            if len(lst) > 1:
                ph.multi_acked += 1
            if eid in sent_at and lst[0][0] == "opened":
                ack_lat.append((lst[0][1] - sent_at[eid]) * 1000.0)
        ph.acked_events = len(acks)
        ph.ack_lat = Summary.of(ack_lat)
    return ph


def floor_hop(pub: Publisher, broker: int, work: Path, rate: float, duration: float) -> Phase:
    """Bare MQTT hop publisher -> mosquitto -> aiomqtt subscriber (separate process)."""
    shop = f"hop{int(rate)}"
    topic = f"shops/{shop}/cash/events"
    b = start_bridge("hop", shop, broker, {}, work, pub)
    count = max(1, round(rate * duration))
    cpu0, wall0 = proc_cpu_s(b.proc.pid), time.monotonic()
    t0 = time.perf_counter()
    events = pub.publish_paced(topic, shop, rate, count)
    publish_s = time.perf_counter() - t0
    time.sleep(0.3)
    cpu1, wall1 = proc_cpu_s(b.proc.pid), time.monotonic()
    assert b.proc.stdin is not None
    assert b.proc.stdout is not None
    b.proc.stdin.write("dump\n")
    b.proc.stdin.flush()
    got = json.loads(b.proc.stdout.readline())
    b.stop()
    lat = [(got[e] - ts) * 1000.0 for e, _, ts in events if e in got]
    return Phase(
        "mqtt hop",
        "floor",
        rate,
        count,
        publish_s,
        Summary.of(lat, count - len(lat)),
        count,
        len(got),
        0,
        sum(1 for x in lat if x < 0),
        cpu_pct=100.0 * (cpu1 - cpu0) / (wall1 - wall0),
    )


def floor_tcp(farm: PrinterFarm, rate: float, duration: float) -> Phase:
    """Bare TCP: connect + write 5 bytes + close to the printer farm, paced, from here."""
    count = max(1, round(rate * duration))
    ports = farm.ports

    async def go() -> list[tuple[str, int, float]]:
        events: list[tuple[str, int, float]] = []
        tasks = []

        async def kick(i: int) -> None:
            idx = i % PRINTERS
            events.append((str(i), idx, time.time()))
            _, w = await asyncio.open_connection("127.0.0.1", ports[idx])
            w.write(KICK)
            await w.drain()
            w.close()
            await w.wait_closed()

        start = time.perf_counter() + 0.02
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(kick(i)))
        await asyncio.gather(*tasks)
        return events

    farm.dump()
    t0 = time.perf_counter()
    events = asyncio.run(go())
    publish_s = time.perf_counter() - t0
    end = time.monotonic() + 3
    while farm.count() < count and time.monotonic() < end:
        time.sleep(0.05)
    pulses, _ = farm.dump()
    lat, missing, dup, neg, _ = match(events, pulses, False)
    return Phase(
        "tcp connect+write",
        "floor",
        rate,
        count,
        publish_s,
        Summary.of(lat, missing),
        count,
        sum(map(len, pulses)),
        dup,
        neg,
    )


# =========================================================================== orchestration


@dataclass
class Plan:
    """Phase durations in seconds."""

    rate_s: dict[int, float]
    sustained_rate: int
    sustained_s: float
    drain_s: float


# The sustained phase offers 1,100 ev/s: the publisher's own pacing lands a little under
# what it is asked for, and the target is that the agent keeps up with at least 1,000.
FULL = Plan({1: 30.0, 50: 8.0, 500: 6.0}, 1100, 10.0, 5.0)
QUICK = Plan({1: 3.0, 50: 2.0, 500: 2.0}, 1100, 3.0, 3.0)


def main_bench(plan: Plan, out: Path, bridges: list[str], skip_floors: bool = False) -> None:
    """Run every phase and write the markdown report."""
    info = machine_info()
    t_start = time.monotonic()
    phases: list[Phase] = []
    with tmpdir() as tmp:
        work = Path(tmp)
        farm = PrinterFarm(PRINTERS)
        try:
            with mosquitto(work) as broker:
                pub = Publisher(broker)
                healthy_routes = {f"T{i:02d}": ("127.0.0.1", p) for i, p in enumerate(farm.ports)}
                hung_routes = dict(healthy_routes, T00=("127.0.0.1", farm.hung_port))
                n = 0

                def progress(ph: Phase) -> None:
                    phases.append(ph)
                    print(
                        f"[{time.monotonic() - t_start:6.1f}s] {ph.scenario:9} {ph.bridge:18}"
                        f" {ph.rate:>5g}/s n={ph.published:<6} p50={fmt_ms(ph.lat.p50):>7}"
                        f" p99={fmt_ms(ph.lat.p99):>7} max={fmt_ms(ph.lat.max):>7}"
                        f" loss={ph.loss} dup={ph.dup} cpu={ph.cpu_pct:.0f}%"
                        + (f" acks={dict(ph.acks)}" if ph.acks else "")
                        + (
                            f" agent-internal p50={fmt_ms(ph.agent_lat.p50)}"
                            f" p99={fmt_ms(ph.agent_lat.p99)}"
                            if ph.agent_lat
                            else ""
                        ),
                        flush=True,
                    )

                for rate, dur in plan.rate_s.items():
                    if not skip_floors:
                        progress(floor_hop(pub, broker, work, rate, dur))
                for rate, dur in plan.rate_s.items():
                    if not skip_floors:
                        progress(floor_tcp(farm, rate, dur))
                for scenario, routes in (("calm", healthy_routes), ("hung", hung_routes)):
                    for kind in bridges:
                        for rate, dur in plan.rate_s.items():
                            n += 1
                            b = start_bridge(kind, f"{kind}{n}", broker, routes, work, pub)
                            try:
                                progress(run_phase(pub, farm, b, scenario, rate, dur, plan.drain_s))
                            finally:
                                b.stop()
                            if kind == "agent":
                                phases[-1].notes += log_notes(b)
                hung_after = farm.ask("verify_hung")
                for kind in bridges:
                    n += 1
                    b = start_bridge(kind, f"{kind}{n}", broker, healthy_routes, work, pub)
                    try:
                        progress(
                            run_phase(
                                pub,
                                farm,
                                b,
                                "sustained",
                                plan.sustained_rate,
                                plan.sustained_s,
                                max(plan.drain_s, 10.0),
                            )
                        )
                    finally:
                        b.stop()
                    if kind == "agent":
                        phases[-1].notes += log_notes(b)
                pub.close()
        finally:
            hung_before = farm.hung_check
            farm.close()
    elapsed = time.monotonic() - t_start
    report = render(info, plan, phases, hung_before, hung_after, elapsed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"\nwrote {out} ({elapsed:.0f} s)")


def log_notes(b: Bridge) -> list[str]:
    """Warnings and errors the agent logged during the phase."""
    if b.log is None or not b.log.exists():
        return []
    levels = Counter[str]()
    first: dict[str, str] = {}
    for line in b.log.read_text(errors="replace").splitlines():
        for lvl in ("WARNING", "ERROR", "CRITICAL"):
            if f" {lvl} " in line:
                levels[lvl] += 1
                first.setdefault(lvl, line[:200])
    return [f"{lvl} x{c}: {first[lvl]}" for lvl, c in levels.items()]


# =========================================================================== report

NAMES = {
    "floor": "floor (aiomqtt sub + asyncio TCP)",
    "naive": "naive (paho callback + blocking socket)",
    "agent": "drawer-agent",
}


def render(
    info: dict[str, str],
    plan: Plan,
    phases: list[Phase],
    hung_before: dict[str, object],
    hung_after: dict[str, object],
    elapsed: float,
) -> str:
    """The markdown report."""

    def get(bridge: str, scenario: str, rate: float) -> Phase | None:
        for p in phases:
            if p.bridge == bridge and p.scenario == scenario and p.rate == rate:
                return p
        return None

    L: list[str] = []
    w = L.append
    w("# Core path benchmark: publish → first kick byte at the printer\n")
    w(
        f"Generated by `python -m bench.bench_core{' --quick' if plan is QUICK else ''}` "
        f"in {elapsed:.0f} s.\n"
    )
    w("| | |\n|---|---|")
    for k in ("date", "nproc", "cpu", "kernel", "python", "mosquitto"):
        w(f"| {k} | {info[k]} |")
    w("")
    w("## Setup\n")
    w(
        "- Loopback only. mosquitto on a free port, `persistence false`, "
        "`max_inflight_messages 1000`, `max_queued_messages 1000000`, `set_tcp_nodelay true`."
    )
    w(
        f"- {PRINTERS} virtual ESC/POS printers (`agent.devtools.emulator.VirtualPrinterServer`, "
        "single session each) in **their own process**; terminals T00..T19 map 1:1 to "
        "printers P00..P19; events go round-robin over the terminals."
    )
    w(
        "- Publisher: this process, paho-mqtt 2 with its network thread, QoS 1, "
        "`time.time()` taken just before `publish()`. Printer stamp: `time.time()` when "
        "the kick bytes are decoded. Same host clock."
    )
    w("- Each bridge runs in **its own process**, started fresh for each phase:")
    w(
        f"  - *floor*: aiomqtt subscriber (QoS 1) that per message `json.loads` the payload "
        f"and starts a task that connects, writes 5 bytes and closes (connect timeout "
        f"{CONNECT_TIMEOUT_S:g} s). No ledger, no acks, no per-printer serialisation."
    )
    w(
        f"  - *naive*: paho `on_message` → `json.loads` → blocking "
        f"`socket.create_connection(timeout={CONNECT_TIMEOUT_S:g})`, `sendall`, `close`. "
        "No ledger, no acks, no retry."
    )
    w(
        "  - *drawer-agent*: `python -m agent run --config FILE` (MQTT v5, manual PUBACK after "
        "the ledger write, SQLite WAL ledger on a temp file, one ack per event, log level "
        "INFO to a file). Bench config: `[security] max_pulses_per_minute = 0` (the default "
        "20/min per drawer would reject most events at 50 ev/s per drawer), "
        "`[dispatch] queue_size = 100000`, `grace_s = 0.5`; everything else default "
        "(`max_age_s = 30`, `connect_timeout_s = 1`)."
    )
    w(
        "- *Bare MQTT hop*: the same aiomqtt subscriber that only timestamps. "
        "*Bare TCP*: asyncio connect + write 5 bytes + close from the bench process to "
        "the printer process. The **combined floor** is the *floor* bridge above."
    )
    w(
        f"- Hung printer: P00 points at a listener with `listen(0)` whose accept queue is "
        f"filled by never-accepted connections, so SYNs are dropped. Verified at start: "
        f"connect {hung_before.get('result')} after {hung_before.get('after_s')} s; after "
        f"all phases: {hung_after.get('result')} after {hung_after.get('after_s')} s. Only "
        "the 19 healthy printers count for latency and loss in the hung rows."
    )
    durs = ", ".join(f"{r} ev/s × {d:g} s" for r, d in plan.rate_s.items())
    w(
        f"- Phase lengths: {durs}; sustained {plan.sustained_rate} ev/s × "
        f"{plan.sustained_s:g} s. Drain window after the last publish: {plan.drain_s:g} s "
        "(events not delivered by then count as loss and as ∞ in the percentiles)."
    )
    w(
        "- Publisher socket has TCP_NODELAY: with Nagle on, a POS that also receives QoS 1 "
        "acks on the same connection holds each event PUBLISH behind its own PUBACK until "
        "the broker's delayed ACK (~40 ms); that alone put the agent's p50 at 20-35 ms."
    )
    w(f"- The agent measured is the source tree at `{AGENT_ROOT}`.")
    w(
        "- Latency pairing: the i-th event for a printer with the i-th pulse it received "
        "(every bridge keeps per-printer order). Duplicates = pulses beyond events.\n"
    )

    # ---- floors
    w("## Floors (ms)\n")
    w(
        "| rate ev/s | bare MQTT hop p50 / p99 | bare TCP p50 / p99 | sum p50 / p99 | "
        "combined floor p50 / p99 / max |"
    )
    w("|---:|---|---|---|---|")
    for rate in plan.rate_s:
        hop, tcp, comb = (
            get("mqtt hop", "floor", rate),
            get("tcp connect+write", "floor", rate),
            get("floor", "calm", rate),
        )
        cells = [str(rate)]
        for p in (hop, tcp):
            cells.append("–" if p is None else f"{fmt_ms(p.lat.p50)} / {fmt_ms(p.lat.p99)}")
        if hop and tcp:
            cells.append(
                f"{fmt_ms(hop.lat.p50 + tcp.lat.p50)} / {fmt_ms(hop.lat.p99 + tcp.lat.p99)}"
            )
        else:
            cells.append("–")
        cells.append(
            "–"
            if comb is None
            else f"{fmt_ms(comb.lat.p50)} / {fmt_ms(comb.lat.p99)} / {fmt_ms(comb.lat.max)}"
        )
        w("| " + " | ".join(cells) + " |")
    w("")

    # ---- main table
    for scenario, title in (
        ("calm", "All 20 printers healthy"),
        ("hung", "One printer (P00) hanging in connect; 19 healthy"),
    ):
        w(f"## {title} (publish → first byte, ms, healthy printers)\n")
        w(
            "| rate | bridge | events | p50 | p99 | max | loss | dup | p50 ÷ floor p50 | "
            "p99 ÷ naive p99 | bridge CPU | acks | publish→ack p50 / p99 |"
        )
        w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        for rate in plan.rate_s:
            floor = get("floor", scenario, rate)
            naive = get("naive", scenario, rate)
            for kind in ("floor", "naive", "agent"):
                p = get(kind, scenario, rate)
                if p is None:
                    continue
                acks = ", ".join(f"{k} {v}" for k, v in sorted(p.acks.items())) or "–"
                if p.bridge == "agent" and p.acked_events < p.published:
                    acks += f" ({p.published - p.acked_events} not acked yet)"
                ackl = (
                    "–"
                    if p.ack_lat is None
                    else f"{fmt_ms(p.ack_lat.p50)} / {fmt_ms(p.ack_lat.p99)}"
                )
                w(
                    f"| {rate} | {NAMES[kind]} | {p.healthy_expected} | {fmt_ms(p.lat.p50)} | "
                    f"{fmt_ms(p.lat.p99)} | {fmt_ms(p.lat.max)} | {p.loss} | {p.dup} | "
                    f"{ratio(p.lat.p50, floor.lat.p50) if floor else '–'} | "
                    f"{ratio(p.lat.p99, naive.lat.p99) if naive else '–'} | "
                    f"{p.cpu_pct:.0f}% | {acks} | {ackl} |"
                )
        w("")
    # ---- hung vs calm
    w("## Head-of-line blocking: healthy printers' p99, hung vs calm (ms)\n")
    w("| rate | bridge | calm p99 | hung p99 | hung ÷ calm | limit 1.5×calm+1 | within |")
    w("|---:|---|---:|---:|---:|---:|---|")
    for rate in plan.rate_s:
        for kind in ("floor", "naive", "agent"):
            c, h = get(kind, "calm", rate), get(kind, "hung", rate)
            if c is None or h is None:
                continue
            lim = 1.5 * c.lat.p99 + 1.0
            w(
                f"| {rate} | {NAMES[kind]} | {fmt_ms(c.lat.p99)} | {fmt_ms(h.lat.p99)} | "
                f"{ratio(h.lat.p99, c.lat.p99)} | {fmt_ms(lim)} | "
                f"{'yes' if h.lat.p99 <= lim else 'NO'} |"
            )
    w("")
    # ---- sustained
    w(f"## Sustained {plan.sustained_rate} ev/s for {plan.sustained_s:g} s\n")
    w(
        "| bridge | published | publish rate | delivered | loss | dup | delivery rate | "
        "p50 | p99 | max | acks | CPU | peak RSS (VmHWM) |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for kind in ("floor", "naive", "agent"):
        p = get(kind, "sustained", plan.sustained_rate)
        if p is None:
            continue
        acks = ", ".join(f"{k} {v}" for k, v in sorted(p.acks.items())) or "–"
        deliv = (p.pulses / p.last_pulse_s) if p.last_pulse_s and p.pulses else math.nan
        w(
            f"| {NAMES[kind]} | {p.published} | {p.published / p.publish_s:.0f}/s | "
            f"{p.pulses} | {p.loss} | {p.dup} | {deliv:.0f}/s | {fmt_ms(p.lat.p50)} | "
            f"{fmt_ms(p.lat.p99)} | {fmt_ms(p.lat.max)} | {acks} | {p.cpu_pct:.0f}% | "
            f"{p.hwm_mb:.1f} MB |"
        )
    w("")
    # ---- targets
    w("## Targets (issue 2)\n")
    w("| target | numbers | met |")
    w("|---|---|---|")
    for rate in plan.rate_s:
        a, f = get("agent", "calm", rate), get("floor", "calm", rate)
        if a and f:
            ok = a.lat.p50 <= f.lat.p50 + 1.0
            w(
                f"| p50 ≤ floor + 1 ms @ {rate} ev/s | agent {fmt_ms(a.lat.p50)} vs floor "
                f"{fmt_ms(f.lat.p50)} + 1 = {fmt_ms(f.lat.p50 + 1)} | "
                f"{'met' if ok else 'NOT met'} |"
            )
    for rate in plan.rate_s:
        a, nv = get("agent", "calm", rate), get("naive", "calm", rate)
        if a and nv:
            ok = a.lat.p99 <= nv.lat.p99
            w(
                f"| calm p99 ≤ naive p99 @ {rate} ev/s | agent {fmt_ms(a.lat.p99)} vs naive "
                f"{fmt_ms(nv.lat.p99)} ({ratio(a.lat.p99, nv.lat.p99)}) | "
                f"{'met' if ok else 'NOT met'} |"
            )
    for rate in plan.rate_s:
        c, h = get("agent", "calm", rate), get("agent", "hung", rate)
        if c and h:
            lim = 1.5 * c.lat.p99 + 1.0
            ok = h.lat.p99 <= lim and h.loss == 0
            w(
                f"| hung: healthy p99 ≤ 1.5×calm + 1 ms @ {rate} ev/s | hung {fmt_ms(h.lat.p99)} "
                f"vs {fmt_ms(lim)} (calm {fmt_ms(c.lat.p99)}), loss {h.loss} | "
                f"{'met' if ok else 'NOT met'} |"
            )
    s = get("agent", "sustained", plan.sustained_rate)
    if s:
        deliv = (s.pulses / s.last_pulse_s) if s.last_pulse_s and s.pulses else math.nan
        ok = (
            s.loss == 0
            and s.dup == 0
            and s.acks.get("opened", 0) == s.published
            and deliv >= 1000
            and s.published / s.publish_s >= 1000
        )
        w(
            f"| ≥ 1,000 ev/s sustained, no loss | published {s.published / s.publish_s:.0f}/s, "
            f"delivered {deliv:.0f}/s, loss {s.loss}, dup {s.dup}, opened acks "
            f"{s.acks.get('opened', 0)}/{s.published}, agent CPU {s.cpu_pct:.0f}% | "
            f"{'met' if ok else 'NOT met'} |"
        )
    agents = [p for p in phases if p.bridge == "agent"]
    if agents:
        peak = max(p.hwm_mb for p in agents)
        w(
            f"| RSS ≤ 80 MB | peak VmHWM over all agent runs {peak:.1f} MB | "
            f"{'met' if peak <= 80 else 'NOT met'} |"
        )
    dups = sum(p.dup for p in phases) + sum(p.multi_acked for p in phases)
    w(
        f"| duplicates = 0 | {dups} duplicate pulses or acks over every phase | "
        f"{'met' if dups == 0 else 'NOT met'} |"
    )
    w("")
    notes = [(p, n) for p in phases for n in p.notes]
    odd = [p for p in phases if p.negative or p.resets]
    if notes or odd:
        w("## Notes from the run\n")
        for p in odd:
            w(
                f"- {p.bridge} {p.scenario} {p.rate:g}/s: {p.negative} negative latencies, "
                f"{p.resets} printer connections without a pulse (status probes, drawer-sensor "
                "reads, resets)"
            )
        for p, n in notes:
            w(f"- agent {p.scenario} {p.rate:g}/s log: `{n}`")
        w("")
    return "\n".join(L)


def main() -> None:
    """CLI."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="about 1 minute smoke run")
    ap.add_argument("--out", type=Path, default=RESULTS, help="markdown report path")
    ap.add_argument(
        "--bridges",
        default="floor,naive,agent",
        help="comma list of floor,naive,agent (default all)",
    )
    ap.add_argument("--rates", help="override rates:seconds, e.g. 1:10,50:8,500:6")
    ap.add_argument("--sustained", help="rate:seconds for the sustained phase, e.g. 1000:10")
    ap.add_argument(
        "--agent-root",
        type=Path,
        default=ROOT,
        help="run the agent from this source tree (default: this repo)",
    )
    ap.add_argument(
        "--agent-set",
        action="append",
        default=[],
        help="extra agent config, e.g. mqtt.protocol='\"3.1.1\"' (repeatable)",
    )
    ap.add_argument("--skip-floors", action="store_true", help="skip the bare hop/TCP floors")
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        spec = json.loads(args.spec)
        if args.role == "hop":
            asyncio.run(role_hop(spec))
        elif args.role == "floor":
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(role_floor(spec))
        elif args.role == "naive":
            role_naive(spec)
        return
    global AGENT_ROOT  # noqa: PLW0603 - one CLI switch, read by start_bridge
    AGENT_ROOT = args.agent_root.resolve()
    AGENT_SET[:] = args.agent_set
    plan = QUICK if args.quick else FULL
    if args.rates or args.sustained:
        rate_s = plan.rate_s
        if args.rates:
            rate_s = {int(a): float(b) for a, b in (x.split(":") for x in args.rates.split(","))}
        sr, ss = plan.sustained_rate, plan.sustained_s
        if args.sustained:
            a, b = args.sustained.split(":")
            sr, ss = int(a), float(b)
        plan = Plan(rate_s, sr, ss, plan.drain_s)
    main_bench(plan, args.out, [b for b in args.bridges.split(",") if b], args.skip_floors)


if __name__ == "__main__":
    main()
