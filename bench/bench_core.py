"""Core-path benchmark: MQTT publish -> first kick byte at a LAN printer, on loopback.

One run measures side by side, against the same 20 virtual printers (their own process,
woken by their sockets):

* two mosquittos: one with its **default** config (Nagle on) and one with
  `set_tcp_nodelay true`; a POS publisher with TCP_NODELAY and one without;
* floors: a bare MQTT pub->sub hop, a bare TCP connect+write, and the combined floor (an
  asyncio subscriber that connects and writes 5 bytes per event), all with TCP_NODELAY and
  a warm-up message before the measured ones;
* a naive synchronous bridge (paho `on_message` + blocking socket per event, no ledger);
* drawer-agent as it is now and, with `--before-root`, an older tree of it (e.g. a
  `git worktree` of an earlier commit), both run by this harness in the same run;
* 1, 50 and 500 ev/s, one printer hanging in connect, a sustained rate, the ack path with
  the drawer-sensor read off and on (and, sensor off on the default broker, with the POS
  re-arming TCP_QUICKACK after each read as clients/python does), and a printer that
  refuses until the deadline.

Every bridge runs in its own process; the publisher (this process) stamps `time.time()`
just before each publish and the printer farm stamps `time.time()` when the kick bytes are
decoded (same host clock). Results go to bench/results/core.md.

    python -m bench.bench_core --before-root ../before    # full run, about 8 minutes
    python -m bench.bench_core --quick                    # smoke, about 2 minutes
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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.core.settings import SecuritySettings
from bench.common import (
    KICK,
    ROOT,
    PrinterFarm,
    Summary,
    add_tree_arguments,
    agent_trees,
    fmt_ms,
    free_port,
    load_avg,
    machine_info,
    mosquitto,
    proc_cpu_s,
    proc_hwm_mb,
    tmpdir,
)

PRINTERS = 20
CONNECT_TIMEOUT_S = 1.0  # the naive bridge and the floor use the agent's default
HELD_MS = 20.0  # a delayed-ACK hold is ~40 ms; anything past 20 ms counts as held
RESULTS = ROOT / "bench" / "results" / "core.md"
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
# How a bridge process runs the agent's CLI (bench_gc wraps it to time garbage collections).
AGENT_ARGV = ["-m", "agent"]
WARMUP_TERMINAL = "WARMUP"  # mapped by no bridge: the agent acks it `unmapped`


def say(obj: object) -> None:
    """One JSON line on stdout (bridge -> bench)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# =========================================================================== bridges
# Each runs as `python -m bench.bench_core --role ROLE --spec JSON` in its own process.


async def role_hop(spec: dict[str, Any]) -> None:
    """Bare MQTT hop: an aiomqtt subscriber (TCP_NODELAY) that only timestamps."""
    import aiomqtt

    got: list[tuple[float, bytes]] = []
    loop = asyncio.get_running_loop()
    async with aiomqtt.Client(
        "127.0.0.1", spec["broker"], identifier=f"hop-{os.getpid()}", socket_options=NO_DELAY
    ) as c:
        await c.subscribe(spec["topic"], qos=1)

        async def read() -> None:
            async for m in c.messages:
                got.append((time.time(), bytes(m.payload)))  # type: ignore[arg-type]

        task = asyncio.create_task(read())
        say({"ready": True})
        await loop.run_in_executor(None, sys.stdin.readline)
        task.cancel()
        say({json.loads(p)["event_id"]: t for t, p in got})


# ESC/POS DLE EOT 1, real-time printer status: one byte back (Epson ESC/POS command
# reference, DLE EOT; PROTOCOLS §2.1), the request the agent's pre-kick check sends.
STATUS_REQUEST = b"\x10\x04\x01"


