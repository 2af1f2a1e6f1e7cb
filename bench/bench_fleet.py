"""Fleet simulation: N real agents, one per shop, each with its own virtual printer, against
one mosquitto started from deploy/mosquitto/ (TLS, passwords, the per-shop ACL) at 1 event/s
per shop, watched by `drawer-agent fleet`.

    flock /tmp/suite.lock nice -n 10 python -m bench.bench_fleet [--shops 50] [--seconds 60]

Each agent is `python -m agent run` with a generated config (its own shop_id, MQTT user,
ledger and printer). The printers are the project's ESC/POS emulator, all in one separate
process (bench.common farm). The POS backend is this process (paho, TLS, TCP_NODELAY): it
signs every event (HS256) and publishes it at its scheduled time. Publish → pulse is the
printer's clock (time.time() when it decodes the kick) minus the POS's clock just before
publish(), one machine. CPU is utime + stime from /proc/PID/stat over the load window.
Writes bench/results/fleet.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import jwt
import paho.mqtt.client as mqtt

from bench.common import (
    MOSQUITTO,
    ROOT,
    PrinterFarm,
    Summary,
    fmt_ms,
    free_port,
    load_avg,
    machine_info,
    proc_cpu_s,
    tmpdir,
    wait_port,
)
from tests.deploy.deploy_helpers import make_certs, rewrite_conf

OUT = ROOT / "bench" / "results" / "fleet.md"
DEPLOY_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
DEPLOY_ACL = ROOT / "deploy" / "mosquitto" / "acl"
KID = "bench-2026"


def shop_name(i: int) -> str:
    return f"fleet-{i:03d}"


def status_kb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0]) / 1024
    return out


class Broker:
    """mosquitto from deploy/mosquitto/: only the listener port and file paths are changed."""

    def __init__(self, work: Path, users: dict[str, str]) -> None:
        self.certs = make_certs(work / "certs")
        passwd = work / "passwd"
        passwd.write_text("".join(f"{u}:{p}\n" for u, p in users.items()))
        subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True)  # hash in place
        passwd.chmod(0o600)
        (work / "data").mkdir()
        targets = {
            "password_file": passwd,
            "acl_file": DEPLOY_ACL,  # unchanged
            "persistence_location": f"{work / 'data'}/",
            "log_dest": work / "mosquitto.log",
            "cafile": self.certs.ca,
            "certfile": self.certs.server_cert,
            "keyfile": self.certs.server_key,
        }
        self.port = free_port()
        conf = work / "mosquitto.conf"
        conf.write_text(
            rewrite_conf(
                DEPLOY_CONF.read_text(),
                port=self.port,
                map_path=lambda option, _path: str(targets[option]),
                run_as_root=os.geteuid() == 0,
            )
        )
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL)
        wait_port(self.port)
        self.url = f"mqtts://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def agent_config(
    work: Path, shop: str, broker: Broker, printer_port: int, password: str, key: Path
) -> Path:
    d = work / shop
    d.mkdir()
    (d / "mqtt_password").write_text(password)
    lines = [
        f'shop_id = "{shop}"',
        'log_level = "WARNING"',
        "[mqtt]",
        f'url = "{broker.url}"',
        f'username = "{shop}"',
        f'password_file = "{d / "mqtt_password"}"',
        f'ca_file = "{broker.certs.ca}"',
        "[security]",
        "require_signed = true",
        "max_age_s = 30",
        # 1 event/s on one drawer is above the shipped 20 pulses/minute on purpose.
        "max_pulses_per_minute = 0",
        "[security.keys]",
        f'{KID} = {{ file = "{key}" }}',
        "[printers.front]",
        'host = "127.0.0.1"',
        f"port = {printer_port}",
        'model = "epson-tm-t20iii"',
        "[terminals]",
        'T1 = "front"',
        "[http]",
        'listen = "127.0.0.1:0"',
        "[state]",
        f'path = "{d / "ledger.db"}"',
    ]
    path = d / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Pos:
    """The POS backend: one TLS connection (pos-backend), TCP_NODELAY, QoS 1; sees acks and
    agent statuses of every shop."""

    def __init__(self, broker: Broker, password: str, secret: bytes) -> None:
        self.secret = secret
        self.lock = threading.Lock()
        self.online: set[str] = set()
        self.acks: dict[str, list[str]] = {}
        self.connected = threading.Event()
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pos", protocol=mqtt.MQTTv5
        )
        c.tls_set(ca_certs=str(broker.certs.ca))
        c.username_pw_set("pos-backend", password)
        c.max_inflight_messages_set(1000)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.connect("127.0.0.1", broker.port, keepalive=30)
        c.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError("POS could not connect")
        sock = c.socket()
        assert sock is not None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client = c

    def _on_connect(self, client, _u, _f, rc, _p) -> None:
        client.subscribe([("shops/+/agent/status", 1), ("shops/+/cash/acks", 1)])
        self.connected.set()

    def _on_message(self, _c, _u, msg) -> None:
        shop = msg.topic.split("/")[1]
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            if msg.topic.endswith("/agent/status"):
                (self.online.add if body.get("state") == "online" else self.online.discard)(shop)
            elif isinstance(body.get("event_id"), str):
                self.acks.setdefault(body["event_id"], []).append(str(body.get("status")))

    def publish(self, shop: str) -> tuple[str, float]:
        """Sign and publish one sale on T1; returns (event_id, time.time() before publish)."""
        now = time.time()
        claims = {
            "event_id": f"e-{uuid.uuid4().hex[:16]}",
            "type": "sale",
            "terminal_id": "T1",
            "occurred_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            "iat": int(now),
            "exp": int(now) + 60,
        }
        token = jwt.encode(claims, self.secret, algorithm="HS256", headers={"kid": KID})
        t = time.time()
        self.client.publish(f"shops/{shop}/cash/events", token, qos=1)
        return str(claims["event_id"]), t

    def wait(self, check, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if check():
                    return True
            time.sleep(0.2)  # polling a counter we own, not synchronising with the agents
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return str(r.read().decode())


def fleet_messages(text: str) -> float:
    """drawer_fleet_messages_total of a fleet-view scrape: what the ops view received."""
    for line in text.splitlines():
        if line.startswith("drawer_fleet_messages_total "):
            return float(line.split()[1])
    return float("nan")


def fleet_counts(text: str, shops: set[str]) -> tuple[int, int]:
    """(agents up, printers online) among `shops` in a fleet-view scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    up = online = 0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.labels.get("shop") not in shops or s.value != 1:
                continue
            up += s.name == "drawer_fleet_agent_up"
            online += s.name == "drawer_fleet_printer_online"
    return up, online


