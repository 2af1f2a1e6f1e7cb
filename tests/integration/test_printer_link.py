"""Raw TCP 9100 against real sockets: refused, reset, silent, hanging, healthy."""

import asyncio
import select
import socket
import struct

import pytest

from agent.core.commands import CommandSet, drawer_kick
from agent.core.errors import PrinterUnreachable
from agent.devtools.emulator import Behaviour, VirtualPrinterServer
from agent.io import printer_link
from tests.conftest import free_port

KICK = drawer_kick(CommandSet.ESCPOS, 1, 100, 500)


async def test_send_reaches_the_virtual_printer():
    async with VirtualPrinterServer() as vp:
        sent = await printer_link.send(
            "127.0.0.1", vp.port, KICK, connect_timeout=1, write_timeout=1
        )
        pulses = await vp.wait_for_pulses(1)
    assert pulses[0].drawer == 1
    assert sent.written_at <= pulses[0].at


async def test_refused_is_retryable():
    with pytest.raises(PrinterUnreachable, match="refused") as info:
        await printer_link.send("127.0.0.1", free_port(), KICK, connect_timeout=1, write_timeout=1)
    assert not isinstance(info.value, printer_link.DeliveryUncertain)


async def test_reset_on_accept_is_retryable_and_pulses_nothing():
    async with VirtualPrinterServer(behaviour=Behaviour.RESET) as vp:
        with pytest.raises(PrinterUnreachable) as info:
            await printer_link.send("127.0.0.1", vp.port, KICK, connect_timeout=1, write_timeout=1)
        assert not isinstance(info.value, printer_link.DeliveryUncertain)
        assert vp.pulses == []


async def test_second_session_is_reset_like_a_single_session_nic():
    async with VirtualPrinterServer(behaviour=Behaviour.NORMAL, max_sessions=1) as vp:
        reader_writer = await __import__("asyncio").open_connection("127.0.0.1", vp.port)
        try:
            with pytest.raises(PrinterUnreachable):
                await printer_link.send(
                    "127.0.0.1", vp.port, KICK, connect_timeout=1, write_timeout=1
                )
        finally:
            reader_writer[1].close()
        assert vp.pulses == []


async def test_hanging_connect_times_out(hanging_port):
    with pytest.raises(PrinterUnreachable, match="connect timed out"):
        await printer_link.send(
            "127.0.0.1", hanging_port.port, KICK, connect_timeout=0.2, write_timeout=0.2
        )


async def test_status_exchange_reads_the_drawer_sensor():
    async with VirtualPrinterServer(open_for_s=5) as vp:
        closed = await printer_link.exchange("127.0.0.1", vp.port, b"\x10\x04\x01", 1, timeout=1)
        await printer_link.send("127.0.0.1", vp.port, KICK, connect_timeout=1, write_timeout=1)
        await vp.wait_for_pulses(1)
        opened = await printer_link.exchange("127.0.0.1", vp.port, b"\x10\x04\x01", 1, timeout=1)
    assert closed[0] & 0x04 == 0x04  # pin 3 HIGH: closed
    assert opened[0] & 0x04 == 0


async def test_silent_printer_gives_no_status_reply():
    async with VirtualPrinterServer(behaviour=Behaviour.SILENT) as vp:
        with pytest.raises(PrinterUnreachable, match="no status reply"):
            await printer_link.exchange("127.0.0.1", vp.port, b"\x10\x04\x01", 1, timeout=0.2)


ESCPOS_CONFIRM = printer_link.Confirm(b"\x10\x04\x01", 1)


async def test_confirmed_kick_reads_the_status_reply():
    async with VirtualPrinterServer() as vp:
        sent = await printer_link.send(
            "127.0.0.1", vp.port, KICK, connect_timeout=1, write_timeout=1, confirm=ESCPOS_CONFIRM
        )
    assert sent.confirmed
    assert len(sent.reply) == 1
    assert len(vp.pulses) == 1