async def role_floor(spec: dict[str, Any], checked: bool = False) -> None:
    """Combined floor: aiomqtt subscriber that connects and writes 5 bytes per event.

    `checked`: the same, with the status round trip every safe kick needs first (issue 9:
    DLE EOT 1 and its one-byte reply before the kick), so the agent can be compared with a
    floor that does the protocol work it must do.
    """
    import aiomqtt

    routes = {k: tuple(v) for k, v in spec["routes"].items()}
    tasks: set[asyncio.Task[None]] = set()

    async def kick(host: str, port: int) -> None:
        with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                r, w = await asyncio.open_connection(host, port)
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if checked:
                w.write(STATUS_REQUEST)
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await r.readexactly(1)
            w.write(KICK)
            await w.drain()
            w.close()
            await w.wait_closed()

    async with aiomqtt.Client(
        "127.0.0.1", spec["broker"], identifier=f"floor-{os.getpid()}", socket_options=NO_DELAY
    ) as c:
        await c.subscribe(spec["topic"], qos=1)
        say({"ready": True})
        async for m in c.messages:
            route = routes.get(json.loads(m.payload)["terminal_id"])  # type: ignore[arg-type]
            if route is None:
                continue  # the warm-up message
            t = asyncio.create_task(kick(*route))
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
            route = routes.get(json.loads(msg.payload)["terminal_id"])
            if route is None:
                return
            s = socket.create_connection(route, timeout=CONNECT_TIMEOUT_S)
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


def event_payload(eid: str, terminal: str) -> str:
    """A cash event as a POS would publish it."""
    occurred = datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="milliseconds")
    body = {
        "event_id": eid,
        "type": "sale",
        "terminal_id": terminal,
        "occurred_at": occurred,
        "amount": 12.5,
        "currency": "EUR",
        "payment_method": "cash",
    }
    return json.dumps(body, separators=(",", ":"))


class Publisher:
    """The POS side: a paho client with its network thread, publishing and taking acks."""

    def __init__(self, broker: int, *, nodelay: bool, name: str, quickack: bool = False) -> None:
        import paho.mqtt.client as mqtt

        self.nodelay = nodelay
        self.quickack = quickack
        self.acks: dict[str, list[tuple[str, float]]] = {}
        self.agent_ms: dict[str, float] = {}  # the ack's latency_ms: agent receipt -> write
        self.online: set[str] = set()
        self.changed = threading.Condition()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pos-{name}")
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.on_message = self._on_message
        subscribed = threading.Event()
        c.on_subscribe = lambda *_a: subscribed.set()
        c.connect("127.0.0.1", broker)
        # A POS that publishes events and takes QoS 1 acks on one connection should turn
        # Nagle off (README); the bench runs it both ways to show what it costs.
        c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(nodelay))
        if quickack:
            # TCP_QUICKACK after each read, with the Python client's own seam (tcp(7)): the
            # ack is then not held at a Nagle-on broker for our delayed ACK of its PUBACK.
            from drawer_agent_client import after_each_read, rearm_quickack

            after_each_read(c, rearm_quickack)
        c.loop_start()
        c.subscribe([("shops/+/cash/acks", 1), ("shops/+/agent/status", 1)])
        if not subscribed.wait(10):
            raise RuntimeError("publisher could not subscribe")
        self.client = c

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        now = time.time()
        body = json.loads(msg.payload)
        with self.changed:
            if msg.topic.endswith("/acks"):
                self.acks.setdefault(body.get("event_id"), []).append((body["status"], now))
                if body.get("latency_ms") is not None:
                    self.agent_ms[body["event_id"]] = body["latency_ms"]
            elif body.get("state") == "online":
                self.online.add(msg.topic.split("/")[1])
            self.changed.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds after some message arrived (no polling)."""
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def wait_online(self, shop: str, timeout: float = 20.0) -> None:
        """Wait for the agent of `shop` to publish its retained online status."""
        if not self.wait(lambda: shop in self.online, timeout):
            raise RuntimeError(f"agent for {shop} never came online")

    def answered(self, ids: Iterable[str]) -> int:
        """How many of `ids` have a non-duplicate ack (call with `changed` held)."""
        return sum(1 for e in ids if any(s != "duplicate" for s, _ in self.acks.get(e, ())))

    def forget(self) -> None:
        """Drop collected acks before a phase."""
        with self.changed:
            self.acks.clear()
            self.agent_ms.clear()

    def publish(self, topic: str, eid: str, terminal: str) -> float:
        """Publish one event; return the stamp taken just before."""
        payload = event_payload(eid, terminal)
        ts = time.time()
        self.client.publish(topic, payload, qos=1)
        return ts

    def publish_paced(
        self, topic: str, prefix: str, rate: float, count: int, terminals: list[str]
    ) -> list[tuple[str, int, float]]:
        """Publish `count` events at `rate`/s round-robin over `terminals`."""
        events = []
        start = time.perf_counter() + 0.02
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            idx = i % len(terminals)
            eid = f"{prefix}-{i}"
            events.append((eid, idx, self.publish(topic, eid, terminals[idx])))
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
    log: Path

    def stop(self) -> None:
        """SIGTERM, then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(6)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass(frozen=True)
