"""The aiomqtt adapter never leaves paho's socket callbacks on a file descriptor it gave up.

After a broker kill the number of paho's closed socket is handed to the next socket the
agent opens, typically a printer connection; a callback left on it hijacks that socket.
"""

import asyncio
import socket

from agent.core.settings import validate
from agent.io.mqtt_link import MqttLink


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
        await asyncio.sleep(0)  # let the deferred call run
        await asyncio.sleep(0)
        assert not has_writer(loop, printer_side.fileno())
        # Anything else still goes through.
        ran = asyncio.Event()
        client._loop.call_soon_threadsafe(ran.set)
        await asyncio.wait_for(ran.wait(), 1)
    finally:
        printer_side.close()
        other.close()