def peek(conn: socket.socket, size: int) -> bytes:
    """What a non-blocking socket has received, left in its buffer."""
    try:
        return conn.recv(size, socket.MSG_PEEK)
    except BlockingIOError:
        return b""


async def test_reset_after_the_write_before_any_reply_is_retryable():
    loop = asyncio.get_running_loop()
    expected = KICK + ESCPOS_CONFIRM.request

    async def busy(listener: socket.socket) -> None:
        """A busy NIC: takes the connection, leaves our bytes unread, then aborts (RST)."""
        conn, _ = await loop.sock_accept(listener)
        with conn:
            # Wait until the kick and the status request are in the kernel buffer, unread.
            while len(peek(conn, len(expected))) < len(expected):
                readable = loop.create_future()
                loop.add_reader(conn, lambda: readable.done() or readable.set_result(None))
                try:
                    await readable
                finally:
                    loop.remove_reader(conn)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        printer = asyncio.create_task(busy(listener))
        with pytest.raises(PrinterUnreachable, match="reset before the printer read") as info:
            await printer_link.send(
                "127.0.0.1",
                listener.getsockname()[1],
                KICK,
                connect_timeout=1,
                write_timeout=1,
                confirm=ESCPOS_CONFIRM,
            )
        await printer
    assert not isinstance(info.value, printer_link.DeliveryUncertain)


async def test_silent_or_closing_printer_is_opened_but_unconfirmed():
    async def reads_and_closes(reader, writer):
        await reader.read(100)
        writer.close()

    server = await asyncio.start_server(reads_and_closes, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        closed = await printer_link.send(
            "127.0.0.1", port, KICK, connect_timeout=1, write_timeout=1, confirm=ESCPOS_CONFIRM
        )
    finally:
        server.close()
        await server.wait_closed()
    async with VirtualPrinterServer(behaviour=Behaviour.SILENT) as vp:
        silent = await printer_link.send(
            "127.0.0.1", vp.port, KICK, connect_timeout=1, write_timeout=0.2, confirm=ESCPOS_CONFIRM
        )
    assert not closed.confirmed
    assert "closed without a status reply" in closed.note
    assert not silent.confirmed
    assert "no status reply" in silent.note


async def test_close_reads_what_came_first_so_the_printer_sees_a_fin_not_a_reset():
    """Unread bytes at close(2) turn the FIN into a reset (RFC 9293 §3.10.7), and a reset
    may discard what the printer has not read yet: the link reads them before it closes."""
    loop = asyncio.get_running_loop()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.setblocking(False)
    port = listener.getsockname()[1]

    async def printer_side(sock: socket.socket) -> bytes | str:
        data = b""
        try:
            while chunk := await asyncio.wait_for(loop.sock_recv(sock, 64), 5):
                data += chunk
        except ConnectionResetError:
            return "reset"
        return data

    try:
        # Negative control: a plain socket closed with a byte unread resets the printer.
        plain = socket.create_connection(("127.0.0.1", port))
        conn, _ = await asyncio.wait_for(loop.sock_accept(listener), 5)
        with conn:
            conn.sendall(b"\x23")  # e.g. an unsolicited status byte
            assert select.select([plain], [], [], 5)[0]  # it has landed, unread
            plain.close()
            assert await printer_side(conn) == "reset"
        # The link: the same unsolicited byte, a kick, and a clean close.
        early = printer_link.Early.start("127.0.0.1", port)
        assert early is not None
        conn, _ = await asyncio.wait_for(loop.sock_accept(listener), 5)
        with conn:
            conn.sendall(b"\x23")
            assert select.select([early.sock], [], [], 5)[0]  # it has landed
            async with printer_link.connect(
                "127.0.0.1", port, connect_timeout=1, write_timeout=1, early=early
            ) as session:
                await session.kick(KICK)
            assert await printer_side(conn) == KICK
    finally:
        listener.close()