class Setup:
    """Where bridges run: work dir, agent source trees (kind -> root), printer routes."""

    work: Path
    roots: dict[str, Path]
    routes: dict[str, dict[str, tuple[str, int]]]


def agent_config(shop: str, broker: int, routes: dict[str, tuple[str, int]], db: Path) -> list[str]:
    """The agent's bench config: defaults except what a bench needs."""
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
        f'path = "{db}"',
        "[health]",
    ]
    for tid, (host, port) in routes.items():
        lines += [f"[printers.P{tid[1:]}]", f'host = "{host}"', f"port = {port}"]
        lines.append('command_set = "escpos"')
    lines.append("[terminals]")
    lines += [f'{tid} = "P{tid[1:]}"' for tid in routes]
    return lines


def with_overrides(lines: list[str], overrides: Iterable[str]) -> list[str]:
    """Apply `section.key=value` (TOML value) overrides to a config's lines."""
    out = list(lines)
    for item in overrides:
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        start = out.index(f"[{section}]") + 1
        end = next((i for i in range(start, len(out)) if out[i].startswith("[")), len(out))
        # A key the base config sets already is replaced: TOML refuses a key set twice.
        out[start:end] = [ln for ln in out[start:end] if not ln.startswith(f"{name} =")]
        out.insert(start, f"{name} = {value}")
    return out


def start_agent(
    kind: str, shop: str, broker: int, case: Case, setup: Setup, pub: Publisher
) -> Bridge:
    """`python -m agent run` from the tree of `kind`; wait until it is online."""
    routes = setup.routes[case.routes]
    lines = agent_config(shop, broker, routes, setup.work / f"{shop}.db")
    cfg = setup.work / f"{shop}.toml"
    cfg.write_text("\n".join(with_overrides(lines, case.agent_set)) + "\n")
    log = setup.work / f"{shop}.log"
    root = setup.roots[kind]
    proc = subprocess.Popen(
        [sys.executable, *AGENT_ARGV, "run", "--config", str(cfg)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
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


def start_role(
    kind: str, shop: str, broker: int, routes: dict[str, tuple[str, int]], work: Path
) -> Bridge:
    """Start the hop, floor or naive bridge for `shop` and wait until it subscribed."""
    spec = json.dumps({"broker": broker, "topic": f"shops/{shop}/cash/events", "routes": routes})
    log = work / f"{shop}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_core", "--role", kind, "--spec", spec],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        bufsize=1,
    )
    assert proc.stdout is not None
    if not proc.stdout.readline():
        raise RuntimeError(f"{kind} bridge died: {log.read_text()[-2000:]}")
    return Bridge(kind, proc, shop, log)


# =========================================================================== one phase


@dataclass(frozen=True)
class Case:
    """One measured cell."""

    bridge: str  # hop | tcp | floor | checked | naive | agent | before
    scenario: str  # floor | calm | hung | sustained | storm | refusing
    rate: float
    duration: float
    broker: str = "default"  # default | tuned (set_tcp_nodelay true) | bulk (tuned, no limits)
    pos_nodelay: bool = True
    pos_quickack: bool = False  # the POS re-arms TCP_QUICKACK after each read (Linux)
    agent_set: tuple[str, ...] = ()
    variant: str = ""  # e.g. "sensor off"

    @property
    def routes(self) -> str:
        """Which route table the bridge gets."""
        return {"hung": "hung", "refusing": "refusing"}.get(self.scenario, "healthy")

    @property
    def is_agent(self) -> bool:
        """An agent bridge (publishes acks)."""
        return self.bridge in ("agent", "before")


@dataclass
class Phase:
    """The measured result of one case."""

    case: Case
    published: int
    publish_s: float
    lat: Summary
    expected: int
    pulses: int
    dup: int
    held: int
    acks: Counter[str] = field(default_factory=Counter)
    acked_events: int = 0
    multi_acked: int = 0
    ack_lat: Summary | None = None
    agent_lat: Summary | None = None
    cpu_pct: float = math.nan
    hwm_mb: float = math.nan
    last_pulse_s: float = math.nan
    last_ack_s: float = math.nan
    load: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def loss(self) -> int:
        """Events with no pulse by the end of the drain window."""
        return self.lat.missing


