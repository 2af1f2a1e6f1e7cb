"""Periodic printer probes, the post-pulse sensor read, retained status and left-open alerts.

A probe is TCP connect + real-time status (ESC/POS `DLE EOT 1`-`4`, PROTOCOLS §2.1; Star
`ESC ACK SOH`, §2.5): nothing that prints. An ESC/POS printer that answers only `DLE EOT 1`
is online with paper, cover and error unknown, never unreachable. It holds the printer's
dispatch lock, so it never talks to a printer while a pulse is being written, and it never
keeps the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from agent.core import health
from agent.core.commands import CommandSet, status_requests
from agent.core.errors import BrokerError, PrinterUnreachable
from agent.core.health import DrawerWatch, Kick, PrinterHealth
from agent.core.settings import HealthSettings, PrinterSettings
from agent.core.status import (
    PrinterStatus,
    StatusError,
    open_level,
    parse_dle_eot,
    parse_star_asb,
    valid_dle_eot_byte,
)
from agent.core.topics import Topics
from agent.io import printer_link
from agent.io.device_link import DeviceLink, DeviceLinks
from agent.io.logs import QuietLog

if TYPE_CHECKING:
    from agent.io.metrics import Metrics
    from agent.service.dispatcher import Address, Locks

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 1.0
# A printer that left DLE EOT 2-4 unanswered is asked DLE EOT 1 alone, and all four again
# every this many probes (a slow reply once must not hide its paper state for good).
FULL_STATUS_EVERY = 20
# After the DLE EOT 1 reply, how long DLE EOT 2-4's replies may take (real printers answer
# in a few ms) before they count as unanswered and paper, cover and error read unknown.
REST_REPLIES_S = 0.2
# A drawer springs open within a few hundred ms of the pulse; read the sensor after that.
SENSOR_DELAY_S = 0.4
# The whole post-pulse read (lock wait, connect, reply) is bounded so the ack is not held.
SENSOR_BUDGET_S = 0.6


class Publisher(Protocol):
    """What the prober needs from the MQTT link (MqttLink satisfies it)."""

    async def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1
    ) -> None:
        """Publish one message; raise BrokerError when not connected."""


async def query_status(
    command_set: CommandSet,
    host: str,
    port: int,
    *,
    timeout: float,
    only_first: bool = False,
    device: DeviceLink | None = None,
) -> PrinterStatus:
    """One short connection: send the real-time status requests, read and decode the reply.

    `only_first` asks an ESC/POS printer `DLE EOT 1` alone, for a clone known to leave
    2-4 unanswered: waiting for replies that never come would hold the printer's lock.
    With `device`, the exchange goes to that character device instead of host:port.
    """

    async def exchange(request: bytes, read: printer_link.ReadReply) -> bytes:
        if device is not None:
            return await device.exchange(request, read, timeout=timeout)
        return await printer_link.exchange(host, port, request, read, timeout=timeout)

    request = b"".join(status_requests(command_set))
    if command_set is CommandSet.ESCPOS:
        if only_first:
            request = request[:3]  # DLE EOT 1 (§2.1)
        read = _dle_eot_replies(0.0 if only_first else min(REST_REPLIES_S, timeout / 2))
        reply = await exchange(request, read)
        # One byte per DLE EOT n, in request order (§2.1); keep the well-formed ones.
        return parse_dle_eot(reply[: _leading_valid(reply)])
    return parse_star_asb(await exchange(request, printer_link.read_asb))


def _dle_eot_replies(rest_timeout: float) -> printer_link.ReadReply:
    """Read DLE EOT 1's reply, then whatever of 2, 3, 4 arrives within `rest_timeout`.

    Every ESC/POS printer answers n = 1; some clones stay silent for n = 2..4. Waiting for
    all four made such a printer time out and read "unreachable" though it is online.
    """

    async def read(reader: asyncio.StreamReader) -> bytes:
        reply = await reader.readexactly(1)
        if rest_timeout <= 0:
            return reply
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(rest_timeout):
                while len(reply) < 4 and (chunk := await reader.read(4 - len(reply))):
                    reply += chunk
        return reply

    return read


def _leading_valid(reply: bytes) -> int:
    """How many replies, from the first, have the DLE EOT pattern (at least 1 to be parsed)."""
    count = 0
    while count < len(reply) and valid_dle_eot_byte(reply[count]):
        count += 1
    return max(1, count)


class Prober:
    """Owns the health of every configured printer; `run()` is a task of the agent's TaskGroup."""

    def __init__(
        self,
        printers: Mapping[str, PrinterSettings],
        settings: HealthSettings,
        link: Publisher,
        topics: Topics,
        *,
        locks: Locks,
        resolve: Callable[[str], Address | None],
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        devices: DeviceLinks | None = None,
    ) -> None:
        self.printers = dict(printers)
        # Printers on a character device, shared with the dispatcher (keep_open).
        self.devices = DeviceLinks() if devices is None else devices
        self.settings = settings
        self.locks = locks
        self.resolve = resolve
        self.link = link
        self.topics = topics
        self.metrics = metrics
        self.clock = clock
        self.sleep = sleep
        self.timeout = min(PROBE_TIMEOUT_S, max(0.1, settings.interval_s * 0.8))
        self.health = {pid: health.unknown(pid, p.host or p.device) for pid, p in printers.items()}
        self.published: dict[str, PrinterHealth] = {}
        self.alerts: list[health.Alert] = []
        self.probes = 0
        self._watch = {pid: DrawerWatch() for pid in printers}
        # Probes since a printer last answered only DLE EOT 1; None = it answers all four.
        self._partial: dict[str, int | None] = dict.fromkeys(printers)
        self._quiet = {pid: QuietLog(log) for pid in printers}
        self._republish = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        """Probe every printer every `interval_s`, staggered so probes do not come in bursts."""
        n = max(1, len(self.printers))
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self._republisher(), name="health.republish")
            for i, pid in enumerate(self.printers):
                self._start(pid, self.settings.interval_s * i / n)

    def update(self, printers: Mapping[str, PrinterSettings]) -> None:
        """A mapping change: probe new or changed printers now, stop probing removed ones."""
        old, self.printers = self.printers, dict(printers)
        for pid in set(old) - set(printers):
            task = self._tasks.pop(pid, None)
            if task is not None:
                task.cancel()
            for table in (self.health, self._watch, self._partial, self._quiet):
                table.pop(pid, None)
        for pid, printer in printers.items():
            if old.get(pid) == printer:
                continue
            task = self._tasks.pop(pid, None)
            if task is not None:
                task.cancel()
            self.health[pid] = health.unknown(pid, printer.host or printer.device)
            self._watch[pid] = DrawerWatch()
            self._partial[pid] = None
            self._quiet.setdefault(pid, QuietLog(log))
            self._start(pid, 0.0)

    def _start(self, printer_id: str, offset: float) -> None:
        if self._tg is not None:
            self._tasks[printer_id] = self._tg.create_task(
                self._probe_forever(printer_id, offset), name=f"probe[{printer_id}]"
            )

    def reconnected(self) -> None:
        """After a broker (re)connect: publish every printer's retained status again."""
        self.published.clear()
        self._republish.set()

    def kick_for(self, printer: PrinterSettings) -> Kick:
        """The pulse form for this printer given its last probe (real-time when offline)."""
        return health.choose_kick(printer, self.health.get(printer.id))

    async def read_drawer(self, printer_id: str, written_at: float) -> bool | None:
        """Closed loop: the drawer sensor shortly after a pulse, or None when unknown."""
        if printer_id not in self.printers:
            return None  # removed from the mapping since its pulse
        wait = written_at + SENSOR_DELAY_S - self.clock()
        if wait > 0:
            await self.sleep(wait)
        try:
            async with asyncio.timeout(SENSOR_BUDGET_S):
                current = await self.probe(printer_id)
        except TimeoutError:
            return None
        return current.drawer_open if current.reachable else None

    async def probe(self, printer_id: str) -> PrinterHealth:
        """Probe one printer now (under its lock), update its health, publish what changed."""
        printer = self.printers[printer_id]
        device = self.devices.for_printer(printer)
        address: Address | None = (device.path, 0) if device else self.resolve(printer_id)
        previous = self.health[printer_id]
        if address is None:
            current = health.unreachable(
                previous, host=None, reason="address unknown", now=self.clock()
            )
        else:
            host, port = address
            async with self.locks[printer_id]:
                started = time.perf_counter()
                partial = self._partial[printer_id]
                only_first = partial is not None and partial % FULL_STATUS_EVERY != 0
                try:
                    status = await query_status(
                        printer.command_set,
                        host,
                        port,
                        timeout=self.timeout,
                        only_first=only_first,
                        device=device,
                    )
                except (PrinterUnreachable, StatusError) as exc:
                    reason = exc.reason if isinstance(exc, PrinterUnreachable) else str(exc)
                    current = health.unreachable(
                        previous, host=host, reason=reason, now=self.clock()
                    )
                else:
                    rtt = time.perf_counter() - started
                    if printer.command_set is CommandSet.ESCPOS:
                        answered_all = status.paper is not None
                        self._partial[printer_id] = (
                            None if answered_all else 1 if partial is None else partial + 1
                        )
                    current = health.observe(
                        previous,
                        status,
                        open_level=open_level(printer.drawer_open_level, printer.command_set),
                        host=host,
                        now=self.clock(),
                        rtt_ms=round(rtt * 1000, 3),
                    )
                    if self.metrics is not None:
                        self.metrics.probe_seconds.observe(rtt)
        await self._update(current)
        return current

    async def _probe_forever(self, printer_id: str, offset: float) -> None:
        await self.sleep(offset)
        while True:
            started = time.monotonic()
            await self.probe(printer_id)
            await self.sleep(max(0.0, self.settings.interval_s - (time.monotonic() - started)))

    async def _republisher(self) -> None:
        while True:
            await self._republish.wait()
            self._republish.clear()
            for pid, current in list(self.health.items()):
                if current.checked_at is not None:
                    await self._publish_status(current)
                else:
                    log.debug("printer %s not probed yet; status published after its probe", pid)

    async def _update(self, current: PrinterHealth) -> None:
        pid = current.printer_id
        if pid not in self.printers:
            return  # removed from the mapping while this probe ran
        self.probes += 1
        self.health[pid] = current
        quiet = self._quiet[pid]
        if current.reachable:
            quiet.recovered("printer %s: status readable again", pid)
        else:
            quiet.warning("printer %s: status probe failed: %s", pid, current.last_error)
        if self.metrics is not None:
            self.metrics.probed(pid, up=current.reachable, drawer_open=current.drawer_open)
        self._watch[pid], alert = health.watch_drawer(
            self._watch[pid],
            pid,
            current.drawer_open,
            now=self.clock(),
            alert_after_s=self.settings.drawer_open_alert_s,
        )
        if alert is not None:
            await self._publish_alert(alert)
        if health.must_publish(self.published.get(pid), current):
            await self._publish_status(current)

    async def _publish_status(self, current: PrinterHealth) -> None:
        pid = current.printer_id
        try:
            await self.link.publish(
                self.topics.printer_status(pid), health.status_payload(current), retain=True
            )
        except BrokerError as exc:
            # Republished after the next connect (reconnected()).
            log.debug("status of printer %s not published: %s", pid, exc)
            return
        self.published[pid] = current

    async def _publish_alert(self, alert: health.Alert) -> None:
        self.alerts.append(alert)
        del self.alerts[:-100]
        if self.metrics is not None:
            self.metrics.alerts.labels(alert.kind).inc()
        log.warning(
            "printer %s: drawer open since %.0f s ago",
            alert.printer_id,
            self.clock() - alert.since,
            extra={"printer_id": alert.printer_id, "alert": alert.kind},
        )
        try:
            await self.link.publish(self.topics.alerts, alert.to_json())
        except BrokerError as exc:
            log.debug("alert for printer %s not published: %s", alert.printer_id, exc)
