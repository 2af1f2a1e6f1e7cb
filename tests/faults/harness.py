"""Real processes for the fault-injection tests: an agent subprocess, a fleet of counting
virtual printers in the test process, and a POS that re-publishes until PUBACKed.

"Exactly once" is always judged from the printers: each event goes to its own terminal
and printer, so the pulse count of printer i is the pulse count of event i.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sqlite3
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.core.topics import Topics
from agent.devtools.emulator import VirtualPrinterServer

ROOT = Path(__file__).resolve().parents[2]
TOPICS = Topics("t")
FINAL = ("opened", "failed", "expired", "rejected", "ignored", "unmapped")


def event(terminal: str, *, age: float = 0.0, event_id: str | None = None) -> dict[str, Any]:
    """A cash sale on `terminal` that happened `age` seconds ago."""
    return {
        "event_id": event_id or f"e-{uuid.uuid4().hex[:12]}",
        "type": "sale",
        "terminal_id": terminal,
        "occurred_at": datetime.fromtimestamp(time.time() - age, UTC).isoformat(),
    }


async def paced(events: Sequence[dict[str, Any]], rate: float) -> AsyncIterator[tuple[int, Any]]:
    """Yield (i, event) at a steady offered rate: event i is due at start + i / rate,
    whatever the broker or the agent is doing meanwhile (a late one is yielded at once)."""
    start = time.monotonic()
    for i, ev in enumerate(events):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        yield i, ev


def lost_pubacks(
    pubacks: Sequence[tuple[int, str]],
    republished: Sequence[tuple[str, object]],
    republished_puback: Sequence[int],
    acks: dict[str, list[dict[str, Any]]],
) -> list[int]:
    """Positions in `pubacks` of the PUBACKed copies the broker then lost (ReliablePos's
    records: each PUBACK, each re-publish with its ledger note and the PUBACK it followed).

    Not in the ledger when re-published is not yet lost: with the agent still
    reconnecting, its first copy may come later. A copy was lost when the agent acked
    fewer copies of the event than the broker PUBACKed (it acks each, a repeat `duplicate`).
    """
    copies = Counter(e for _, e in pubacks)
    return [
        republished_puback[n]
        for n, (e, note) in enumerate(republished)
        if note == "not in the ledger" and len(acks.get(e, ())) < copies[e]
    ]


def kept_after(pubacks: Sequence[tuple[int, str]], position: int, lost: Iterable[int]) -> int:
    """How many PUBACKs after `position` on the same connection were not lost."""
    connection, gone = pubacks[position][0], set(lost)
    return sum(
        1
        for q in range(position + 1, len(pubacks))
        if pubacks[q][0] == connection and q not in gone
    )


def terminal(i: int) -> str:
    return f"T{i:03d}"


def printer_id(i: int) -> str:
    return f"p{i:03d}"


def write_config(
    path: Path,
    *,
    broker_port: int,
    printers: dict[str, int],
    terminals: dict[str, str],
    db: Path,
    max_age_s: float = 60.0,
    dispatch: str = "connect_timeout_s = 0.5\nwrite_timeout_s = 0.5\n",
    shop_id: str = "t",
    client_id: str = "drawer-agent-faults",
    urls: list[str] | None = None,
    protocol: str = "5",
    printer_options: str = "",
) -> Path:
    """A TOML config for `python -m agent run`: loopback broker(s), HTTP on port 0."""
    lines = [
        f'shop_id = "{shop_id}"',
        "[mqtt]",
        f"url = {json.dumps(urls or [f'mqtt://127.0.0.1:{broker_port}'])}",
        f'client_id = "{client_id}"',
        f'protocol = "{protocol}"',
        "[security]",
        f"max_age_s = {max_age_s}",
        "max_pulses_per_minute = 0",
        "[http]",
        'listen = "127.0.0.1:0"',
        "[state]",
        f'path = "{db}"',
        "[health]",
        "interval_s = 3600",
        "[dispatch]",
        dispatch,
    ]
    for pid, port in printers.items():
        lines += [f"[printers.{pid}]", 'host = "127.0.0.1"', f"port = {port}"]
        lines.append('command_set = "escpos"')
        if printer_options:
            lines.append(printer_options)
    lines.append("[terminals]")
    lines += [f'{t} = "{p}"' for t, p in terminals.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class Fleet:
    """N virtual ESC/POS printers on loopback, one per event slot."""

    def __init__(self, n: int) -> None:
        self.printers = [VirtualPrinterServer(name=printer_id(i), max_sessions=4) for i in range(n)]

    async def __aenter__(self) -> Fleet:
        for vp in self.printers:
            await vp.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for vp in self.printers:
            await vp.stop()

    @property
    def ports(self) -> dict[str, int]:
        return {vp.name: vp.port for vp in self.printers}

    @property
    def terminals(self) -> dict[str, str]:
        return {terminal(i): printer_id(i) for i in range(len(self.printers))}

    def pulses(self, i: int) -> int:
        return len(self.printers[i].pulses)


class AgentProcess:
    """`python -m agent run --config FILE`, SIGKILL-able; stderr is collected in memory."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self.starts = 0
        self.kills = 0
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    async def start(self, *, preexec: Any = None) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent",
            "run",
            "--config",
            str(self.config),
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if not k.startswith("DRAWER_AGENT_")},
            preexec_fn=preexec,
        )
        self.starts += 1
        self._reader = asyncio.create_task(self._read(self.proc))

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            self.lines.append(line.decode(errors="replace").rstrip())
            async with self._changed:
                self._changed.notify_all()

    async def wait_log(
        self, pattern: str, *, after: int = 0, timeout: float = 15.0
    ) -> re.Match[str]:
        """The first stderr line from index `after` on that matches `pattern`."""
        rx = re.compile(pattern)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            for line in self.lines[after:]:
                if m := rx.search(line):
                    found.append(m)
                    return True
            return self.proc is not None and self.proc.returncode is not None

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(seen)
        if not found:
            raise AssertionError(f"agent exited before logging {pattern!r}:\n{self.log()}")
        return found[0]

    async def http_port(self, after: int = 0) -> int:
        return int((await self.wait_log(r"http on http://127\.0\.0\.1:(\d+)", after=after))[1])

    async def kill(self) -> None:
        """kill -9: no drain, no goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        self.kills += 1
        await self._drain()

    async def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._drain()
        return self.proc.returncode

    async def wait_exit(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._drain()
        return code

    async def _drain(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)

    def log(self, last: int = 40) -> str:
        return "\n".join(self.lines[-last:])


class ReliablePos:
    """A POS backend: QoS 1 with its own persistent session, reconnecting forever, and
    re-publishing (same payload, same event_id) whatever the broker has not PUBACKed."""

    def __init__(
        self,
        port: int,
        client_id: str,
        *,
        publish_timeout: float = 2.0,
        ack_timeout: float | None = None,
        on_republish: Any = None,
        topics: Topics = TOPICS,
        protocol: str = "5",
    ) -> None:
        self.topics = topics
        session: dict[str, Any] = {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": False}
        if protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 3600
            session = {
                "protocol": aiomqtt.ProtocolVersion.V5,
                "clean_start": False,
                "properties": props,
            }
        self.client = aiomqtt.Client(
            "127.0.0.1", port, identifier=client_id, keepalive=5, timeout=5, **session
        )
        # Publishes wait for PUBACKs in parallel on purpose; aiomqtt warns past 10.
        self.client.pending_calls_threshold = 10_000
        # Connections counted at their CONNACK, in paho's callback: on a resumed session the
        # broker PUBACKs the resent publishes before `async with` has even returned, and
        # those PUBACKs belong to the new connection.
        self.connects = 0
        paho = self.client._client
        aiomqtt_on_connect = paho.on_connect

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, *rest: Any) -> None:
            if not reason.is_failure:
                self.connects += 1
            aiomqtt_on_connect(client, userdata, flags, reason, *rest)

        paho.on_connect = on_connect
        self.publish_timeout = publish_timeout
        # End to end: a PUBACK only means the broker has it (mosquitto acks before its
        # snapshot is on disk), so a real POS re-publishes what the *agent* never acked.
        self.ack_timeout = ack_timeout
        self.on_republish = on_republish
        self.republished: list[tuple[str, object]] = []
        # Every PUBACK in arrival order, as (CONNACK number, event_id), and for each
        # re-publish the position of the PUBACK it follows: which PUBACK a kill -9 can undo.
        self.pubacks: list[tuple[int, str]] = []
        self.republished_puback: list[int] = []
        self.connected = asyncio.Event()
        self.publishes = 0
        self.retries = 0
        self.confirmed: set[str] = set()
        self.acks: dict[str, list[dict[str, Any]]] = {}
        self.status: list[dict[str, Any]] = []
        # (monotonic time, body) of every status, and when each event was first sent and
        # first got its final ack: the failover gap is read from these.
        self.status_at: list[tuple[float, dict[str, Any]]] = []
        self.sent_at: dict[str, float] = {}
        self.final_at: dict[str, float] = {}
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReliablePos:
        self._runner = asyncio.create_task(self._run())
        await asyncio.wait_for(self.connected.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in [*self._tasks, self._runner]:
            if task is not None:
                task.cancel()
        for task in [*self._tasks, self._runner]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _run(self) -> None:
        while True:
            try:
                async with self.client:
                    await self.client.subscribe(self.topics.acks, qos=1)
                    await self.client.subscribe(self.topics.agent_status, qos=1)
                    self.connected.set()
                    async for msg in self.client.messages:
                        await self._on_message(msg)
            except aiomqtt.MqttError:
                pass
            finally:
                self.connected.clear()
            await asyncio.sleep(0.1)  # reconnect interval, like a real client

    async def _on_message(self, msg: aiomqtt.Message) -> None:
        try:
            body = json.loads(bytes(msg.payload))  # type: ignore[arg-type]
        except (ValueError, TypeError):
            return
        if msg.topic.matches(self.topics.acks):
            self.acks.setdefault(body.get("event_id"), []).append(body)
            if body.get("status") in FINAL:
                self.final_at.setdefault(body.get("event_id"), time.monotonic())
        elif msg.topic.matches(self.topics.agent_status):
            self.status.append(body)
            self.status_at.append((time.monotonic(), body))
        async with self._changed:
            self._changed.notify_all()

    def send(self, body: dict[str, Any]) -> None:
        """Publish in the background until the broker PUBACKs it."""
        self.sent_at.setdefault(body["event_id"], time.monotonic())
        task = asyncio.create_task(self._deliver(body["event_id"], json.dumps(body).encode()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, event_id: str, payload: bytes) -> None:
        while True:
            puback = await self._publish_until_puback(event_id, payload)
            if self.ack_timeout is None:
                return
            if await self.wait_for(lambda: self.final(event_id) is not None, self.ack_timeout):
                return
            note = self.on_republish(event_id) if self.on_republish else None
            self.republished.append((event_id, note))
            self.republished_puback.append(puback)

    async def _publish_until_puback(self, event_id: str, payload: bytes) -> int:
        """Publish until PUBACKed; the PUBACK's position in `pubacks`."""
        while True:
            await self.connected.wait()
            self.publishes += 1
            try:
                await self.client.publish(
                    self.topics.events, payload, qos=1, timeout=self.publish_timeout
                )
            except aiomqtt.MqttError:
                self.retries += 1
                await asyncio.sleep(0.2)  # the POS's retry interval
                continue
            self.confirmed.add(event_id)
            self.pubacks.append((self.connects, event_id))
            return len(self.pubacks) - 1

    def final(self, event_id: str) -> dict[str, Any] | None:
        """The event's outcome ack, or the outcome a `duplicate` answer to a re-publish names."""
        acks = self.acks.get(event_id, ())
        for ack in acks:
            if ack["status"] in FINAL:
                return ack
        # A kill -9 can lose the outcome ack itself after the broker PUBACKed it to the
        # agent, which then never sends it again. The POS re-publishes, as the README's
        # contract says, and learns the outcome from the `duplicate` answer's detail.
        for ack in acks:
            first = (ack.get("detail") or "").removeprefix("already handled: ")
            if ack["status"] == "duplicate" and first in FINAL:
                return {**ack, "status": first, "learned_from": "duplicate"}
        return None

    def onlines(self) -> set[float]:
        """Distinct agent runs that announced themselves online (by started_at)."""
        return {s["started_at"] for s in self.status if s.get("state") == "online"}

    async def wait_for(self, predicate: Any, timeout: float) -> bool:
        """Wait until predicate() holds; False on timeout (the caller asserts with figures)."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(predicate)
        except TimeoutError:
            return False
        return True

    async def wait_final(self, ids: Iterable[str], timeout: float) -> bool:
        ids = list(ids)
        return await self.wait_for(lambda: all(self.final(e) for e in ids), timeout)

    async def wait_online(self, known: set[float], timeout: float = 20.0) -> float:
        """Wait for an agent run that is not in `known` to announce itself."""
        ok = await self.wait_for(lambda: bool(self.onlines() - known), timeout)
        assert ok, "the agent never announced itself online"
        return max(self.onlines() - known)


@dataclass
class Tally:
    """Per-event outcome judged from printer pulses plus the POS's acks."""

    events: int = 0
    pulses: int = 0
    opened_once: int = 0
    interrupted_pulsed: int = 0
    interrupted_not_pulsed: int = 0
    expired_or_failed: int = 0
    lost: list[str] = field(default_factory=list)
    unconfirmed_not_pulsed: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    duplicate_acks: int = 0

    def line(self) -> str:
        return (
            f"events={self.events} pulses={self.pulses} opened_once={self.opened_once} "
            f"interrupted(pulsed={self.interrupted_pulsed}, "
            f"not_pulsed={self.interrupted_not_pulsed}) "
            f"expired_or_failed={self.expired_or_failed} lost={len(self.lost)} "
            f"unconfirmed_not_pulsed={len(self.unconfirmed_not_pulsed)} "
            f"doubled={len(self.doubled)} other={len(self.other)} "
            f"duplicate_acks={self.duplicate_acks} statuses={dict(self.statuses)}"
        )


