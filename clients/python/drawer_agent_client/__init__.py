"""drawer-agent client for POS backends: publish cash events, get the agent's ack, configure it.

    async with Client("mqtt://broker:1883", "salon-42", key_id="pos-2025", key=secret) as c:
        ack = await c.publish({"type": "sale", "terminal_id": "T1"})

It gets right what the raw contract leaves to you: a fresh `event_id` and `occurred_at` when
missing, the JWS signature, TCP_NODELAY, TCP_QUICKACK after each read (Linux), waiting for
the agent's ack (not the broker's PUBACK), and re-publishing the *same* payload until that ack
arrives, across broker restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlparse

import aiomqtt
import jwt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = [
    "CONTRACT",
    "Ack",
    "AgentError",
    "Client",
    "ClientError",
    "NoAck",
    "Rejected",
    "RequestFailed",
    "Update",
]

# The contract schema generated from the agent's own models (agent/core/contract.py).
CONTRACT: dict[str, Any] = json.loads(
    resources.files(__name__).joinpath("contract.json").read_text("utf-8")
)
_TOPICS: dict[str, str] = CONTRACT["topics"]
ACK_STATUSES = tuple(CONTRACT["$defs"]["Ack"]["properties"]["status"]["enum"])
REQUESTS = tuple(CONTRACT["requests"])
_NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
_REPLAY = "replay:"
# Linux only (tcp(7) TCP_QUICKACK); None elsewhere, where the re-arm is skipped.
TCP_QUICKACK: int | None = (
    getattr(socket, "TCP_QUICKACK", None) if sys.platform == "linux" else None
)

AfterRead = Callable[[socket.socket], None]


def rearm_quickack(sock: socket.socket) -> None:
    """ACK what was just read now, not when the delayed-ACK timer fires (tcp(7) TCP_QUICKACK).

    A broker with Nagle on (mosquitto's default, `set_tcp_nodelay false`) holds its next
    PUBLISH to us, the agent's ack, while its PUBACK to our event is unacknowledged: until our
    kernel's delayed ACK (up to ~40 ms, bench/results/capture.md). Setting TCP_QUICKACK sends
    a pending ACK at once, but "is not permanent" (tcp(7)): the kernel goes back to delayed
    ACKs after our next send, so it is set again after every read.
    """
    if TCP_QUICKACK is None:
        return
    # A socket that closed under us (broker gone) is handled by paho's own read path.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 1)


DEFAULT_AFTER_READ: AfterRead | None = rearm_quickack if TCP_QUICKACK is not None else None


def after_each_read(paho: Any, after_read: AfterRead) -> None:
    """Run `after_read(sock)` after every `loop_read()` of the paho client `paho`.

    Every read of paho's socket is a `loop_read()` call: aiomqtt 2.5's reader callback
    (`Client._on_socket_open`) calls it on the paho client, and so does paho's own network
    thread (`loop_start`). Its PUBACKs are only queued there and written later, so this runs
    after the read and before our next send.
    """
    read = paho.loop_read

    def loop_read(max_packets: int = 1) -> Any:
        rc = read(max_packets)
        sock = paho.socket()
        if sock is not None:
            after_read(sock)
        return rc

    paho.loop_read = loop_read


class ClientError(Exception):
    """Base of every error this client raises."""


class AgentError(ClientError):
    """Not connected, or the agent did not answer in time."""


class NoAck(AgentError, TimeoutError):
    """No ack from the agent within the total timeout: the drawer state is unknown."""

    def __init__(self, event_id: str, seconds: float, sent: int) -> None:
        super().__init__(f"no ack for {event_id} within {seconds:.1f} s ({sent} publishes)")
        self.event_id = event_id
        self.sent = sent


@dataclass(frozen=True)
class Ack:
    """The agent's answer to one cash event (see the README's ack table)."""

    event_id: str | None
    status: str
    terminal_id: str | None = None
    printer_id: str | None = None
    attempts: int = 0
    latency_ms: float | None = None
    detail: str = ""
    drawer_open: bool | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Ack:
        """An ack payload (already JSON-decoded)."""
        return cls(
            event_id=obj.get("event_id"),
            status=str(obj.get("status")),
            terminal_id=obj.get("terminal_id"),
            printer_id=obj.get("printer_id"),
            attempts=int(obj.get("attempts") or 0),
            latency_ms=obj.get("latency_ms"),
            detail=str(obj.get("detail") or ""),
            drawer_open=obj.get("drawer_open"),
            raw=dict(obj),
        )

    @property
    def opened(self) -> bool:
        """The drawer was pulsed for this event."""
        return self.status == "opened"


class Rejected(ClientError):
    """The agent refused the event (malformed, unsigned, forged, rate limited, ...)."""

    def __init__(self, ack: Ack) -> None:
        super().__init__(f"rejected: {ack.detail}")
        self.ack = ack
        self.reason = ack.detail


class RequestFailed(ClientError):
    """An error response to a request; `code` is one of the contract's error codes."""

    def __init__(self, name: str, code: str, detail: str, response: Mapping[str, Any]) -> None:
        super().__init__(f"{name}: {code}: {detail}")
        self.name = name
        self.code = code
        self.detail = detail
        self.response = response