def match(
    events: list[tuple[str, int, float]], pulses: list[list[float]], skip: set[int]
) -> tuple[list[float], int, int, float]:
    """Pair the i-th event for a printer with its i-th pulse (per-printer FIFO)."""
    lat: list[float] = []
    missing = dup = 0
    per: dict[int, list[float]] = {}
    for _, idx, ts in events:
        per.setdefault(idx, []).append(ts)
    last = 0.0
    for idx, sent in per.items():
        if idx in skip:
            continue
        got = sorted(pulses[idx])
        n = min(len(sent), len(got))
        lat += [(got[j] - sent[j]) * 1000.0 for j in range(n)]
        missing += len(sent) - n
        dup += max(0, len(got) - len(sent))
        if got:
            last = max(last, got[-1])
    return lat, missing, dup, last


def expected_pulses(events: list[tuple[str, int, float]], skip: set[int]) -> list[int]:
    """Pulses each printer should get."""
    counts = [0] * PRINTERS
    for _, idx, _ in events:
        if idx not in skip:
            counts[idx] += 1
    return counts


def warm_up(pub: Publisher, topic: str, prefix: str, wait_ack: bool) -> None:
    """One message no bridge acts on, so the first measured one finds a warm connection."""
    eid = f"{prefix}-warmup"
    pub.publish(topic, eid, WARMUP_TERMINAL)
    if wait_ack:
        pub.wait(lambda: eid in pub.acks, 5.0)
    else:
        time.sleep(0.2)  # nothing observable comes back from a floor bridge


def skipped_printers(case: Case) -> set[int]:
    """Printers whose events must not pulse (hung, refusing)."""
    return {0} if case.scenario in ("hung", "refusing") else set()


def run_phase(
    pub: Publisher, farm: PrinterFarm, bridge: Bridge, case: Case, drain_s: float
) -> Phase:
    """Publish `rate`/s for `duration` s through `bridge` and measure."""
    topic = f"shops/{bridge.shop}/cash/events"
    count = max(1, round(case.rate * case.duration))
    terminals = ["T00"] if case.scenario == "refusing" else [f"T{i:02d}" for i in range(PRINTERS)]
    warm_up(pub, topic, bridge.shop, case.is_agent)
    farm.dump()
    pub.forget()
    pid = bridge.proc.pid
    cpu0, wall0 = proc_cpu_s(pid), time.monotonic()
    t_pub = time.perf_counter()
    events = pub.publish_paced(topic, bridge.shop, case.rate, count, terminals)
    publish_s = time.perf_counter() - t_pub
    skip = skipped_printers(case)
    per_printer = expected_pulses(events, skip)
    if case.scenario == "storm":
        # The shipped limit: each drawer opens at most STORM_LIMIT times a minute.
        per_printer = [min(n, STORM_LIMIT) for n in per_printer]
    farm.wait(per_printer, drain_s)
    # A hung printer's events are acked only at their deadline (max_age_s): not waited for.
    ids = [e for e, idx, _ in events if case.scenario == "refusing" or idx not in skip]
    if case.is_agent:
        pub.wait(lambda: pub.answered(ids) >= len(ids), drain_s)
    cpu1, wall1 = proc_cpu_s(pid), time.monotonic()
    pulses, _ = farm.dump()
    lat, missing, dup, last = match(events, pulses, skip)
    if case.scenario == "storm":
        # Pulses past the limit are the doubled ones; the events refused are not missing.
        counts = list(zip((len(got) for got in pulses), per_printer, strict=True))
        dup = sum(max(0, got - want) for got, want in counts)
        missing = sum(max(0, want - got) for got, want in counts)
        lat = lat[: sum(per_printer) - missing]
    ph = Phase(
        case=case,
        published=count,
        publish_s=publish_s,
        lat=Summary.of(lat, missing),
        expected=sum(per_printer),
        pulses=sum(len(p) for p in pulses),
        dup=dup + sum(len(pulses[i]) for i in skip),
        held=sum(1 for x in lat if x > HELD_MS),
        cpu_pct=100.0 * (cpu1 - cpu0) / (wall1 - wall0),
        hwm_mb=proc_hwm_mb(pid),
        last_pulse_s=(last - events[0][2]) if last else math.nan,
        load=load_avg(),
    )
    if case.is_agent:
        collect_acks(ph, pub, [ev for ev in events if ev[0] in set(ids)])
    return ph