def run(args: argparse.Namespace) -> dict[str, object]:
    n = args.shops
    shops = [shop_name(i) for i in range(n)]
    info = machine_info()
    with tmpdir() as tmp:
        work = Path(tmp)
        users = {s: secrets.token_urlsafe(12) for s in shops}
        users["pos-backend"] = secrets.token_urlsafe(12)
        users["drawer-fleet"] = secrets.token_urlsafe(12)
        secret = secrets.token_bytes(32)
        key = work / "pos_signing_key"
        key.write_bytes(secret)
        broker = Broker(work, users)
        farm = PrinterFarm(n)
        agents: list[subprocess.Popen[bytes]] = []
        view: subprocess.Popen[bytes] | None = None
        pos: Pos | None = None
        try:
            pos = Pos(broker, users["pos-backend"], secret)
            t_start = time.monotonic()
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            env = {k: v for k, v in env.items() if not k.startswith("DRAWER_AGENT_")}
            for i, shop in enumerate(shops):
                conf = agent_config(work, shop, broker, farm.ports[i], users[shop], key)
                log = (work / shop / "agent.log").open("wb")
                agents.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "agent", "run", "--config", str(conf)],
                        cwd=ROOT,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=log,
                    )
                )
                log.close()
                if (i + 1) % 10 == 0:  # batches of 10, so start-up does not starve the rest
                    pos.wait(lambda k=i + 1: len(pos.online & set(shops[:k])) == k, 120)
            if not pos.wait(lambda: set(shops) <= pos.online, 120):
                raise RuntimeError(f"only {len(pos.online)} of {n} agents online")
            startup_s = time.monotonic() - t_start
            (work / "fleet_password").write_text(users["drawer-fleet"])
            metrics_port = free_port()
            view = subprocess.Popen(
                [
                    sys.executable, "-m", "agent", "fleet", "--mqtt", broker.url,
                    "--username", "drawer-fleet", "--password-file", str(work / "fleet_password"),
                    "--ca-file", str(broker.certs.ca), "--client-id", "bench-fleet-view",
                    "--listen", f"127.0.0.1:{metrics_port}", "--no-table",
                ],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                stderr=(work / "fleet.log").open("wb"),
            )  # fmt: skip
            wait_port(metrics_port, 30)
            metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
            end = time.monotonic() + 30
            while fleet_counts(scrape(metrics_url), set(shops)) != (n, n):
                if time.monotonic() > end:
                    raise RuntimeError(
                        f"fleet view sees {fleet_counts(scrape(metrics_url), set(shops))}"
                    )
                time.sleep(0.5)

            # Warm-up: one event per shop (TLS session, printer path, SQLite pages).
            for shop in shops:
                pos.publish(shop)
            if not farm.wait([1] * n, 60):
                raise RuntimeError("warm-up events did not all pulse")
            farm.dump()

            # Load: shop i publishes at t0 + i/n + k/rate, so the fleet's events are spread
            # evenly over each second.
            per_shop = int(args.seconds * args.rate)
            schedule = sorted(
                (k / args.rate + i / (n * args.rate), i) for i in range(n) for k in range(per_shop)
            )
            pids = {"broker": broker.proc.pid, "view": view.pid, "farm": farm.proc.pid}
            cpu0 = {k: proc_cpu_s(p) for k, p in pids.items()}
            agent_cpu0 = [proc_cpu_s(a.pid) for a in agents]
            sent: list[list[tuple[str, float]]] = [[] for _ in range(n)]
            rss_samples: list[list[float]] = [[] for _ in range(n)]
            view_rss: list[float] = []
            load_start = load_avg()
            view_msgs0 = fleet_messages(scrape(metrics_url))
            t0 = time.monotonic() + 0.5
            next_sample = t0
            for offset, i in schedule:
                delay = t0 + offset - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                sent[i].append(pos.publish(shops[i]))
                if time.monotonic() >= next_sample:
                    for j, a in enumerate(agents):
                        rss_samples[j].append(status_kb(a.pid)["VmRSS"])
                    view_rss.append(status_kb(view.pid)["VmRSS"])
                    next_sample += 5.0
            window = time.monotonic() - t0
            cpu1 = {k: proc_cpu_s(p) for k, p in pids.items()}
            agent_cpu1 = [proc_cpu_s(a.pid) for a in agents]
            load_end = load_avg()
            view_msgs1 = fleet_messages(scrape(metrics_url))
            delivered = farm.wait([per_shop] * n, 30)
            pulses, connections = farm.dump()
            acks_ok = pos.wait(lambda: all(e in pos.acks for s in sent for e, _ in s), 30)
            agent_mem = [status_kb(a.pid) for a in agents]
            view_mem = status_kb(view.pid)
            up, online = fleet_counts(scrape(metrics_url), set(shops))
            with pos.lock:
                acks = {e: list(v) for e, v in pos.acks.items()}
        finally:
            if pos is not None:
                pos.close()
            for a in agents:
                a.send_signal(signal.SIGTERM)
            if view is not None:
                view.send_signal(signal.SIGTERM)
            for p in [*agents, *([view] if view else [])]:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
            farm.close()
            broker.stop()
        tracebacks = [s for s in shops if "Traceback" in (work / s / "agent.log").read_text()]
        log_lines = [
            line
            for s in shops
            for line in (work / s / "agent.log").read_text().splitlines()
            if line
        ]
        # The kinds of warning, numbers masked (times, ids), most frequent first.
        kinds = collections.Counter(re.sub(r"\d+", "N", line)[:160] for line in log_lines)

    latencies, lost, extra = [], 0, 0
    for i in range(n):
        got, want = pulses[i], sent[i]
        lost += max(0, len(want) - len(got))
        extra += max(0, len(got) - len(want))
        # One printer per shop and 1 s between its events: the k-th pulse is the k-th event.
        latencies += [(p - t) * 1000 for p, (_e, t) in zip(got, want, strict=False)]
    all_ids = [e for s in sent for e, _ in s]
    statuses = [acks.get(e, []) for e in all_ids]
    return {
        "info": info,
        "n": n,
        "seconds": args.seconds,
        "rate": args.rate,
        "window": window,
        "startup_s": startup_s,
        "events": len(all_ids),
        "delivered_all": delivered,
        "latency": Summary.of(latencies, missing=lost),
        "lost": lost,
        "extra_pulses": extra,
        "connections": sum(connections),
        "opened": sum(1 for s in statuses if s[:1] == ["opened"]),
        "unacked": sum(1 for s in statuses if not s),
        "doubled_acks": sum(1 for s in statuses if len(s) > 1),
        "ack_statuses": sorted({x for s in statuses for x in s}),
        "acks_ok": acks_ok,
        "cpu": {k: (cpu1[k] - cpu0[k]) / window * 100 for k in cpu0},
        "agent_cpu": [(b - a) / window * 100 for a, b in zip(agent_cpu0, agent_cpu1, strict=True)],
        "agent_rss": [m["VmRSS"] for m in agent_mem],
        "agent_hwm": [m["VmHWM"] for m in agent_mem],
        "agent_rss_samples": [x for s in rss_samples for x in s],
        "view_rss": view_mem["VmRSS"],
        "view_hwm": view_mem["VmHWM"],
        "view_rss_max_sampled": max(view_rss, default=view_mem["VmRSS"]),
        "view_messages": view_msgs1 - view_msgs0,
        "fleet_up": up,
        "fleet_online": online,
        "load": (load_start, load_end),
        "tracebacks": tracebacks,
        "log_lines": len(log_lines),
        "log_kinds": kinds.most_common(3),
    }