def ledger_row(db: Path, event_id: str) -> str:
    """What the agent's ledger says about an event (read-only, for failure messages)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            row = conn.execute(
                "SELECT state, status, attempts, detail FROM events WHERE event_id=?", (event_id,)
            ).fetchone()
    except sqlite3.Error as exc:
        return f"ledger unreadable: {exc}"
    return f"ledger: {row}" if row else "not in the ledger"


def tally(
    events: list[dict[str, Any]],
    fleet: Fleet,
    pos: ReliablePos,
    max_age_s: float,
    db: Path | None = None,
) -> Tally:
    """Judge every event: exactly one pulse if it was opened, never two, never lost in time."""
    t = Tally(events=len(events))
    now = time.time()
    for i, ev in enumerate(events):
        eid = ev["event_id"]
        pulses = fleet.pulses(i)
        t.pulses += pulses
        t.duplicate_acks += sum(1 for a in pos.acks.get(eid, ()) if a["status"] == "duplicate")
        ack = pos.final(eid)
        status = ack["status"] if ack else "no ack"
        t.statuses[status] += 1
        detail = ack.get("detail") or "" if ack else ""
        if pulses > 1:
            t.doubled.append(f"{eid}: {pulses} pulses, {status}")
        elif status == "opened" and pulses == 1:
            t.opened_once += 1
        elif status == "failed" and "interrupted" in detail:
            if pulses:
                t.interrupted_pulsed += 1
            else:
                t.interrupted_not_pulsed += 1
        elif status in ("expired", "failed") and pulses == 0:
            occurred = datetime.fromisoformat(ev["occurred_at"]).timestamp()
            if occurred + max_age_s > now and status == "expired":
                t.lost.append(f"{eid}: expired although within max_age_s")
            else:
                t.expired_or_failed += 1
        elif status == "opened" and pulses == 0 and "unconfirmed" in detail:
            # The agent wrote the kick but the printer never answered the status request
            # that follows it, and said so: uncertain, never a false confirmation.
            vp = fleet.printers[i]
            t.unconfirmed_not_pulsed.append(
                f"#{i} {eid}: {detail}; printer saw {vp.connections} connections"
            )
        elif pulses == 0:
            where = ledger_row(db, eid) if db else ""
            puback = "PUBACKed to the POS" if eid in pos.confirmed else "never PUBACKed"
            vp = fleet.printers[i]
            t.lost.append(
                f"#{i} {eid}: 0 pulses, {status} {detail}; {puback}; {where}; printer saw "
                f"{vp.connections} connections, {vp.printer.printed} print jobs"
            )
        else:
            t.other.append(f"{eid}: {pulses} pulses, {status} {detail}")
    return t
