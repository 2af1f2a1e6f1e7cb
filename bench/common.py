"""Shared bench helpers: a throw-away mosquitto, a virtual-printer farm process, stats.

Nothing here is imported by the agent; the bench drives the agent as a separate process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO = os.environ.get("MOSQUITTO", "/usr/sbin/mosquitto")
# ESC p 0 25 250: pin 2, 50 ms on, 500 ms off (5 bytes), what the floor and naive bridges send.
KICK = bytes((0x1B, 0x70, 0x00, 25, 250))


def add_tree_arguments(ap: argparse.ArgumentParser) -> None:
    """`--agent-root` and `--before-root`: the agent trees measured side by side in one run."""
    ap.add_argument(
        "--agent-root", type=Path, default=ROOT, help="the agent tree measured as 'after'"
    )
    ap.add_argument(
        "--before-root", type=Path, help="an older agent tree measured as 'before' in the same run"
    )


def agent_trees(args: argparse.Namespace, *, before_first: bool = True) -> dict[str, Path]:
    """{"agent": tree, "before": older tree (when given)}, in the order the report lists them."""
    roots = {"agent": args.agent_root.resolve()}
    if args.before_root is None:
        return roots
    before = {"before": args.before_root.resolve()}
    return {**before, **roots} if before_first else {**roots, **before}


def free_port() -> int:
    """A free TCP port on loopback (racy, as all of these are; fine for a bench)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    """Wait until something accepts on 127.0.0.1:port."""
    end = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def mosquitto_conf(workdir: Path, name: str, port: int, *, tuned: bool, bulk: bool = False) -> Path:
    """A mosquitto config on a loopback port: its defaults, or with `set_tcp_nodelay true`.

    Only what a throw-away loopback broker needs is set (listener, anonymous access, a log);
    everything else, Nagle included, is mosquitto's default unless `tuned`. `bulk` lifts the
    in-flight and queue limits (defaults 20 and 1000 messages), which otherwise drop QoS 1
    messages under a sustained load that any subscriber falls behind.
    """
    lines = [
        "per_listener_settings false",
        "allow_anonymous true",
        f"log_dest file {workdir / (name + '.log')}",
        "log_type error",
        "log_type warning",
        f"listener {port} 127.0.0.1",
    ]
    if tuned:
        lines.append("set_tcp_nodelay true")
    if bulk:
        lines += ["max_inflight_messages 1000", "max_queued_messages 1000000", "max_queued_bytes 0"]
    conf = workdir / f"{name}.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


@contextlib.contextmanager
def mosquitto(
    workdir: Path, name: str = "mosquitto", *, tuned: bool = True, bulk: bool = False
) -> Iterator[int]:
    """A mosquitto on a free loopback port (see `mosquitto_conf`); yields the port."""
    port = free_port()
    conf = mosquitto_conf(workdir, name, port, tuned=tuned, bulk=bulk)
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


# --------------------------------------------------------------------------- printer farm


