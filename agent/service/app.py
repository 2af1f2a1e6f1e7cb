"""The running agent: one TaskGroup owns every long-lived task; SIGTERM drains and exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, closing
from dataclasses import dataclass, field

from agent import __version__
from agent.core import kick as lifecycle
from agent.core.addresses import AddressBook
from agent.core.errors import BrokerError, LedgerError
from agent.core.hosts import is_loopback
from agent.core.inventory import build_inventory
from agent.core.kick import Outcome
from agent.core.mapping import RuntimeMapping
from agent.core.ratelimit import PulseRateLimiter
from agent.core.settings import Settings
from agent.core.topics import Topics
from agent.io import signing
from agent.io.device_link import DeviceLinks
from agent.io.http_api import HttpServer
from agent.io.ledger import Ledger
from agent.io.mapping_store import LiveMapping, MappingStore
from agent.io.metrics import Metrics
from agent.io.mqtt_link import Incoming, LastWill, MqttLink
from agent.service.admission import Admission
from agent.service.console_backend import AgentBackend
from agent.service.control import AgentView, ManualKicks
from agent.service.dispatcher import Dispatcher, Locks
from agent.service.intake import AckPublisher, Intake, Reporter
from agent.service.prober import Prober
from agent.service.requests import RemoteRequests
from discovery import PrinterRecord
from discovery.core.subnets import console_sweep
from discovery.io.store import DiscoveryStore
from discovery.service import DiscoveryService

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
CHECKPOINT_EVERY_S = 1.0
STOP_BUDGET_S = 4.5
# How long a cancelled task gets before it is cancelled again (see cancel_all).
CANCEL_AGAIN_S = 0.2


@dataclass
class Agent:
    """The running agent's parts, as wired; given to `started` (tests, the demo), never to HTTP."""

    settings: Settings
    ledger: Ledger
    link: MqttLink
    dispatcher: Dispatcher
    acks: AckPublisher
    intake: Intake
    reporter: Reporter
    topics: Topics
    metrics: Metrics
    prober: Prober
    addresses: AddressBook
    locks: Locks
    view: AgentView
    kicks: ManualKicks
    mapping: LiveMapping
    # The discovery service once started (a list, so the read model can see it appear).
    discoveries: list[DiscoveryService]
    console: AgentBackend
    started_at: float = field(default_factory=time.time)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    http_port: int = 0
    discovery: DiscoveryService | None = None
    remote: RemoteRequests | None = None

    def ready(self) -> tuple[bool, str]:
        """Readiness: connected to the broker with a writable ledger."""
        return self.view.ready()


def build_keyring(settings: Settings) -> signing.KeyRing | None:
    """Key ring from settings, or None when no key is configured."""
    sec = settings.security
    if not sec.keys and not sec.public_keys:
        return None
    return signing.KeyRing.build(sec.keys, sec.public_keys)


