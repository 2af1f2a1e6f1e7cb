"""The Python client re-arms TCP_QUICKACK after every read of its MQTT socket (issue 12).

mosquitto's default (`set_tcp_nodelay false`, Nagle on) holds the agent's ack to the POS
until the POS's kernel ACKs the broker's 4-byte PUBACK of the event: its delayed ACK, up to
~40 ms (bench/results/capture.md). The client sets TCP_QUICKACK after each read, which sends
that ACK at once; tcp(7) says the option "is not permanent", hence after every read. These
tests check the mechanism on a real socket to a real mosquitto (tests/conftest.py's, which
keeps mosquitto's default Nagle), not timing.

The POS platforms the client is tested on are Linux; elsewhere `DEFAULT_AFTER_READ` is None
and only test_the_default_is_the_rearm_on_linux applies.
"""

import asyncio
import json
import socket
import sys
import time

import aiomqtt
import pytest
from drawer_agent_client import DEFAULT_AFTER_READ, TCP_QUICKACK, Client, rearm_quickack

pytestmark = pytest.mark.broker
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


def quickack(sock: socket.socket) -> int:
    """The socket's quick-ACK mode as the kernel reports it (getsockopt TCP_QUICKACK)."""
    assert TCP_QUICKACK is not None, "these tests need Linux (TCP_QUICKACK)"
    return sock.getsockopt(socket.IPPROTO_TCP, TCP_QUICKACK)


def paho_socket(c: Client) -> socket.socket:
    assert c._mqtt is not None
    sock = c._mqtt._client.socket()
    assert isinstance(sock, socket.socket)
    return sock


async def fake_agent(port: int, ready: asyncio.Event) -> None:
    """Answers each event on shops/t/cash/events with an `opened` ack (QoS 1, as the agent)."""
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier="qa-agent", socket_options=NO_DELAY
    ) as agent:
        await agent.subscribe("shops/t/cash/events", qos=1)
        ready.set()
        async for m in agent.messages:
            event = json.loads(m.payload)  # type: ignore[arg-type]
            ack = {"event_id": event["event_id"], "status": "opened", "terminal_id": "T1"}
            await agent.publish("shops/t/cash/acks", json.dumps(ack), qos=1)


async def puback_modes(mosquitto, after_read, n=5):
    """The client's socket mode right after it read the broker's PUBACK of each event.

    Before each event the socket is put in delayed-ACK mode (TCP_QUICKACK 0, as after a
    send). No agent runs, so nothing else arrives or leaves before the read-back.
    """
    modes: list[int] = []
    async with Client(mosquitto.url, "t", client_id="qa-pos", after_read=after_read) as c:
        sock = paho_socket(c)
        for _ in range(n):
            sock.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 0)
            assert quickack(sock) == 0
            _, payload = c.prepare({"type": "sale", "terminal_id": "T1"})
            assert await c._send(c._topics["events"], payload, 5)  # returns on the PUBACK
            modes.append(quickack(sock))
    return modes


async def publish_events(mosquitto, after_read, n=5):
    """A real Client publishes n events and gets their acks; every seam call is recorded.

    Each call: its time, the mode read back right after it, the socket it ran on. Each
    window runs from just before a publish (socket put in delayed-ACK mode) to its ack.
    """
    calls: list[tuple[float, int, socket.socket]] = []
    windows: list[tuple[float, float]] = []

    def record(sock: socket.socket) -> None:
        after_read(sock)
        calls.append((time.monotonic(), quickack(sock), sock))

    ready = asyncio.Event()
    agent = asyncio.create_task(fake_agent(mosquitto.port, ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        async with Client(mosquitto.url, "t", client_id="qa-pos", after_read=record) as c:
            sock = paho_socket(c)
            for _ in range(n):
                sock.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 0)
                start = time.monotonic()
                ack = await c.publish({"type": "sale", "terminal_id": "T1"}, timeout_s=10)
                windows.append((start, time.monotonic()))
                assert ack.status == "opened"
            assert all(s is sock for _, _, s in calls)  # only ever the MQTT socket
    finally:
        agent.cancel()
        with pytest.raises(asyncio.CancelledError):
            await agent
    return windows, [(t, value) for t, value, _ in calls]


def first_in_each(windows, calls):
    """The mode read back after the first read in each window: the broker's PUBACK."""
    return [next((v for t, v in calls if lo < t <= hi), None) for lo, hi in windows]


async def test_after_reading_the_puback_the_socket_is_in_quick_ack_mode(mosquitto):
    assert await puback_modes(mosquitto, DEFAULT_AFTER_READ) == [1] * 5


async def test_the_rearm_runs_after_every_read_of_the_mqtt_socket(mosquitto):
    windows, calls = await publish_events(mosquitto, rearm_quickack)
    assert calls, "the seam never ran: aiomqtt no longer reads through paho's loop_read?"
    assert all(value == 1 for _, value in calls)
    assert first_in_each(windows, calls) == [1] * 5


async def test_negative_control_without_the_rearm_the_checks_fail(mosquitto):
    # Left in delayed-ACK mode by the read (unless its 40 ms delayed-ACK timer fired first).
    assert 0 in await puback_modes(mosquitto, None)
    # A seam that runs but does not re-arm: the PUBACK read leaves delayed-ACK mode on.
    windows, calls = await publish_events(mosquitto, lambda sock: None)
    assert calls
    assert 0 in first_in_each(windows, calls)
    assert not all(value == 1 for _, value in calls)


def test_rearm_sets_quick_ack_on_a_real_socket():
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()) as client,
    ):
        client.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 0)
        assert quickack(client) == 0  # negative control: the option reads back
        rearm_quickack(client)
        assert quickack(client) == 1


def test_the_default_is_the_rearm_on_linux():
    c = Client("mqtt://127.0.0.1:1", "t")
    expected = rearm_quickack if sys.platform == "linux" else None
    assert c.after_read is expected
    assert Client("mqtt://127.0.0.1:1", "t", after_read=None).after_read is None
