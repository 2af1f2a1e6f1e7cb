"""The aiomqtt adapter never leaves paho's socket callbacks on a file descriptor it gave up.

After a broker kill the number of paho's closed socket is handed to the next socket the
agent opens, typically a printer connection; a callback left on it hijacks that socket.
"""

import asyncio
import contextlib
import socket
import sys
import time

from agent.core.settings import validate
from agent.io.mqtt_link import TCP_QUICKACK, MqttLink, PosClient, rearm_quickack
from tests.waiting import loop_turn


def make_link() -> MqttLink:
    settings = validate({"shop_id": "t", "mqtt": {"url": "mqtt://127.0.0.1:1"}}, lambda p: b"")
    return MqttLink(settings.mqtt)


def has_writer(loop: asyncio.AbstractEventLoop, fd: int) -> bool:
    try:
        key = loop._selector.get_key(fd)
    except KeyError:
        return False
    return bool(key.events & 2)  # selectors.EVENT_WRITE


async def test_closing_pahos_socket_removes_its_writer():
    loop = asyncio.get_running_loop()
    client = make_link()._make_client()
    paho = client._client
    left, right = socket.socketpair()
    try:
        loop.add_writer(left.fileno(), lambda: None)  # what aiomqtt registered for paho
        paho.on_socket_close(paho, None, left)
        assert not has_writer(loop, left.fileno())
    finally:
        left.close()
        right.close()


async def test_a_deferred_registration_for_a_reused_fd_is_dropped():
    loop = asyncio.get_running_loop()
    client = make_link()._make_client()
    printer_side, other = socket.socketpair()  # paho has no socket: this fd is not paho's
    try:
        client._loop.call_soon_threadsafe(loop.add_writer, printer_side.fileno(), lambda: None)
        await loop_turn()  # the deferred call has run
        assert not has_writer(loop, printer_side.fileno())
        # Anything else still goes through.
        ran = asyncio.Event()
        client._loop.call_soon_threadsafe(ran.set)
        await asyncio.wait_for(ran.wait(), 1)
    finally:
        printer_side.close()
        other.close()


# --- quick ACK after every read (issue 12) -------------------------------------------------
# A broker with Nagle on (mosquitto's default) holds its next PUBLISH until our kernel ACKs
# its last PUBACK; the delayed ACK makes that ~40 ms. The adapter re-arms TCP_QUICKACK after
# each read of the MQTT socket. These tests check the mechanism, not timing.

# The agent's platforms (Debian, the Raspberry Pi, docker) are Linux; elsewhere the re-arm is
# a no-op and only test_default_after_read_is_the_rearm_on_linux applies.


def quickack(sock: socket.socket) -> int:
    assert TCP_QUICKACK is not None, "these tests need Linux (TCP_QUICKACK)"
    return sock.getsockopt(socket.IPPROTO_TCP, TCP_QUICKACK)


def rearmed_between(consumed: list[float], calls: list[float]) -> bool:
    """True when at least one re-arm ran between consecutive deliveries (after each read)."""
    edges = [0.0, *consumed]
    return bool(consumed) and all(
        any(lo < t <= hi for t in calls) for lo, hi in zip(edges, edges[1:], strict=False)
    )


def test_rearm_sets_quick_ack_on_a_real_socket():
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()) as client,
    ):
        client.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 0)  # delayed-ACK mode
        assert quickack(client) == 0  # negative control: the option reads back
        rearm_quickack(client)
        assert quickack(client) == 1


async def exchange_messages(mosquitto, after_read, n=5):
    """Run a real link; publish n messages one at a time; record deliveries and re-arms."""
    settings = validate(
        {"shop_id": "t", "mqtt": {"url": mosquitto.url, "client_id": "qa"}}, lambda p: b""
    )
    calls: list[tuple[float, int, bool]] = []
    consumed: list[float] = []
    modes: list[int] = []  # the socket's quick-ACK mode when each message is handed over
    arrived = asyncio.Condition()

    def record(sock: socket.socket) -> None:
        after_read(sock)
        is_paho = link._client is not None and sock is link._client._client.socket()
        calls.append((time.monotonic(), quickack(sock), is_paho))

    link = MqttLink(settings.mqtt, after_read=record if after_read else None)
    connected = asyncio.Event()

    async def on_message(msg):
        # Read back before our PUBACK: a send can put the socket back into delayed ACKs.
        modes.append(quickack(link._client._client.socket()))
        link.ack(msg)
        consumed.append(time.monotonic())
        async with arrived:
            arrived.notify_all()

    async def on_connect():
        connected.set()

    task = asyncio.create_task(link.run("qa/in", on_message, on_connect))
    try:
        await asyncio.wait_for(connected.wait(), 10)
        async with PosClient(settings.mqtt, "qa/none", client_id="qa-pos") as pos:
            for i in range(n):
                sock = link._client._client.socket()
                sock.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 0)  # as after our send
                assert quickack(sock) == 0
                await pos.publish("qa/in", b"m%d" % i)
                async with asyncio.timeout(10), arrived:
                    await arrived.wait_for(lambda i=i: len(consumed) > i)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return consumed, calls, modes


async def test_quick_ack_is_rearmed_after_every_read_of_the_mqtt_socket(mosquitto):
    consumed, calls, modes = await exchange_messages(mosquitto, rearm_quickack)
    assert len(consumed) == 5
    assert all(is_paho and value == 1 for _, value, is_paho in calls)
    assert rearmed_between(consumed, [t for t, _, _ in calls])
    # The read that brought each message left the real socket in quick-ACK mode, although
    # the test had put it in delayed-ACK mode just before.
    assert modes == [1] * 5


async def test_negative_control_without_the_rearm_the_check_fails(mosquitto):
    consumed, calls, modes = await exchange_messages(mosquitto, None)
    assert len(consumed) == 5
    assert calls == []
    assert 0 in modes  # left in delayed-ACK mode by the read (unless the 40 ms timer fired)
    assert not rearmed_between(consumed, [t for t, _, _ in calls])
    # Once at connect is not enough either (the kernel drops quick-ACK mode after a send).
    assert not rearmed_between(consumed, [consumed[0] - 1.0])


def test_default_after_read_is_the_rearm_on_linux():
    link = make_link()
    expected = rearm_quickack if sys.platform == "linux" else None
    assert link.after_read is expected