def collect_acks(ph: Phase, pub: Publisher, events: list[tuple[str, int, float]]) -> None:
    """Ack counts and publish -> first ack latency."""
    with pub.changed:
        acks = dict(pub.acks)
        ph.agent_lat = Summary.of(list(pub.agent_ms.values()))
    sent_at = {eid: ts for eid, _, ts in events}
    ack_lat = []
    for eid, lst in acks.items():
        if eid not in sent_at:
            continue
        for status, _ in lst:
            ph.acks[status] += 1
        ph.multi_acked += len(lst) > 1
        ack_lat.append((lst[0][1] - sent_at[eid]) * 1000.0)
    ph.acked_events = len([e for e in acks if e in sent_at])
    ph.ack_lat = Summary.of(ack_lat, len(sent_at) - len(ack_lat))
    if events and ack_lat:
        ph.last_ack_s = max(lst[0][1] for e, lst in acks.items() if e in sent_at) - events[0][2]


def floor_hop(pub: Publisher, broker: int, work: Path, case: Case) -> Phase:
    """Bare MQTT hop publisher -> mosquitto -> aiomqtt subscriber (separate process)."""
    shop = f"hop{int(case.rate)}"
    topic = f"shops/{shop}/cash/events"
    b = start_role("hop", shop, broker, {}, work)
    count = max(1, round(case.rate * case.duration))
    warm_up(pub, topic, shop, wait_ack=False)
    cpu0, wall0 = proc_cpu_s(b.proc.pid), time.monotonic()
    t0 = time.perf_counter()
    events = pub.publish_paced(topic, shop, case.rate, count, ["T00"])
    publish_s = time.perf_counter() - t0
    time.sleep(0.3)  # the hop reports only when asked; let the last messages land
    cpu1, wall1 = proc_cpu_s(b.proc.pid), time.monotonic()
    assert b.proc.stdin is not None
    assert b.proc.stdout is not None
    b.proc.stdin.write("dump\n")
    b.proc.stdin.flush()
    got = json.loads(b.proc.stdout.readline())
    b.stop()
    lat = [(got[e] - ts) * 1000.0 for e, _, ts in events if e in got]
    return Phase(
        case,
        count,
        publish_s,
        Summary.of(lat, count - len(lat)),
        count,
        len(lat),
        0,
        sum(1 for x in lat if x > HELD_MS),
        cpu_pct=100.0 * (cpu1 - cpu0) / (wall1 - wall0),
        load=load_avg(),
    )


def floor_tcp(farm: PrinterFarm, case: Case) -> Phase:
    """Bare TCP: connect + write 5 bytes (TCP_NODELAY) + close, paced, from here."""
    count = max(1, round(case.rate * case.duration))
    ports = farm.ports

    async def go() -> list[tuple[str, int, float]]:
        events: list[tuple[str, int, float]] = []
        tasks = []

        async def kick(i: int) -> None:
            idx = i % PRINTERS
            events.append((str(i), idx, time.time()))
            try:
                _, w = await asyncio.open_connection("127.0.0.1", ports[idx])
                w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                w.write(KICK)
                await w.drain()
                w.close()
                await w.wait_closed()
            except OSError:
                # A single-session printer busy with the previous kick resets this one
                # (PROTOCOLS §3): the floor has no retry, so the event counts as lost.
                return

        start = time.perf_counter() + 0.02
        for i in range(count):
            delay = start + i / case.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(kick(i)))
        await asyncio.gather(*tasks)
        return events

    farm.dump()
    t0 = time.perf_counter()
    events = asyncio.run(go())
    publish_s = time.perf_counter() - t0
    farm.wait(expected_pulses(events, set()), 3.0)
    pulses, _ = farm.dump()
    lat, missing, dup, _ = match(events, pulses, set())
    held = sum(1 for x in lat if x > HELD_MS)
    return Phase(
        case,
        count,
        publish_s,
        Summary.of(lat, missing),
        count,
        len(lat),
        dup,
        held,
        load=load_avg(),
    )


# =========================================================================== the plan