def report(runs: list[dict[str, object]], command: str) -> str:
    info = runs[0]["info"]
    assert isinstance(info, dict)
    md = [
        "# Fleet simulation: N agents, one mosquitto, the fleet view",
        "",
        f"`{command}`",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info.items() if k != "load at start"],
        "",
        "### Setup",
        "",
        "- Loopback only, one machine. **Broker**: mosquitto started from `deploy/mosquitto/"
        "mosquitto.conf` and `acl` as shipped (TLS 1.2 with a generated CA, passwords, the "
        "per-shop ACL, persistence, `set_tcp_nodelay true`); only the listener port and the "
        "file paths differ (`tests/deploy/deploy_helpers.rewrite_conf`).",
        "- **Agents**: N × `python -m agent run`, each its own process, shop id, MQTT user, "
        "SQLite ledger and printer (`mqtts://`, MQTT 5, `require_signed = true`, log level "
        "WARNING, defaults otherwise except `max_pulses_per_minute = 0`: 1 event/s on one "
        "drawer is above the shipped 20/min). Started in batches of 10.",
        "- **Printers**: N ESC/POS virtual printers (`agent/devtools/emulator.py`), one per "
        "shop, all in one separate process; a pulse is stamped when the printer decodes it.",
        "- **POS backend**: this process, paho-mqtt over TLS as `pos-backend`, TCP_NODELAY, "
        "HS256-signed sales, QoS 1, spread evenly so the fleet publishes N events/s. One "
        "warm-up event per shop first (not counted).",
        "- **Fleet view**: `python -m agent fleet --no-table` as the read-only `drawer-fleet` "
        "user of the shipped ACL; it must show every agent up and every printer online "
        "before the load starts.",
        "- CPU: utime + stime from `/proc/PID/stat` over the load window, % of one core. "
        "RSS: VmRSS at the end of the load (VmHWM = peak). The whole run under "
        "`nice -n 10` on a 2-core machine shared with other sessions (load averages below).",
        "",
        "### Results",
        "",
        "| shops (agents) | events | load window s | publish → pulse p50 / p99 / max ms | lost | "
        "doubled | acks opened | broker CPU | agents CPU total (mean per agent) | "
        "agent RSS median / max MiB (peak) | fleet view CPU | fleet view RSS MiB (peak) | "
        "load avg start → end |",
        "|---:|---:|---:|---|---:|---:|---|---:|---|---|---:|---|---|",
    ]
    for r in runs:
        lat = r["latency"]
        assert isinstance(lat, Summary)
        cpu = r["cpu"]
        assert isinstance(cpu, dict)
        agent_cpu = r["agent_cpu"]
        rss = r["agent_rss"]
        hwm = r["agent_hwm"]
        assert isinstance(agent_cpu, list)
        assert isinstance(rss, list)
        assert isinstance(hwm, list)
        load = r["load"]
        assert isinstance(load, tuple)
        md.append(
            f"| {r['n']} | {r['events']} | {r['window']:.1f} | {fmt_ms(lat.p50)} / "
            f"{fmt_ms(lat.p99)} / {fmt_ms(lat.max)} | {r['lost']} | "
            f"{r['extra_pulses']} pulses, {r['doubled_acks']} acks | {r['opened']} of "
            f"{r['events']} | {cpu['broker']:.1f} % | {sum(agent_cpu):.1f} % "
            f"({statistics.mean(agent_cpu):.2f} %) | {statistics.median(rss):.1f} / "
            f"{max(rss):.1f} ({max(hwm):.1f}) | {cpu['view']:.2f} % | {r['view_rss']:.1f} "
            f"({r['view_hwm']:.1f}) | {load[0]} → {load[1]} |"
        )
    md += ["", "### Checks per run", ""]
    for r in runs:
        md.append(
            f"- {r['n']} shops: all agents online in {r['startup_s']:.0f} s; the fleet view "
            f"showed {r['fleet_up']}/{r['n']} agents up and {r['fleet_online']}/{r['n']} "
            f"printers online at the end; every pulse delivered: {r['delivered_all']}; every "
            f"event acked: {r['acks_ok']} (statuses {', '.join(r['ack_statuses'])}; "
            f"{r['unacked']} without an ack); printer connections {r['connections']}; "
            f"printer-farm CPU {r['cpu']['farm']:.1f} %; messages the fleet view received "
            f"in the load window {r['view_messages']:.0f} "
            f"({r['view_messages'] / r['events']:.2f} per event); agent log lines (WARNING and up) "
            f"{r['log_lines']}, agents with a traceback: {len(r['tracebacks'])}."
        )
        for kind, count in r["log_kinds"]:
            md.append(f"  - {count} × `{kind}`")
    md.append("")
    return "\n".join(md)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shops", type=int, nargs="+", default=[50])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=1.0, help="events per second per shop")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    runs = []
    for n in args.shops:
        one = argparse.Namespace(**{**vars(args), "shops": n})
        r = run(one)
        lat = r["latency"]
        print(f"{n} shops: p50 {lat.p50:.2f} p99 {lat.p99:.2f} lost {r['lost']} cpu {r['cpu']}")
        runs.append(r)
    command = "python -m bench.bench_fleet " + " ".join(sys.argv[1:])
    md = report(runs, command.strip())
    args.out.write_text(md)
    print(md)
    return 0 if all(r["lost"] == 0 and r["extra_pulses"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
