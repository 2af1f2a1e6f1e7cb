"""Packet capture of the broker's port: which packets mosquitto held, and behind what.

For each agent tree, one short run against a mosquitto with its default config (Nagle on):
tcpdump on loopback with a capture filter on that broker's port only, 50 ev/s from a POS
with TCP_NODELAY, the drawer-sensor read off. tshark then decodes MQTT and pairs every
PUBLISH that reached the broker with the copy the broker forwarded:

* events, POS -> broker -> agent (the agent's side: a hold here is the agent's delayed ACK);
* acks, agent -> broker -> POS (the POS's side: a hold here is the POS's delayed ACK).

Results go to bench/results/capture.md, with the frames around the first held packet.
Needs tcpdump and tshark (Debian packages of those names); loopback only, bounded in time.

    python -m bench.bench_capture --before-root ../before
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.bench_core import PRINTERS, Case, Publisher, Setup, start_agent, warm_up
from bench.common import (
    ROOT,
    PrinterFarm,
    add_tree_arguments,
    agent_trees,
    load_avg,
    machine_info,
    mosquitto,
    tmpdir,
)
from bench.core_report import NAMES, commit_of

RESULTS = ROOT / "bench" / "results" / "capture.md"
RATE, SECONDS = 50.0, 3.0
HELD_MS = 20.0
PUBLISH, PUBACK = 3, 4


@dataclass(frozen=True)
class Frame:
    """One TCP segment on the broker's port, with the MQTT packets it carries."""

    no: int
    t: float
    src: int
    dst: int
    length: int
    ack_only: bool
    packets: tuple[tuple[int, str], ...]  # (MQTT type, topic)

    def describe(self, names: dict[int, str]) -> str:
        """One table row."""
        what = ", ".join(
            ("PUBLISH " + topic.rsplit("/", 1)[-1]) if kind == PUBLISH else _TYPES.get(kind, "?")
            for kind, topic in self.packets
        )
        if not what:
            what = "ACK (no data)" if self.ack_only else f"{self.length} bytes"
        return f"{names.get(self.src, self.src)} → {names.get(self.dst, self.dst)} | {what}"


_TYPES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 8: "SUBSCRIBE", 9: "SUBACK"}


