"""The aiomqtt adapter: the only module that imports aiomqtt or paho.

It keeps a persistent session (stable client id, clean start off, session expiry), takes
over PUBACKs (manual ack, so the broker keeps an event until the ledger has it), resubscribes
after every connect and reconnects forever with capped, jittered backoff, moving on to the
next configured node (cluster member or standby) after each failed or lost connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.core.errors import AgentError, BrokerError
from agent.core.retry import Backoff
from agent.core.settings import MqttNode, MqttSettings
from agent.io.logs import QuietLog

log = logging.getLogger(__name__)

# With manual acks the broker sends at most this many unacknowledged QoS 1 messages
# (MQTT 5 §3.1.2.11.3 Receive Maximum), which bounds our incoming queue.
RECEIVE_MAXIMUM = 100
MAX_QOS0_QUEUED = 1000
# Acks and PUBACKs are tiny: without this, Nagle holds them for the peer's delayed ACK (~40 ms).
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
# Linux only (tcp(7) TCP_QUICKACK); None elsewhere, where the re-arm is skipped.
TCP_QUICKACK: int | None = (
    getattr(socket, "TCP_QUICKACK", None) if sys.platform == "linux" else None
)

# Reconnect delays: 0.25-0.5 s, then doubling up to 2.5-5 s (equal jitter). Events wait at
# the broker while we are away, and a drawer is wanted within seconds: with a 30 s cap, three
# broker restarts within 3 s (tests/faults/test_broker_kill.py) kept the agent away 9 s after
# the broker was back. 500 shops retrying every 2.5-5 s are 100-200 CONNECTs a second,
# nothing for a broker cluster.
RECONNECT = Backoff(base=0.5, factor=2.0, cap=5.0)

AfterRead = Callable[[socket.socket], None]


def rearm_quickack(sock: socket.socket) -> None:
    """Send the ACK for what was just read now, not after the delayed-ACK timer (tcp(7)).

    The broker's bytes wait for our ACK when its socket has Nagle on (mosquitto's default,
    `set_tcp_nodelay false`): after our QoS 1 ack, its 4-byte PUBACK is unacknowledged, and
    its next PUBLISH to us is held until our kernel's delayed ACK fires (~40 ms). Setting
    TCP_QUICKACK pushes a pending ACK at once and leaves "pingpong" mode, but the kernel
    returns to delayed ACKs after our next send ("not permanent", tcp(7)), so it is set
    again after every read.
    """
    if TCP_QUICKACK is None:
        return
    # A socket that closed under us (broker gone) is handled by paho's own read path.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 1)


DEFAULT_AFTER_READ: AfterRead | None = rearm_quickack if TCP_QUICKACK is not None else None
# How long a CONNECT may wait for its CONNACK (and a SUBSCRIBE for its SUBACK). With another
# node to try, a short wait: a NATS node holds a CONNECT without answer while its JetStream
# elects new stream leaders after a node loss (seen for > 10 s), when the next node may
# already answer (docs/brokers.md).
CONNECT_TIMEOUT_S = 10.0
FAILOVER_CONNECT_TIMEOUT_S = 4.0


@dataclass(frozen=True)
class Incoming:
    """One received message, independent of the MQTT library."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    generation: int


@dataclass(frozen=True)
class LastWill:
    """Message the broker publishes when we vanish."""

    topic: str
    payload: bytes


def tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    """TLS for mqtts:// (hostname verification on), or None for plain mqtt://."""
    if not settings.tls:
        return None
    try:
        ctx = ssl.create_default_context(cafile=settings.ca_file)
        if settings.cert_file:
            ctx.load_cert_chain(settings.cert_file, settings.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise BrokerError(f"TLS setup failed: {exc}") from None
    return ctx


# The aiomqtt release the paho shim below (_GuardedLoop, the paho callbacks wrapped in
# _make_client) was written against: it reaches into Client._loop and Client._client.
# tests/unit/test_mqtt_pin.py fails when the installed or pinned aiomqtt differs.
SHIMMED_AIOMQTT = "2.5.1"


def new_client(
    settings: MqttSettings,
    host: str,
    port: int,
    *,
    identifier: str,
    timeout: float,
    **session: Any,
) -> aiomqtt.Client:
    """An aiomqtt client for one broker node: the settings' protocol, credentials and TLS,
    TCP_NODELAY; `session` adds the agent's will, keepalive and persistent-session options."""
    protocol = (
        aiomqtt.ProtocolVersion.V5 if settings.protocol == 5 else aiomqtt.ProtocolVersion.V311
    )
    return aiomqtt.Client(
        host,
        port,
        socket_options=NO_DELAY,
        username=settings.username,
        password=settings.password,
        identifier=identifier,
        protocol=protocol,
        tls_context=tls_context(settings),
        timeout=timeout,
        **session,
    )


class _GuardedLoop:
    """The event loop as aiomqtt 2.5 sees it, refusing stale socket registrations.

    aiomqtt registers paho's socket through deferred calls that capture its file
    descriptor number (`call_soon_threadsafe(loop.add_writer, sock.fileno(), ...)`). When
    the broker dies, paho closes that socket before the deferred call runs, and the number
    can already belong to a printer connection: paho's callback then replaces the printer
    socket's, and that connect or status read never completes (seen as loopback connects
    timing out right after a broker kill -9). A registration runs only while the fd is
    still paho's own socket.

    The reader callback registered for paho's socket is also where every read of the MQTT
    socket happens (paho's `loop_read`), so `after_read` runs there, after each one.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, paho: Any, after_read: AfterRead | None = None
    ) -> None:
        self._loop = loop
        self._paho = paho
        self._after_read = after_read

    def call_soon_threadsafe(self, callback: Any, *args: Any, **kwargs: Any) -> Any:
        """Pass through, except fd registrations, which are checked when they run."""
        if args and callback in (self._loop.add_reader, self._loop.add_writer):
            fd = args[0]
            if callback == self._loop.add_reader and self._after_read is not None:
                args = (fd, self._reading(args[1]), *args[2:])

            def guarded() -> None:
                sock = self._paho.socket()
                if sock is not None and sock.fileno() == fd:
                    callback(*args)

            return self._loop.call_soon_threadsafe(guarded, **kwargs)
        return self._loop.call_soon_threadsafe(callback, *args, **kwargs)

    def _reading(self, read: Callable[[], None]) -> Callable[[], None]:
        after_read = self._after_read
        assert after_read is not None

        def read_then() -> None:
            read()
            sock = self._paho.socket()
            if sock is not None:
                after_read(sock)

        return read_then

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)


@dataclass(frozen=True)
class _Disconnected:
    """Queued by paho's on_disconnect; only the connection it names is over."""

    generation: int


class MqttLink:
    """One broker connection, re-entered in a loop by `run()`."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        will: LastWill | None = None,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        after_read: AfterRead | None = DEFAULT_AFTER_READ,
    ) -> None:
        self.settings = settings
        self.will = will
        # Run on paho's socket after each read of it: the TCP_QUICKACK re-arm on Linux.
        self.after_read = after_read
        self.backoff = backoff or RECONNECT
        self.rng = rng or random.Random()
        self.generation = 0
        self.nodes = settings.endpoints()
        self.node = 0  # index in `nodes` of the one we are on, or trying next
        self.connected = asyncio.Event()
        self.connects = 0
        self._queue: asyncio.Queue[Incoming | _Disconnected] = asyncio.Queue()
        self._qos0_queued = 0
        self._client: aiomqtt.Client | None = None
        self._quiet = QuietLog(log)
        self._taking = True
        self.topics: list[str] = []

    @property
    def broker(self) -> str:
        """host:port of the current node, for status messages."""
        node = self.nodes[self.node]
        return f"{node.host}:{node.port}"

    async def run(
        self,
        topic: str | Sequence[str],
        on_message: Callable[[Incoming], Awaitable[None]],
        on_connect: Callable[[], Awaitable[None]],
    ) -> None:
        """Subscribe to `topic` (or several) and feed messages to `on_message`, reconnecting
        forever; topics added by `subscribe()` meanwhile are subscribed again on reconnect."""
        self.topics = [topic] if isinstance(topic, str) else list(topic)
        clients: dict[int, aiomqtt.Client] = {}
        failures = 0
        while True:
            # One client per node, kept: re-entering it reuses its persistent session
            # settings; the session itself lives in the broker (cluster-wide on a cluster).
            client = clients.get(self.node) or self._make_client(self.nodes[self.node])
            clients[self.node] = self._client = client
            try:
                async with client:
                    self.connects += 1
                    failures = 0
                    for name in list(self.topics):
                        await client.subscribe(name, qos=1)
                    self.connected.set()
                    log.info("connected to broker %s", self.broker)
                    self._quiet.recovered("broker %s: faults cleared", self.broker)
                    await on_connect()
                    await self._consume(on_message)
            except (aiomqtt.MqttError, AgentError) as exc:
                # Redeliver, or any part failing inside on_connect/on_message (a LedgerError):
                # unacked messages stay with the broker and come back after the reconnect.
                self.connected.clear()
                failures += 1
                delay = self.backoff.delay(failures, self.rng)
                lost = self.broker
                # In order, wrapping around: a lost node is retried only after the others.
                self.node = (self.node + 1) % len(self.nodes)
                # The text, not the exception: after a failed TLS handshake paho leaves the
                # socket open in the frames of the exception chain, and a log handler that
                # keeps records (a capture, a buffer) would keep that connection open.
                self._quiet.warning("broker %s: %s; reconnecting", lost, str(exc))
                log.debug("reconnecting to %s in %.2f s", self.broker, delay)
                await asyncio.sleep(delay)
            finally:
                self.connected.clear()

    async def subscribe(self, topic: str) -> None:
        """Add a subscription now (when connected) and on every later connect."""
        if topic in self.topics:
            return
        self.topics.append(topic)
        if self._client is None or not self.connected.is_set():
            return
        try:
            await self._client.subscribe(topic, qos=1)
        except aiomqtt.MqttError as exc:
            # Subscribed again on the next connect, with the others.
            log.debug("subscribe %s deferred: %s", topic, exc)

    def stop_taking(self) -> None:
        """Stop handing messages to the consumer; unacked ones stay with the broker."""
        self._taking = False

    def ack(self, message: Incoming) -> None:
        """Send the PUBACK for a message handled on the current connection."""
        # A mid from an earlier connection may now name another in-flight message; the
        # broker resends that one anyway (MQTT 3.1.1 §4.4, 5.0 §4.4).
        if message.qos == 0 or message.generation != self.generation or self._client is None:
            return
        self._client._client.ack(message.mid, message.qos)

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        qos: int = 1,
        timeout: float = 5.0,
    ) -> None:
        """Publish and, for QoS 1, wait for the broker's PUBACK."""
        if self._client is None or not self.connected.is_set():
            raise BrokerError(f"not connected to {self.broker}")
        try:
            await self._client.publish(topic, payload, qos=qos, retain=retain, timeout=timeout)
        except aiomqtt.MqttError as exc:
            raise BrokerError(f"publish to {self.broker} failed: {exc}") from None

    async def _consume(self, on_message: Callable[[Incoming], Awaitable[None]]) -> None:
        while True:
            item = await self._queue.get()
            if isinstance(item, _Disconnected):
                # A marker left by an earlier connection must not end this one.
                if item.generation == self.generation:
                    raise aiomqtt.MqttError("disconnected from broker")
                continue
            if item.qos == 0:
                self._qos0_queued -= 1
            if item.generation != self.generation or not self._taking:
                continue
            await on_message(item)

    def _make_client(self, node: MqttNode | None = None) -> aiomqtt.Client:
        """A client for `node` (default: the current one)."""
        node = node or self.nodes[self.node]
        s = self.settings
        will = None
        if self.will is not None:
            will = aiomqtt.Will(self.will.topic, self.will.payload, qos=1, retain=True)
        session: dict[str, Any] = {}
        if s.protocol == 5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            # Without a session expiry a v5 session dies at disconnect (LIBRARIES §1.3).
            props.SessionExpiryInterval = s.session_expiry_s
            props.ReceiveMaximum = RECEIVE_MAXIMUM
            session.update(clean_start=False, properties=props)
        else:
            session.update(clean_session=False)
        client = new_client(
            s,
            node.host,
            node.port,
            identifier=s.client_id,
            timeout=CONNECT_TIMEOUT_S if len(self.nodes) == 1 else FAILOVER_CONNECT_TIMEOUT_S,
            will=will,
            keepalive=s.keepalive_s,
            **session,
        )
        # aiomqtt warns past 10 publishes awaiting PUBACK; acks and retained statuses after
        # a reconnect legitimately exceed that, and a warning per publish floods the log.
        client.pending_calls_threshold = 10_000
        paho = client._client
        # Manual acks must be on before the first CONNECT: queued session messages
        # arrive right after CONNACK (LIBRARIES §1.6).
        paho.manual_ack_set(True)
        original_connect, original_disconnect = paho.on_connect, paho.on_disconnect
        assert original_connect is not None
        assert original_disconnect is not None

        mine = [0]  # the generation of this client's latest connection

        def on_connect(*args: Any, **kwargs: Any) -> None:
            # paho handles packets in order, so every PUBLISH after this CONNACK is tagged
            # with the new generation.
            self.generation += 1
            mine[0] = self.generation
            original_connect(*args, **kwargs)

        def on_disconnect(*args: Any, **kwargs: Any) -> None:
            original_disconnect(*args, **kwargs)
            # This client's own connection, never the one another node's client holds now.
            self._queue.put_nowait(_Disconnected(mine[0]))

        def on_message(_client: Any, _userdata: Any, msg: Any) -> None:
            if msg.qos == 0:
                # QoS 0 has no flow control; drop past a bound rather than grow.
                if self._qos0_queued >= MAX_QOS0_QUEUED:
                    return
                self._qos0_queued += 1
            self._queue.put_nowait(
                Incoming(
                    topic=msg.topic,
                    payload=bytes(msg.payload),
                    qos=msg.qos,
                    retain=bool(msg.retain),
                    mid=msg.mid,
                    generation=self.generation,
                )
            )

        paho.on_connect = on_connect
        paho.on_disconnect = on_disconnect
        paho.on_message = on_message
        loop = asyncio.get_running_loop()
        client._loop = _GuardedLoop(loop, paho, self.after_read)  # type: ignore[assignment]
        original_socket_close = paho.on_socket_close
        assert original_socket_close is not None

        def on_socket_close(paho_client: Any, userdata: Any, sock: Any) -> None:
            fd = sock.fileno()
            original_socket_close(paho_client, userdata, sock)
            # aiomqtt removes only the reader. A writer left on a closed fd stays in the
            # selector's map (epoll forgets the fd by itself): the next socket given that
            # number, a printer connection, would be "modified" instead of added and never
            # report its connect. Removed now, before paho closes the socket.
            if fd > -1:
                loop.remove_writer(fd)

        paho.on_socket_close = on_socket_close
        return client


class PosClient:
    """A POS stand-in that publishes events and collects acks (demo, `publish`, tests, bench)."""

    def __init__(self, settings: MqttSettings, ack_topic: str, *, client_id: str) -> None:
        self.settings = settings
        self.ack_topic = ack_topic
        self.client_id = client_id
        self.acks: dict[str | None, list[dict[str, Any]]] = {}
        self.extra_topics: dict[str, list[tuple[bytes, bool]]] = {}
        self._changed = asyncio.Condition()
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PosClient:
        s = self.settings
        self._client = new_client(s, s.host, s.port, identifier=self.client_id, timeout=10)
        try:
            await self._client.__aenter__()
            await self._client.subscribe(self.ack_topic, qos=1)
        except aiomqtt.MqttError as exc:
            raise BrokerError(f"cannot reach broker {s.host}:{s.port}: {exc}") from None
        self._reader = asyncio.create_task(self._read(), name=f"pos[{self.client_id}]")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.__aexit__(None, None, None)

    async def watch(self, topic: str) -> None:
        """Also collect messages of `topic` (retained ones included) in `extra_topics`."""
        assert self._client is not None
        self.extra_topics.setdefault(topic, [])
        await self._client.subscribe(topic, qos=1)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish like a POS backend would."""
        assert self._client is not None
        try:
            await self._client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as exc:
            raise BrokerError(f"publish failed: {exc}") from None

    async def wait_ack(
        self, event_id: str | None, timeout: float = 10.0, count: int = 1
    ) -> list[dict[str, Any]]:
        """Wait for `count` acks of `event_id`; TimeoutError otherwise."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.acks.get(event_id, ())) >= count)
        return self.acks[event_id]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until `predicate()` holds after some message arrived."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def _read(self) -> None:
        assert self._client is not None
        with contextlib.suppress(aiomqtt.MqttError):
            async for msg in self._client.messages:
                payload = (
                    bytes(msg.payload)
                    if isinstance(msg.payload, bytes | bytearray)
                    else str(msg.payload).encode()
                )
                topic = msg.topic.value
                if topic == self.ack_topic:
                    try:
                        ack = json.loads(payload)
                    except ValueError:
                        continue
                    self.acks.setdefault(ack.get("event_id"), []).append(ack)
                else:
                    for pattern, seen in self.extra_topics.items():
                        if msg.topic.matches(pattern):
                            seen.append((payload, bool(msg.retain)))
                async with self._changed:
                    self._changed.notify_all()