def wire(settings: Settings, ledger: Ledger, store: MappingStore) -> Agent:
    """Every part, given its collaborators at construction, in dependency order."""
    topics = Topics(settings.shop_id)
    link = MqttLink(
        settings.mqtt,
        will=LastWill(topics.agent_status, json.dumps({"state": "offline"}).encode()),
    )
    metrics = Metrics(
        connected=link.connected.is_set,
        ledger_size=ledger.count,
        event_type=lambda eid: row.type if (row := ledger.get(eid)) else None,
    )
    acks = AckPublisher(link, topics, ledger)
    book = AddressBook(settings.printers)
    locks = Locks()
    # Printers on a character device: one link each, shared by probes and kicks.
    devices = DeviceLinks()
    # Health, metrics and the closed loop (issue 4).
    prober = Prober(
        settings.printers,
        settings.health,
        link,
        topics,
        locks=locks,
        resolve=book.address,
        metrics=metrics,
        devices=devices,
    )
    manual: list[ManualKicks] = []
    reporter = Reporter(
        acks,
        on_final=metrics.event,
        on_outcome=lambda outcome: _outcome(metrics, manual, outcome),
    )
    dispatcher = Dispatcher(
        settings.printers,
        ledger,
        settings.dispatch,
        reporter.outcome,
        locks=locks,
        resolve=book.address,
        kick_for=prober.kick_for,
        # The ack then waits ~0.5 s for the sensor reading after the pulse.
        read_drawer=prober.read_drawer if settings.health.confirm_drawer else None,
        devices=devices,
    )
    admission = Admission(
        ledger, dispatcher, PulseRateLimiter(settings.security.max_pulses_per_minute)
    )
    intake = Intake(settings, ledger, admission, reporter, link, build_keyring(settings))
    kicks = ManualKicks(settings, admission)
    manual.append(kicks)
    discovery: list[DiscoveryService] = []
    view = AgentView(
        settings,
        ledger,
        connected=link.connected.is_set,
        broker=lambda: link.broker,
        metrics=metrics,
        prober=prober,
        dispatcher=dispatcher,
        discovered=lambda: [r.to_json() for d in discovery for r in d.snapshot()],
    )
    # The runtime mapping (issue 10): the file's printers and tills with the console's
    # and POS's overrides on top; each change applies to the next event, no restart.
    mapping = LiveMapping.load(store, settings.printers, settings.terminals)

    def apply_mapping(current: RuntimeMapping, _change: object = None) -> None:
        printers, terminals = current.printer_settings(), current.terminal_map()
        book.update(printers)
        dispatcher.update(printers)
        prober.update(printers)
        intake.update(printers, terminals)
        kicks.update(printers)
        view.update(printers, current)

    apply_mapping(mapping.current)
    mapping.subscribe(apply_mapping)
    console = AgentBackend(
        settings,
        ledger,
        mapping,
        view,
        kicks,
        prober,
        dispatcher,
        broker=lambda: link.broker,
        connected=link.connected.is_set,
        started_at=time.time(),
    )
    # Remote configuration over MQTT (issue 11): requests, retained config and inventory.
    remote = RemoteRequests(
        settings,
        topics,
        link,
        mapping,
        test_kick=lambda pid, origin: kicks.test_kick(pid, origin, wait=True),
        keyring=build_keyring(settings),
        inventory=lambda current: build_inventory(
            current,
            prober.health,
            discovered_records(discovery, console),
            dispatcher.resolve,
        ),
        start_discovery=lambda subnets: remote_sweep(console, subnets),
    )
    mapping.subscribe(remote.state_changed)
    agent = Agent(
        settings,
        ledger,
        link,
        dispatcher,
        acks,
        intake,
        reporter,
        topics,
        metrics,
        prober,
        book,
        locks,
        view,
        kicks,
        mapping,
        discovery,
        console,
        remote=remote,
    )
    remote.replays.started_at = agent.started_at
    return agent