def frames_of(pcap: Path, port: int) -> list[Frame]:
    """Every segment of the capture, MQTT decoded by tshark."""
    fields = [
        "frame.number",
        "frame.time_epoch",
        "tcp.srcport",
        "tcp.dstport",
        "tcp.len",
        "mqtt.msgtype",
        "mqtt.topic",
    ]
    cmd = ["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},mqtt", "-T", "fields"]
    cmd += ["-E", "separator=\t", "-E", "occurrence=a"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    frames = []
    for line in out.splitlines():
        no, t, src, dst, length, types, topics = (line.split("\t") + [""] * 7)[:7]
        kinds = [int(k) for k in types.split(",") if k]
        names = topics.split(",") if topics else []
        packets, ti = [], 0
        for k in kinds:
            topic = ""
            if k == PUBLISH and ti < len(names):
                topic, ti = names[ti], ti + 1
            packets.append((k, topic))
        frames.append(
            Frame(
                int(no),
                float(t),
                int(src),
                int(dst),
                int(length or 0),
                length == "0",
                tuple(packets),
            )
        )
    return frames


def publishes(frames: list[Frame], src: int, suffix: str) -> list[Frame]:
    """Frames carrying a PUBLISH on a topic ending in `suffix` from port `src` (one per packet)."""
    return [
        f
        for f in frames
        if f.src == src
        for kind, topic in f.packets
        if kind == PUBLISH and topic.endswith(suffix)
    ]


@dataclass
class Hops:
    """Forwarding delays (ms) of one direction, and the first held pair."""

    delays: list[float]
    first_held: tuple[Frame, Frame] | None


def forwarding(frames: list[Frame], into: int, out_of: int, suffix: str) -> Hops:
    """Pair the i-th PUBLISH reaching the broker from `into` with the i-th it sends `out_of`."""
    arrived = publishes(frames, into, suffix)
    forwarded = [f for f in publishes(frames, 0, suffix) if f.dst == out_of]
    delays, first = [], None
    for a, b in zip(arrived, forwarded, strict=False):
        d = (b.t - a.t) * 1000.0
        delays.append(d)
        if d > HELD_MS and first is None:
            first = (a, b)
    return Hops(delays, first)


def excerpt(frames: list[Frame], held: tuple[Frame, Frame], names: dict[int, str]) -> list[str]:
    """The frames from the held packet's arrival to its forwarding."""
    a, b = held
    rows = ["| frame | t (ms) | from → to | what |", "|---:|---:|---|---|"]
    for f in frames:
        if a.no <= f.no <= b.no and len(rows) < 14:
            rows.append(f"| {f.no} | {(f.t - a.t) * 1000:.2f} | {f.describe(names)} |")
    return rows


def capture_one(
    kind: str, roots: dict[str, Path], work: Path
) -> tuple[list[Frame], dict[int, str]]:
    """One run of one agent tree under tcpdump; the decoded frames and port names."""
    with contextlib.ExitStack() as stack:
        farm = PrinterFarm(PRINTERS)
        stack.callback(farm.close)
        broker = stack.enter_context(mosquitto(work, f"mosquitto-cap-{kind}", tuned=False))
        pcap = work / f"{kind}.pcap"
        dump = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-s", "0", "-U", "-w", str(pcap), f"tcp port {broker}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert dump.stderr is not None
        dump.stderr.readline()  # "listening on lo ...": the capture is running
        pub = Publisher(broker, nodelay=True, name=f"cap-{kind}")
        stack.callback(pub.close)
        routes = {f"T{i:02d}": ("127.0.0.1", p) for i, p in enumerate(farm.ports)}
        case = Case(kind, "calm", RATE, SECONDS, agent_set=("health.confirm_drawer=false",))
        agent = start_agent(
            kind, f"cap{kind}", broker, case, Setup(work, roots, {"healthy": routes}), pub
        )
        stack.callback(agent.stop)
        topic = f"shops/cap{kind}/cash/events"
        warm_up(pub, topic, f"cap{kind}", wait_ack=True)
        events = pub.publish_paced(topic, f"cap{kind}", RATE, round(RATE * SECONDS), [*routes])
        ids = [e for e, _, _ in events]
        pub.wait(lambda: pub.answered(ids) >= len(ids), 10.0)
        pos_port = pub.client.socket().getsockname()[1]
        dump.send_signal(signal.SIGINT)
        dump.wait(10)
    frames = frames_of(pcap, broker)
    names = {0: "broker", broker: "broker", pos_port: "POS"}
    for f in frames:
        if f.src not in names:
            names[f.src] = "agent"
    # Frames from the broker: its port is the source; normalise it to 0 for pairing.
    return [_norm(f, broker) for f in frames], names


def _norm(f: Frame, broker: int) -> Frame:
    src = 0 if f.src == broker else f.src
    dst = 0 if f.dst == broker else f.dst
    return Frame(f.no, f.t, src, dst, f.length, f.ack_only, f.packets)


def port_of(names: dict[int, str], who: str) -> int:
    """The port named `who`."""
    return next(p for p, n in names.items() if n == who and p)


def section(kind: str, root: Path, frames: list[Frame], names: dict[int, str]) -> list[str]:
    """Report section of one agent tree."""
    agent, pos = port_of(names, "agent"), port_of(names, "POS")
    ev = forwarding(frames, pos, agent, "/cash/events")
    ack = forwarding(frames, agent, pos, "/cash/acks")
    out = [f"## {NAMES[kind]} (`{commit_of(root)}`)\n"]
    out += [
        "| direction | packets | held > 20 ms | max (ms) |",
        "|---|---:|---:|---:|",
    ]
    for label, hops in (("event: POS → broker → agent", ev), ("ack: agent → broker → POS", ack)):
        held = sum(1 for d in hops.delays if d > HELD_MS)
        top = max(hops.delays, default=0.0)
        out.append(f"| {label} | {len(hops.delays)} | {held} | {top:.1f} |")
    out.append("")
    for label, hops in (("event", ev), ("ack", ack)):
        if hops.first_held is not None:
            out += [f"First held {label}, frame by frame (t from its arrival at the broker):\n"]
            out += [*excerpt(frames, hops.first_held, names), ""]
    return out


def main() -> None:
    """CLI."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=RESULTS)
    add_tree_arguments(ap)
    args = ap.parse_args()
    roots = agent_trees(args)
    info = machine_info()
    out = [
        "# Packet capture: what the default-config broker held\n",
        f"`python -m bench.bench_capture`: per agent tree, {RATE:g} ev/s for {SECONDS:g} s "
        "against a mosquitto with its default config (Nagle on), POS with TCP_NODELAY, "
        "`health.confirm_drawer = false`; `tcpdump -i lo 'tcp port BROKER'`, decoded with "
        "tshark. A forwarded PUBLISH is *held* when it left the broker more than 20 ms after "
        "it reached it.\n",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info.items()],
        "",
    ]
    with tmpdir() as tmp:
        for kind, root in roots.items():
            frames, names = capture_one(kind, roots, Path(tmp))
            out += section(kind, root, frames, names)
            time.sleep(0.5)
    out.append(f"Load at the end: {load_avg()}.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(out) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