class PrinterFarm:
    """Controls the printer-farm subprocess (see `farm_main`) over a JSON-lines pipe."""

    def __init__(self, count: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.common", "farm", str(count)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        hello = self._read()
        self.ports: list[int] = hello["ports"]
        self.hung_port: int = hello["hung_port"]
        self.hung_check: dict[str, object] = hello["hung_check"]

    def _read(self) -> dict[str, object]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("printer farm died")
        return dict(json.loads(line))

    def ask(self, command: str) -> dict[str, object]:
        """Send one command (count | dump | verify_hung) and return its JSON answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def count(self) -> int:
        """Pulses received by all printers since the last dump."""
        return int(self.ask("count")["pulses"])  # type: ignore[call-overload]

    def wait(self, per_printer: Sequence[int], timeout: float) -> bool:
        """Block until printer i has `per_printer[i]` pulses (the farm wakes on its sockets)."""
        answer = self.ask(f"wait {timeout} " + json.dumps(list(per_printer)))
        return bool(answer["ok"])

    def dump(self) -> tuple[list[list[float]], list[int]]:
        """Pulse times per printer and connection counts; resets the farm's records."""
        answer = self.ask("dump")
        return answer["pulses"], answer["connections"]  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the farm."""
        with contextlib.suppress(Exception):
            self.ask("quit")
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def make_hung_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A listener whose accept backlog is full, so new SYNs are dropped: connect hangs."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.05)
    return lsock, fillers


def check_hung(port: int, timeout: float = 0.5) -> dict[str, object]:
    """Prove that a connect to `port` hangs (times out) rather than failing fast."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            result = "connected"
    except TimeoutError:
        result = "timed out"
    except OSError as exc:
        result = f"error: {exc}"
    return {"result": result, "after_s": round(time.monotonic() - start, 3), "timeout_s": timeout}


async def _wait_all(printers: Sequence[Any], counts: Sequence[int], timeout: float) -> bool:
    """Wait on each printer's own pulse condition (woken by its socket, no polling)."""
    try:
        async with asyncio.timeout(timeout):
            for printer, n in zip(printers, counts, strict=True):
                if n:
                    await printer.wait_for_pulses(n, timeout=timeout)
    except TimeoutError:
        return False
    return True


async def _farm(count: int) -> None:
    sys.path.insert(0, str(ROOT))
    from agent.core.commands import CommandSet
    from agent.devtools.emulator import VirtualPrinterServer

    printers = [
        VirtualPrinterServer("127.0.0.1", 0, CommandSet.ESCPOS, name=f"P{i:02d}")
        for i in range(count)
    ]
    for p in printers:
        await p.start()
    hung, fillers = make_hung_listener()
    loop = asyncio.get_running_loop()
    hung_check = await loop.run_in_executor(None, check_hung, hung.getsockname()[1])
    out = sys.stdout

    def say(obj: object) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    say(
        {
            "ports": [p.port for p in printers],
            "hung_port": hung.getsockname()[1],
            "hung_check": hung_check,
        }
    )
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        cmd = line.strip()
        if cmd == "count":
            say({"pulses": sum(len(p.pulses) for p in printers)})
        elif cmd == "dump":
            say(
                {
                    "pulses": [[pulse.at for pulse in p.pulses] for p in printers],
                    "connections": [p.connections for p in printers],
                }
            )
            for p in printers:
                p.pulses.clear()
                p.connections = 0
        elif cmd.startswith("wait "):
            _, timeout, counts = cmd.split(" ", 2)
            say({"ok": await _wait_all(printers, json.loads(counts), float(timeout))})
        elif cmd == "verify_hung":
            say(await loop.run_in_executor(None, check_hung, hung.getsockname()[1]))
        else:  # quit or EOF
            say({"bye": True})
            break
    for p in printers:
        await p.stop()
    for s in fillers:
        s.close()
    hung.close()


# --------------------------------------------------------------------------- stats


@dataclass(frozen=True)
class Summary:
    """Latency summary in milliseconds; `missing` samples count as +inf (censored)."""

    count: int
    missing: int
    p50: float
    p99: float
    max: float

    @staticmethod
    def of(values_ms: Sequence[float], missing: int = 0) -> Summary:
        """Nearest-rank percentiles; missing samples sort last as infinity."""
        vals = sorted(values_ms) + [math.inf] * missing
        if not vals:
            return Summary(0, 0, math.nan, math.nan, math.nan)
        return Summary(len(values_ms), missing, _rank(vals, 0.50), _rank(vals, 0.99), vals[-1])


def _rank(sorted_vals: Sequence[float], q: float) -> float:
    idx = max(0, math.ceil(q * len(sorted_vals)) - 1)
    return sorted_vals[idx]


def fmt_ms(v: float) -> str:
    """Milliseconds for a table cell."""
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def ratio(a: float, b: float) -> str:
    """a/b as a ratio cell."""
    if math.isnan(a) or math.isnan(b) or b == 0:
        return "–"
    if math.isinf(a):
        return "∞"
    return f"{a / b:.2f}×"


def machine_info() -> dict[str, str]:
    """nproc, CPU model, kernel, python, date."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(Exception):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    try:
        mosq = subprocess.run(
            [MOSQUITTO, "-h"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0]
    except (OSError, IndexError):
        mosq = "?"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": str(os.cpu_count()),
        "cpu": model or platform.processor(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mosquitto": mosq,
        "load at start": load_avg(),
    }


def load_avg() -> str:
    """The 1/5/15-minute load averages, as `uptime` prints them (the machine is shared)."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm_mb(pid: int) -> float:
    """Peak resident set (VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


def tmpdir() -> tempfile.TemporaryDirectory[str]:
    """A scratch directory for broker config, ledgers and logs."""
    return tempfile.TemporaryDirectory(prefix="drawer-bench-")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "farm":
        asyncio.run(_farm(int(sys.argv[2])))
    else:
        raise SystemExit("usage: python -m bench.common farm COUNT")