async def run(
    settings: Settings,
    *,
    install_signals: bool = True,
    started: Callable[[Agent], None] | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or `agent.stopping` is set); return the exit code."""
    with (
        Ledger.open(settings.state.path, background_checkpoints=True) as ledger,
        MappingStore.open(ledger.path) as store,
    ):
        agent = wire(settings, ledger, store)
        recover(ledger, agent.dispatcher)
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, agent.stopping.set)
        try:
            await _serve(agent, started)
        finally:
            await agent.dispatcher.devices.close()  # keep_open devices (rfcomm) released
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
    log.info("drawer-agent stopped")
    return 0


async def _serve(agent: Agent, started: Callable[[Agent], None] | None) -> None:
    """HTTP, discovery and every long-lived task, until `agent.stopping` is set."""
    settings, ledger, book = agent.settings, agent.ledger, agent.addresses
    remote = agent.remote
    assert remote is not None

    async def on_connect() -> None:
        await publish_status(agent, "online")
        agent.prober.reconnected()
        remote.reconnected()
        await agent.acks.resend_unacked(skip=agent.dispatcher.sensing_ids)

    async def on_message(msg: Incoming) -> None:
        if agent.topics.request_suffix(msg.topic) is not None:
            await remote.handle(msg)
        else:
            await agent.intake.handle(msg)

    async with (
        HttpServer(settings.http, agent.view, agent.kicks, agent.console, settings.shop_id) as http,
        contextlib.AsyncExitStack() as stack,
    ):
        agent.http_port = http.port
        if wants_discovery(settings):
            agent.discovery = await stack.enter_async_context(
                DiscoveryService(
                    settings.discovery.to_config(),
                    store=stack.enter_context(closing(DiscoveryStore(ledger.path))),
                    on_change=lambda new, _old: follow(book, ledger, new),
                    guard=lambda host, port: printer_guard(book, agent.locks, host, port),
                )
            )
            agent.discoveries.append(agent.discovery)
            for record in agent.discovery.snapshot():
                follow(book, ledger, record)
        if not is_loopback(settings.http.host):
            log.warning(
                "console and API listen on %s, reachable from the LAN: %s",
                http.url,
                "log in with the [http] token or a `drawer-agent pair` code"
                if settings.http.token
                else "no [http] token is set, so the API refuses every request and the "
                "console takes only `drawer-agent pair` codes",
            )
        log.info(
            "drawer-agent %s for shop %s: %d printers, %d terminals, http on %s",
            __version__,
            settings.shop_id,
            len(agent.dispatcher.printers),
            len(settings.terminals),
            http.url,
        )
        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(
                    agent.link.run(
                        [agent.topics.events, agent.topics.requests], on_message, on_connect
                    ),
                    name="mqtt",
                ),
                tg.create_task(remote.run(), name="remote"),
                tg.create_task(remote.refresh_forever(), name="remote-state"),
                tg.create_task(agent.dispatcher.run(), name="dispatch"),
                tg.create_task(agent.acks.run(), name="acks"),
                tg.create_task(agent.prober.run(), name="health"),
                tg.create_task(prune_forever(ledger, settings.state.retention_days), name="prune"),
                tg.create_task(checkpoint_forever(ledger), name="checkpoint"),
                tg.create_task(watch_loop_lag(), name="loop-lag"),
            ]
            if started is not None:
                started(agent)
            await agent.stopping.wait()
            await shutdown(agent)
            await agent.console.aclose()
            await cancel_all(tasks, STOP_BUDGET_S)


def _outcome(metrics: Metrics, manual: list[ManualKicks], outcome: Outcome) -> None:
    metrics.outcome(outcome)
    for kicks in manual:
        kicks.finished(outcome)


async def remote_sweep(console: AgentBackend, subnets: Sequence[str]) -> bool:
    """discovery/start over MQTT: the console's sweep, on the subnets the console would pick."""
    configured, interfaces = console.discovery_defaults()
    chosen = console_sweep(subnets, configured, interfaces)  # ValueError names a bad subnet
    if not chosen:
        raise LookupError("no subnet to sweep: name one in subnets, or set discovery.subnets")
    return await console.start_discovery(chosen)


def discovered_records(
    services: Sequence[DiscoveryService], console: AgentBackend
) -> list[dict[str, object]]:
    """Every printer discovery knows: the service's, then what the last console sweep found."""
    records = {(r.host, r.port): r for d in services for r in d.snapshot()}
    for r in console.discovery().found:
        records.setdefault((r.host, r.port), r)
    return [r.to_json() for r in records.values()]


def wants_discovery(settings: Settings) -> bool:
    """Discovery runs when configured, or when a printer is followed by identity."""
    return settings.discovery.enabled or any(p.match for p in settings.printers.values())


def follow(book: AddressBook, ledger: Ledger, record: PrinterRecord) -> None:
    """A discovered printer changed: move matched printers there, log it, audit it."""
    for move in book.observe(record):
        log.warning("%s", move.describe(), extra={"printer_id": move.printer_id})
        try:
            ledger.audit(
                kind="address_change",
                printer_id=move.printer_id,
                detail=move.describe(),
                at=time.time(),
            )
        except LedgerError as exc:
            log.error("address change not audited: %s", exc)


def printer_guard(
    book: AddressBook, locks: Locks, host: str, port: int
) -> AbstractAsyncContextManager[object]:
    """Discovery probes hold the printer's lock, so they never overlap a pulse."""
    pid = book.printer_at(host, port)
    if pid is None:
        return contextlib.nullcontext()
    return locks[pid]


async def shutdown(agent: Agent) -> None:
    """Stop taking events, let in-flight pulses finish (bounded), say offline, within 5 s."""
    deadline = time.monotonic() + STOP_BUDGET_S
    agent.link.stop_taking()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(agent.settings.dispatch.grace_s):
            await agent.dispatcher.drained()
    if agent.dispatcher.pending():
        # Claimed events still queued stay 'pending' in the ledger and resume on restart.
        log.warning(
            "stopping with %d pulses pending; they resume at the next start if "
            "still within max_age_s",
            agent.dispatcher.pending(),
        )
    left = max(0.1, deadline - time.monotonic())
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(left / 2):
            await agent.acks.flush()
            await publish_status(agent, "offline")