@dataclass(frozen=True)
class Update:
    """One message from `watch()`: kind is status, printer, inventory, config or alert."""

    kind: str
    topic: str
    data: Any


def _now_rfc3339(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")


class Client:
    """One connection to the shop's broker, kept up (reconnects) until the block exits."""

    def __init__(
        self,
        url: str,
        shop_id: str,
        key_id: str | None = None,
        key: bytes | str | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        retry_every_s: float = 2.0,
        timeout_s: float = 15.0,
        token_ttl_s: int = 30,
        tls_context: Any = None,
        after_read: AfterRead | None = DEFAULT_AFTER_READ,
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"url must be mqtt:// or mqtts://, not {url!r}")
        if (key_id is None) != (key is None):
            raise ValueError("give both key_id and key, or neither")
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or (8883 if parsed.scheme == "mqtts" else 1883)
        self.username = username or (unquote(parsed.username) if parsed.username else None)
        self.password = password or (unquote(parsed.password) if parsed.password else None)
        if parsed.scheme == "mqtts" and tls_context is None:
            import ssl

            tls_context = ssl.create_default_context()
        self.tls_context = tls_context
        self.shop_id = shop_id
        self.key_id = key_id
        self._key, self._alg = _signing_key(key)
        # A persistent session under a stable id: acks the agent sends while we reconnect
        # wait for us at the broker instead of being lost.
        self.client_id = client_id or f"dac-{shop_id}-{uuid.uuid4().hex[:12]}"
        self.retry_every_s = retry_every_s
        self.timeout_s = timeout_s
        self.token_ttl_s = token_ttl_s
        # Run on the MQTT socket after each read of it: the TCP_QUICKACK re-arm on Linux.
        self.after_read = after_read
        self.publishes = 0  # every PUBLISH of an event or request, retries included
        self.connects = 0
        self._topics = {k: v.replace("{shop_id}", shop_id) for k, v in _TOPICS.items()}
        self._mqtt: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._acks: dict[str, list[Ack]] = {}
        self._anonymous: list[tuple[float, Ack]] = []
        self._responses: dict[str, list[dict[str, Any]]] = {}
        self._changed = asyncio.Condition()
        self._watchers: list[asyncio.Queue[Update]] = []
        self._retained: dict[str, Update] = {}
        self._failure: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        self._runner = asyncio.create_task(self._run(), name="drawer-agent-client")
        waiter = asyncio.create_task(self._connected.wait())
        done, _ = await asyncio.wait(
            {waiter, self._runner}, timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            waiter.cancel()
            await self.__aexit__(None, None, None)
            raise AgentError(f"cannot connect to {self.host}:{self.port}: {self._failure}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._runner
            self._runner = None

    @property
    def connected(self) -> bool:
        """True while the broker connection is up."""
        return self._connected.is_set()

    async def _run(self) -> None:
        delay = 0.1
        while not self._closing:
            try:
                async with self._make() as mqtt:
                    self._mqtt = mqtt
                    self.connects += 1
                    await mqtt.subscribe(
                        [
                            (self._topics["acks"], 1),
                            (self._topics["response"].replace("{name}", "#"), 1),
                            (self._topics["agent_status"], 1),
                            (self._topics["printer_status"].replace("{printer_id}", "+"), 1),
                            (self._topics["alerts"], 1),
                            (self._topics["config"], 1),
                            (self._topics["inventory"], 1),
                        ]
                    )
                    delay = 0.1
                    self._connected.set()
                    async for message in mqtt.messages:
                        await self._on_message(message)
            except aiomqtt.MqttError as exc:
                self._failure = exc
            finally:
                self._connected.clear()
                self._mqtt = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _make(self) -> aiomqtt.Client:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        client = aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            socket_options=_NO_DELAY,  # Nagle would hold each event behind our own PUBACK
            tls_context=self.tls_context,
            keepalive=30,
            timeout=5,
        )
        if self.after_read is not None:
            after_each_read(client._client, self.after_read)
        return client

    async def _on_message(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        payload = message.payload
        raw = payload if isinstance(payload, bytes | bytearray) else str(payload).encode()
        if not raw:  # a retained message being cleared
            return
        try:
            data = json.loads(raw)
        except ValueError:
            return
        if topic == self._topics["acks"] and isinstance(data, dict):
            ack = Ack.from_json(data)
            if ack.event_id is None:
                self._anonymous.append((time.monotonic(), ack))
                del self._anonymous[:-100]
            else:
                self._acks.setdefault(ack.event_id, []).append(ack)
        elif message.topic.matches(self._topics["response"].replace("{name}", "#")):
            if isinstance(data, dict) and isinstance(data.get("transaction"), str):
                self._responses.setdefault(data["transaction"], []).append(data)
        else:
            self._fan_out(Update(_kind(topic, self._topics), topic, data), bool(message.retain))
        async with self._changed:
            self._changed.notify_all()

    def _fan_out(self, update: Update, retained: bool) -> None:
        if update.kind in ("status", "printer", "config", "inventory"):
            self._retained[update.topic] = update
        for queue in self._watchers:
            queue.put_nowait(update)

    # -- cash events -------------------------------------------------------------------------

    def prepare(self, event: Mapping[str, Any], *, now: float | None = None) -> tuple[str, bytes]:
        """The event's id and the exact payload `publish` sends (and re-sends)."""
        now = time.time() if now is None else now
        body = dict(event)
        body.setdefault("event_id", str(uuid.uuid4()))
        body.setdefault("occurred_at", _now_rfc3339(now))
        return str(body["event_id"]), self._encode(body, now)

    async def publish(self, event: Mapping[str, Any], *, timeout_s: float | None = None) -> Ack:
        """Publish one cash event and return the agent's ack (Rejected / NoAck otherwise)."""
        event_id, payload = self.prepare(event)
        return await self.publish_prepared(event_id, payload, timeout_s=timeout_s)

    async def publish_prepared(
        self, event_id: str, payload: bytes, *, timeout_s: float | None = None
    ) -> Ack:
        """Publish `payload` (from `prepare`) until its ack arrives; same bytes every time."""
        total = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + total
        seen = len(self._acks.get(event_id, ()))
        started = time.monotonic()
        sent = 0
        duplicate: Ack | None = None
        while (left := deadline - time.monotonic()) > 0:
            if duplicate is None and await self._send(self._topics["events"], payload, left):
                sent += 1
            wait = min(self.retry_every_s, deadline - time.monotonic())
            if duplicate is not None:
                wait = deadline - time.monotonic()
            ack = await self._wait_ack(event_id, seen, started, max(wait, 0.0))
            if ack is None:
                continue
            if ack.status == "rejected":
                raise Rejected(ack)
            if ack.status == "duplicate" and sent > 1 and duplicate is None:
                # Our own retry answered: the first copy's real outcome is on its way
                # (the broker keeps it in our session, the agent resends unsent acks).
                duplicate = ack
                seen = len(self._acks.get(event_id, ()))
                deadline = min(deadline, time.monotonic() + self.retry_every_s * 2)
                continue
            return ack
        if duplicate is not None:
            return duplicate
        raise NoAck(event_id, total, sent)

    async def _wait_ack(self, event_id: str, seen: int, since: float, timeout: float) -> Ack | None:
        def ready() -> bool:
            if len(self._acks.get(event_id, ())) > seen:
                return True
            return self._anonymous_rejection(since) is not None

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(ready)
        except TimeoutError:
            return None
        acks = self._acks.get(event_id, [])
        if len(acks) > seen:
            return acks[seen]
        return self._anonymous_rejection(since)

    def _anonymous_rejection(self, since: float) -> Ack | None:
        # A forged or unverifiable token gets an ack with event_id null (the agent cannot
        # trust its claims): matched by time, as docs/signing.md says.
        for at, ack in self._anonymous:
            if at >= since and ack.status == "rejected":
                return ack
        return None

    async def _send(self, topic: str, payload: bytes, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
            mqtt = self._mqtt
            if mqtt is None:
                return False
            await mqtt.publish(topic, payload, qos=1, retain=False, timeout=min(timeout, 5))
        except (TimeoutError, aiomqtt.MqttError):
            return False
        self.publishes += 1
        return True

    # -- requests ----------------------------------------------------------------------------

    async def request(
        self, name: str, data: Mapping[str, Any] | None = None, *, timeout_s: float | None = None
    ) -> Any:
        """Ask the agent (config/get, terminals/set, printers/kick, ...); return `data`."""
        if name not in REQUESTS:
            raise ValueError(f"{name!r} is not a request; known: {', '.join(REQUESTS)}")
        now = time.time()
        transaction = str(uuid.uuid4())
        body = {**dict(data or {}), "transaction": transaction}
        if self._key is not None:
            body.setdefault("jti", transaction)
        payload = self._encode(body, now)
        topic = self._topics["request"].replace("{name}", name)
        total = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + total
        sent = 0
        while (left := deadline - time.monotonic()) > 0:
            if await self._send(topic, payload, left):
                sent += 1
            wait = min(self.retry_every_s, deadline - time.monotonic())
            response = await self._wait_response(transaction, sent, max(wait, 0.0))
            if response is None:
                continue
            if response.get("status") == "ok":
                return response.get("data")
            error = response.get("error") or {}
            raise RequestFailed(
                name, str(error.get("code")), str(error.get("detail", "")), response
            )
        raise AgentError(f"no response to {name} within {total:.1f} s ({sent} publishes)")

    async def _wait_response(
        self, transaction: str, sent: int, timeout: float
    ) -> dict[str, Any] | None:
        def useful() -> list[dict[str, Any]]:
            got = self._responses.get(transaction, [])
            if sent > 1:
                # Our own retry of a token the agent already took: the first answer counts.
                got = [r for r in got if not _is_replay(r)] or got[:0]
            return got

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: bool(useful()))
        except TimeoutError:
            return None
        return useful()[0]

    # -- watching ----------------------------------------------------------------------------

    async def watch(self) -> AsyncIterator[Update]:
        """Agent status, printer status, inventory, config and alerts, as they arrive.

        The retained ones already known are yielded first.
        """
        queue: asyncio.Queue[Update] = asyncio.Queue()
        for update in list(self._retained.values()):
            queue.put_nowait(update)
        self._watchers.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._watchers.remove(queue)

    def latest(self, kind: str) -> Any:
        """The last retained value of `inventory`, `config` or `status` seen, or None."""
        for update in reversed(list(self._retained.values())):
            if update.kind == kind:
                return update.data
        return None

    # -- signing -----------------------------------------------------------------------------

    def _encode(self, body: dict[str, Any], now: float) -> bytes:
        if self._key is None:
            return json.dumps(body, separators=(",", ":")).encode()
        claims = {**body, "iat": int(now), "exp": int(now) + self.token_ttl_s}
        token = jwt.encode(claims, self._key, algorithm=self._alg, headers={"kid": self.key_id})
        return token.encode("ascii")


def _signing_key(key: bytes | str | None) -> tuple[Any, str]:
    """HS256 for a shared secret (>= 32 bytes), ES256 for an EC P-256 private key PEM."""
    if key is None:
        return None, ""
    raw = key.encode() if isinstance(key, str) else bytes(key)
    if b"PRIVATE KEY" in raw:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        return load_pem_private_key(raw, password=None), "ES256"
    if len(raw) < 32:
        raise ValueError(f"an HS256 secret needs at least 32 bytes, this has {len(raw)}")
    return raw, "HS256"


def _is_replay(response: Mapping[str, Any]) -> bool:
    error = response.get("error")
    return isinstance(error, dict) and str(error.get("detail", "")).startswith(_REPLAY)


def _kind(topic: str, topics: Mapping[str, str]) -> str:
    if topic == topics["agent_status"]:
        return "status"
    if topic == topics["inventory"]:
        return "inventory"
    if topic == topics["config"]:
        return "config"
    if topic == topics["alerts"]:
        return "alert"
    return "printer"
