"""Remote configuration over MQTT: requests in, responses out, retained config and inventory.

`agent/request/<name>` → `agent/response/<name>` (zigbee2mqtt's bridge convention, issue 11).
Changes go through the same LiveMapping as the console, so they are validated, revisioned and
audited alike (who = the signing key id). Answers and retained state leave through one queue
drained by `run()`, so neither a slow broker nor a test pulse ever holds up cash events.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from agent.core import requests as rq
from agent.core.errors import BrokerError, LedgerError
from agent.core.events import MAX_PAYLOAD_BYTES
from agent.core.mapping import Actor, Applied, Outcome, Refused, RuntimeMapping
from agent.core.settings import Settings
from agent.core.topics import Topics
from agent.core.views import KickAnswer
from agent.io import signing
from agent.io.mapping_store import LiveMapping
from agent.io.mqtt_link import Incoming, MqttLink

log = logging.getLogger(__name__)

# Unsigned requests have no token to remember: a retry of the same bytes (the client
# libraries re-publish until answered) gets the first answer again instead of acting twice.
ANSWERED_MEMORY = 256
ANSWERED_FOR_S = 120.0
REPLAY_WINDOW_S = 300.0
# The inventory's online and drawer state follow the probes and the pulses; looked at this
# often, so a busy shop's drawers do not rewrite a large retained message (and the broker's
# persistence file with it) every second. The printers' own status topics carry each change.
REFRESH_EVERY_S = 5.0

_REFUSED_CODES = {
    "invalid": rq.ErrorCode.INVALID,
    "in_use": rq.ErrorCode.IN_USE,
    "not_found": rq.ErrorCode.NOT_FOUND,
    "conflict": rq.ErrorCode.CONFLICT,
    "limit": rq.ErrorCode.INVALID,
}
_KICK_ERRORS = {
    "unknown_printer": rq.ErrorCode.UNKNOWN_PRINTER,
    "failed": rq.ErrorCode.FAILED,
    "expired": rq.ErrorCode.FAILED,
    "queue_full": rq.ErrorCode.UNAVAILABLE,
    "rate_limited": rq.ErrorCode.UNAVAILABLE,
    "not_recorded": rq.ErrorCode.UNAVAILABLE,
}

TestKick = Callable[[str, str], Awaitable[KickAnswer]]
StartDiscovery = Callable[[Sequence[str]], Awaitable[bool]]


@dataclass(frozen=True)
class _Out:
    topic: str
    payload: bytes
    retain: bool = False


class RemoteRequests:
    """Answers `agent/request/#` and keeps `agent/config` and `agent/inventory` retained."""

    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        link: MqttLink,
        mapping: LiveMapping,
        *,
        test_kick: TestKick,
        keyring: signing.KeyRing | None,
        inventory: Callable[[RuntimeMapping], Mapping[str, object]],
        start_discovery: StartDiscovery | None = None,
        started_at: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.link = link
        self.mapping = mapping
        self.test_kick = test_kick
        self.keyring = keyring
        self.inventory = inventory
        self.start_discovery = start_discovery
        self.clock = clock
        self.replays = rq.ReplayGuard(
            started_at=clock() if started_at is None else started_at,
            max_window_s=REPLAY_WINDOW_S,
        )
        self.answered: OrderedDict[bytes, tuple[float, _Out]] = OrderedDict()
        self.queue: asyncio.Queue[_Out] = asyncio.Queue()
        self.handled = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_state: dict[str, bytes] = {}

    # -- retained state ----------------------------------------------------------------

    def state_changed(self, *_args: object) -> None:
        """Queue config and inventory when they differ from what was last queued."""
        current = self.mapping.current
        for topic, body in (
            (self.topics.config, current.to_json()),
            (self.topics.inventory, self.inventory(current)),
        ):
            payload = json.dumps(body, separators=(",", ":"), default=str).encode()
            if self._last_state.get(topic) != payload:
                self._last_state[topic] = payload
                self.queue.put_nowait(_Out(topic, payload, retain=True))

    def reconnected(self) -> None:
        """After every (re)connect: publish config and inventory again, changed or not."""
        self._last_state.clear()
        self.state_changed()

    async def run(self) -> None:
        """Publish answers and retained state in order, forever."""
        try:
            while True:
                out = await self.queue.get()
                try:
                    await self.link.publish(out.topic, out.payload, retain=out.retain)
                except BrokerError as exc:
                    # Retained state comes again after the reconnect; a lost answer is
                    # sent again from `answered` when the client retries.
                    log.debug("%s not published: %s", out.topic, exc)
                    if out.retain:
                        self._last_state.pop(out.topic, None)
        finally:
            for task in list(self._tasks):
                task.cancel()

    async def refresh_forever(self, period_s: float = REFRESH_EVERY_S) -> None:
        """Health and discovery change without telling the mapping: look again each period."""
        while True:
            await asyncio.sleep(period_s)
            self.state_changed()

    # -- requests ----------------------------------------------------------------------

    async def handle(self, msg: Incoming) -> None:
        """One request: answered (ok or error), PUBACKed; never raises for bad input."""
        self.handled += 1
        suffix = self.topics.request_suffix(msg.topic) or ""
        reply_topic = self.topics.response(_safe_suffix(suffix))
        now = self.clock()
        digest = hashlib.sha256(msg.topic.encode() + b"\0" + msg.payload).digest()
        self._forget_answers(now)
        earlier = self.answered.get(digest)
        if earlier is not None and not msg.retain:
            self.link.ack(msg)
            self.queue.put_nowait(earlier[1])
            return
        try:
            request, actor = self._parse(suffix, msg, now)
        except rq.BadRequest as exc:
            self.link.ack(msg)
            log.warning("request %s refused: %s", suffix[:60], exc)
            self._answer(
                reply_topic, digest, now, rq.error_response(exc.transaction, exc.code, exc.detail)
            )
            return
        self.link.ack(msg)
        if request.name in (rq.RequestName.PRINTERS_KICK, rq.RequestName.DISCOVERY_START):
            # A test pulse waits for its sensor reading: in its own task, never in the
            # message loop the cash events share.
            task = asyncio.create_task(self._slow(request, actor, reply_topic, digest, now))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._answer(reply_topic, digest, now, self._change(request, actor, now))

    def _parse(self, suffix: str, msg: Incoming, now: float) -> tuple[rq.Request, Actor]:
        hint = _transaction_of(msg.payload)
        if msg.retain:
            raise rq.BadRequest(
                rq.ErrorCode.RETAINED,
                "retained request refused: it would run again on every reconnect",
                hint,
            )
        if msg.qos == 0:
            raise rq.BadRequest(rq.ErrorCode.QOS0, "requests must be published with QoS 1", hint)
        name = _named(suffix, hint)
        if len(msg.payload) > MAX_PAYLOAD_BYTES:
            raise rq.BadRequest(
                rq.ErrorCode.MALFORMED,
                f"payload is {len(msg.payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}",
                hint,
            )
        signed = self.settings.security.require_signed or (
            self.keyring is not None and signing.looks_signed(msg.payload)
        )
        if not signed:
            return rq.parse_request(name, _json_object(msg.payload)), Actor("mqtt", "unsigned")
        if self.keyring is None:
            raise rq.BadRequest(rq.ErrorCode.SIGNATURE, "no key configured", hint)
        try:
            claims = signing.verify(msg.payload, self.keyring, now=now)
        except signing.SignatureError as exc:
            claimed = signing.unverified_claims(msg.payload)
            detail = exc.reason + (f" ({exc.detail})" if exc.detail else "")
            raise rq.BadRequest(
                rq.ErrorCode.SIGNATURE, detail, rq.transaction_hint(claimed or {})
            ) from None
        kid, signature = signing.verified_identity(msg.payload)
        request = rq.parse_request(name, claims)
        refused = self.replays.check(signature, claims, now)
        if refused is not None:
            raise rq.BadRequest(rq.ErrorCode.SIGNATURE, refused, request.transaction)
        return request, Actor("mqtt", kid)

    def _change(self, request: rq.Request, actor: Actor, now: float) -> bytes:
        name, tx, expect = request.name, request.transaction, request.revision
        if name is rq.RequestName.CONFIG_GET:
            return rq.ok_response(tx, self.mapping.current.to_json())
        operation: Callable[[RuntimeMapping], Outcome]
        if name is rq.RequestName.PRINTERS_SET:
            pid, table = request.text("printer_id"), rq.printer_table(request)

            def operation(m: RuntimeMapping) -> Outcome:
                return m.set_printer(pid, table, actor=actor, at=now, expect=expect)

        elif name is rq.RequestName.PRINTERS_REMOVE:
            pid = request.text("printer_id")

            def operation(m: RuntimeMapping) -> Outcome:
                return m.remove_printer(pid, actor=actor, at=now, expect=expect)

        elif name is rq.RequestName.TERMINALS_SET:
            till, target = request.text("terminal_id"), request.text("printer_id")

            def operation(m: RuntimeMapping) -> Outcome:
                return m.set_terminal(till, target, actor=actor, at=now, expect=expect)

        else:
            assert name is rq.RequestName.TERMINALS_REMOVE
            till = request.text("terminal_id")

            def operation(m: RuntimeMapping) -> Outcome:
                return m.remove_terminal(till, actor=actor, at=now, expect=expect)

        try:
            outcome = self.mapping.apply(operation)
        except LedgerError as exc:
            return rq.error_response(tx, rq.ErrorCode.UNAVAILABLE, f"not recorded: {exc}")
        if isinstance(outcome, Refused):
            detail = outcome.reason if outcome.key is None else f"{outcome.key}: {outcome.reason}"
            code = _REFUSED_CODES.get(outcome.code, rq.ErrorCode.INVALID)
            return rq.error_response(tx, code, detail)
        assert isinstance(outcome, Applied)
        log.info(
            "mapping %s %s %s by mqtt:%s (revision %d)",
            outcome.change.action,
            outcome.change.kind,
            outcome.change.key,
            actor.who,
            outcome.change.revision,
        )
        data = {**outcome.change.to_json(), "revision": outcome.mapping.revision}
        return rq.ok_response(tx, data)

    async def _slow(
        self, request: rq.Request, actor: Actor, topic: str, digest: bytes, now: float
    ) -> None:
        tx = request.transaction
        if request.name is rq.RequestName.PRINTERS_KICK:
            answer = await self.test_kick(request.text("printer_id"), f"mqtt:{actor.who}")
            code = _KICK_ERRORS.get(answer.code)
            body = (
                rq.ok_response(tx, answer.to_json())
                if code is None
                else rq.error_response(tx, code, answer.detail or answer.code)
            )
        else:
            body = await self._discover(request)
        self._answer(topic, digest, now, body)

    async def _discover(self, request: rq.Request) -> bytes:
        tx = request.transaction
        unavailable = rq.error_response(
            tx,
            rq.ErrorCode.UNAVAILABLE,
            "discovery is not available on this agent: enable [discovery] in its settings",
        )
        if self.start_discovery is None:
            return unavailable
        subnets = request.fields.get("subnets") or []
        assert isinstance(subnets, list)
        try:
            started = await self.start_discovery([str(s) for s in subnets])
        except LookupError as exc:
            return rq.error_response(tx, rq.ErrorCode.UNAVAILABLE, str(exc))
        except ValueError as exc:
            return rq.error_response(tx, rq.ErrorCode.INVALID, f"subnets: {exc}")
        if not started:
            return rq.error_response(tx, rq.ErrorCode.UNAVAILABLE, "a sweep is already running")
        return rq.ok_response(tx, {"started": True})

    def _answer(self, topic: str, digest: bytes, now: float, body: bytes) -> None:
        out = _Out(topic, body)
        self.answered[digest] = (now, out)
        while len(self.answered) > ANSWERED_MEMORY:
            self.answered.popitem(last=False)
        self.queue.put_nowait(out)

    def _forget_answers(self, now: float) -> None:
        while self.answered:
            at, _ = next(iter(self.answered.values()))
            if now - at < ANSWERED_FOR_S:
                break
            self.answered.popitem(last=False)


def _named(suffix: str, hint: str | None) -> rq.RequestName:
    try:
        return rq.request_name(suffix)
    except rq.BadRequest as exc:
        raise rq.BadRequest(exc.code, exc.detail, hint) from None


def _safe_suffix(suffix: str) -> str:
    """The response topic's name: the request's, when it is a sane topic level."""
    ok = 0 < len(suffix) <= 64 and suffix.isprintable() and not set(suffix) & set("+#\0")
    return suffix if ok else "invalid"


def _json_object(payload: bytes) -> dict[str, object]:
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise rq.BadRequest(rq.ErrorCode.MALFORMED, f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(value, dict):
        raise rq.BadRequest(rq.ErrorCode.MALFORMED, "a request is a JSON object")
    return value


def _transaction_of(payload: bytes) -> str | None:
    """The transaction to echo in an early error, from JSON or an (unverified) token."""
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        claims = signing.unverified_claims(payload)
        return None if claims is None else rq.transaction_hint(claims)
    return rq.transaction_hint(value) if isinstance(value, dict) else None