async def cancel_all(tasks: Sequence[asyncio.Task[None]], budget_s: float) -> None:
    """Cancel `tasks` and wait for them, cancelling again those a cancel did not end.

    Python 3.11's `asyncio.wait_for` swallows a cancellation that arrives in the loop turn
    its inner future completes (gh-86296, fixed by the 3.12 rewrite on `asyncio.timeout`):
    aiomqtt awaits every PUBACK through it, so under load a publishing task can shrug off
    one cancel, take its next message and wait for ever (seen: an agent that did not stop).
    Past `budget_s`, the stragglers are logged with where they wait and left to the group.
    """
    deadline = time.monotonic() + budget_s
    pending = [task for task in tasks if not task.done()]
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - time.monotonic()
        if left <= 0:
            for task in pending:
                frames = task.get_stack(limit=1)
                where = f"{frames[0].f_code.co_filename}:{frames[0].f_lineno}" if frames else "?"
                log.error("task %s did not stop when cancelled (at %s)", task.get_name(), where)
            return
        await asyncio.wait(pending, timeout=min(left, CANCEL_AGAIN_S))
        pending = [task for task in pending if not task.done()]


async def publish_status(agent: Agent, state: str) -> None:
    """Retained agent status; the last will carries "offline" when we vanish."""
    body: dict[str, object] = {"state": state}
    if state == "online":
        body.update(
            version=__version__,
            started_at=agent.started_at,
            broker=agent.link.broker,
            printers=len(agent.dispatcher.printers),
            # Lets a fleet view subscribe to each printer's status by exact topic.
            printer_ids=sorted(agent.dispatcher.printers),
        )
    try:
        await agent.link.publish(agent.topics.agent_status, json.dumps(body).encode(), retain=True)
    except BrokerError as exc:
        log.debug("status %s not published: %s", state, exc)


def recover(ledger: Ledger, lane: Dispatcher) -> None:
    """Finish what a previous run left: resume untried events, never resend a started one."""
    now = time.time()
    for row in ledger.unfinished():
        track = row.track()
        known = row.printer_id is not None and row.printer_id in lane.printers
        step = lifecycle.next_step(track, lifecycle.Restarted(printer_known=known), now)
        if isinstance(step.action, lifecycle.Finish):
            ledger.finish(
                row.event_id,
                status=step.action.status.value,
                attempts=row.attempts,
                finished_at=now,
                detail=step.action.detail,
            )
        elif row.printer_id is not None and lane.has_room(row.printer_id):
            lane.submit(row.job())
            log.info(
                "resuming event %s after restart", row.event_id, extra={"event_id": row.event_id}
            )


async def watch_loop_lag(period: float = 0.1, warn_after: float = 0.25) -> None:
    """Warn when the event loop was blocked: every pulse deadline and timeout depends on it."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(period)
        lag = loop.time() - before - period
        if lag > warn_after:
            log.warning("event loop blocked for %.0f ms", lag * 1000)


async def checkpoint_forever(ledger: Ledger) -> None:
    """WAL checkpoints in a thread every second, so their fsync never stalls the loop.

    A second without a commit counts as idle: the WAL is then truncated to nothing.
    """
    seen = ledger.commits
    while True:
        await asyncio.sleep(CHECKPOINT_EVERY_S)
        idle, seen = ledger.commits == seen, ledger.commits
        try:
            await asyncio.to_thread(ledger.checkpoint, idle=idle)
        except LedgerError as exc:
            log.warning("%s", exc)


async def prune_forever(ledger: Ledger, retention_days: int) -> None:
    """Delete audit rows past retention, now and every hour."""
    while True:
        try:
            removed = ledger.prune(time.time() - retention_days * 86400)
        except LedgerError as exc:
            log.warning("ledger not pruned: %s", exc)  # tried again at the next period
        else:
            if removed:
                log.info("pruned %d ledger rows older than %d days", removed, retention_days)
        await asyncio.sleep(PRUNE_EVERY_S)