@dataclass(frozen=True)
class Plan:
    """Phase durations in seconds."""

    rate_s: dict[int, float]
    hung_rates: tuple[int, ...]
    matrix_rate: int
    sustained_rate: int
    sustained_s: float
    drain_s: float

    def cases(self, agents: tuple[str, ...]) -> Iterator[Case]:
        """Every case of a run, in order; before/after agents interleave cell by cell."""
        yield from self.floor_cases()
        bridges = ("floor", "naive", *agents)
        for rate, dur in self.rate_s.items():
            for b in ("floor", "checked", "naive", *agents):
                yield Case(b, "calm", rate, dur)
        for rate in self.hung_rates:
            for b in bridges:
                yield Case(b, "hung", rate, self.rate_s[rate])
        yield from self.matrix_cases(agents)
        dur = self.rate_s[self.matrix_rate]
        off = ("health.confirm_drawer=false",)
        for broker in ("default", "tuned"):
            for a in agents:
                yield Case(
                    a, "calm", self.matrix_rate, dur, broker, agent_set=off, variant="sensor off"
                )
        yield from self.quickack_cases(agents)
        for b in bridges:
            yield Case(b, "sustained", self.sustained_rate, self.sustained_s, broker="bulk")
        shipped = (f"security.max_pulses_per_minute={STORM_LIMIT}",)
        for a in agents:
            yield Case(a, "storm", self.sustained_rate, self.sustained_s, "bulk", agent_set=shipped)
        for a in agents:
            yield Case(a, "refusing", 2, 3.0, agent_set=("security.max_age_s=1",))

    def floor_cases(self) -> Iterator[Case]:
        """The bare hop and bare TCP at every rate."""
        for kind in ("hop", "tcp"):
            for rate, dur in self.rate_s.items():
                yield Case(kind, "floor", rate, dur)

    def quickack_cases(self, agents: tuple[str, ...]) -> Iterator[Case]:
        """The ack path (sensor off) on the default broker, the POS re-arming quick ACK."""
        off = ("health.confirm_drawer=false",)
        for a in agents:
            yield Case(
                a,
                "calm",
                self.matrix_rate,
                self.rate_s[self.matrix_rate],
                "default",
                pos_quickack=True,
                agent_set=off,
                variant="sensor off",
            )

    def matrix_cases(self, agents: tuple[str, ...]) -> Iterator[Case]:
        """Broker Nagle by POS Nagle at one rate (default broker + POS nodelay is in calm)."""
        dur = self.rate_s[self.matrix_rate]
        for broker, pos in (("default", False), ("tuned", True), ("tuned", False)):
            for b in ("floor", *agents):
                yield Case(b, "calm", self.matrix_rate, dur, broker=broker, pos_nodelay=pos)


# security.max_pulses_per_minute as the agent ships it.
STORM_LIMIT: int = next(
    f.default for f in fields(SecuritySettings) if f.name == "max_pulses_per_minute"
)

FULL = Plan({1: 10.0, 50: 6.0, 500: 4.0}, (50, 500), 50, 2200, 5.0, 5.0)
QUICK = Plan({1: 3.0, 50: 2.0, 500: 1.0}, (50,), 50, 2200, 2.0, 4.0)


# =========================================================================== orchestration


class Rig:
    """Brokers, publishers and the printer farm shared by every phase of a run."""

    def __init__(self, stack: contextlib.ExitStack, setup: Setup, farm: PrinterFarm) -> None:
        self.setup = setup
        self.farm = farm
        self.brokers = {
            name: stack.enter_context(
                mosquitto(setup.work, f"mosquitto-{name}", tuned=tuned, bulk=name == "bulk")
            )
            for name, tuned in (("default", False), ("tuned", True), ("bulk", True))
        }
        self.pubs: dict[tuple[str, bool, bool], Publisher] = {}
        stack.callback(lambda: [p.close() for p in self.pubs.values()])
        self.n = 0

    def pub(self, case: Case) -> Publisher:
        """The POS for this case's broker and Nagle setting."""
        key = (case.broker, case.pos_nodelay, case.pos_quickack)
        if key not in self.pubs:
            name = f"{case.broker}-{pos_label(case)}"
            self.pubs[key] = Publisher(
                self.brokers[case.broker],
                nodelay=case.pos_nodelay,
                name=name,
                quickack=case.pos_quickack,
            )
        return self.pubs[key]

    def measure(self, case: Case, drain_s: float) -> Phase:
        """Run one case with a fresh bridge process."""
        pub, broker = self.pub(case), self.brokers[case.broker]
        if case.bridge == "hop":
            return floor_hop(pub, broker, self.setup.work, case)
        if case.bridge == "tcp":
            return floor_tcp(self.farm, case)
        self.n += 1
        shop = f"{case.bridge}{self.n}"
        if case.is_agent:
            b = start_agent(case.bridge, shop, broker, case, self.setup, pub)
        else:
            b = start_role(
                case.bridge, shop, broker, self.setup.routes[case.routes], self.setup.work
            )
        try:
            ph = run_phase(pub, self.farm, b, case, drain_s)
        finally:
            b.stop()
        if case.is_agent:
            ph.notes += log_notes(b)
        return ph


def routes_for(farm: PrinterFarm) -> dict[str, dict[str, tuple[str, int]]]:
    """Healthy, one-hung and one-refusing route tables."""
    healthy = {f"T{i:02d}": ("127.0.0.1", p) for i, p in enumerate(farm.ports)}
    return {
        "healthy": healthy,
        "hung": dict(healthy, T00=("127.0.0.1", farm.hung_port)),
        "refusing": dict(healthy, T00=("127.0.0.1", free_port())),  # nothing listens there
    }


def pos_label(case: Case) -> str:
    """The POS socket options of a case: nodelay or nagle, +quickack."""
    return ("nodelay" if case.pos_nodelay else "nagle") + ("+quickack" if case.pos_quickack else "")


def progress(t_start: float, ph: Phase) -> None:
    """One line per phase on stdout."""
    c = ph.case
    acks = f" acks={dict(ph.acks)}" if ph.acks else ""
    ackl = f" ack p50={fmt_ms(ph.ack_lat.p50)} p99={fmt_ms(ph.ack_lat.p99)}" if ph.ack_lat else ""
    print(
        f"[{time.monotonic() - t_start:6.1f}s] {c.scenario:9} {c.bridge:6} {c.variant:10}"
        f" broker={c.broker:7} pos={pos_label(c):7}"
        f" {c.rate:>5g}/s n={ph.published:<6} p50={fmt_ms(ph.lat.p50):>7}"
        f" p99={fmt_ms(ph.lat.p99):>7} held={ph.held} loss={ph.loss} dup={ph.dup}"
        f" cpu={ph.cpu_pct:.0f}%{acks}{ackl} load={ph.load}",
        flush=True,
    )


def main_bench(plan: Plan, out: Path, roots: dict[str, Path]) -> None:
    """Run every phase and write the markdown report."""
    from bench.core_report import render

    info = machine_info()
    t_start = time.monotonic()
    phases: list[Phase] = []
    agents = tuple(k for k in ("before", "agent") if k in roots)
    with tmpdir() as tmp, contextlib.ExitStack() as stack:
        farm = PrinterFarm(PRINTERS)
        stack.callback(farm.close)
        rig = Rig(stack, Setup(Path(tmp), roots, routes_for(farm)), farm)
        for case in plan.cases(agents):
            ph = rig.measure(case, plan.drain_s)
            phases.append(ph)
            progress(t_start, ph)
        hung = (farm.hung_check, farm.ask("verify_hung"))
    info["load at end"] = load_avg()
    elapsed = time.monotonic() - t_start
    report = render(info, plan, phases, hung, roots, elapsed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"\nwrote {out} ({elapsed:.0f} s)")


def log_notes(b: Bridge) -> list[str]:
    """Warnings and errors the agent logged during the phase."""
    if not b.log.exists():
        return []
    levels = Counter[str]()
    first: dict[str, str] = {}
    for line in b.log.read_text(errors="replace").splitlines():
        for lvl in ("WARNING", "ERROR", "CRITICAL"):
            if f" {lvl} " in line:
                levels[lvl] += 1
                first.setdefault(lvl, line[:200])
    return [f"{lvl} x{c}: {first[lvl]}" for lvl, c in levels.items()]


def run_role(role: str, spec: dict[str, Any]) -> None:
    """Entry point of a bridge subprocess."""
    if role == "hop":
        asyncio.run(role_hop(spec))
    elif role in ("floor", "checked"):
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(role_floor(spec, checked=role == "checked"))
    elif role == "naive":
        role_naive(spec)


def main() -> None:
    """CLI."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="about 2 minutes smoke run")
    ap.add_argument("--out", type=Path, default=RESULTS, help="markdown report path")
    add_tree_arguments(ap)
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        run_role(args.role, json.loads(args.spec))
        return
    main_bench(QUICK if args.quick else FULL, args.out, agent_trees(args, before_first=False))


if __name__ == "__main__":
    main()
