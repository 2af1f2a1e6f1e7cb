"""Raw TCP 9100 to one printer: connect, write, drain, close (the only socket code for pulses).

Most LAN receipt printers accept a single 9100 session and answer a second one with a
reset (PROTOCOLS §3), so every exchange is short and the connection is always closed.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agent.errors import PrinterUnreachable

ReadReply = Callable[[asyncio.StreamReader], Awaitable[bytes]]


class DeliveryUncertain(PrinterUnreachable):
    """Failed after the bytes were handed to the network: the pulse may have happened."""


@dataclass(frozen=True)
class Sent:
    """A completed write."""

    written_at: float
    reply: bytes = b""


async def send(
    host: str,
    port: int,
    payload: bytes,
    *,
    connect_timeout: float,
    write_timeout: float,
    read_reply: int = 0,
    reply_timeout: float = 0.3,
) -> Sent:
    """Write `payload` and close; optionally read `read_reply` bytes of status reply first.

    Raises PrinterUnreachable when nothing was written (safe to retry) and
    DeliveryUncertain when the failure came after the write (never retry that: a drawer
    must not open twice for one event).
    """
    try:
        async with asyncio.timeout(connect_timeout):
            reader, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        raise PrinterUnreachable(host, port, "connect timed out") from None
    except OSError as exc:
        raise PrinterUnreachable(host, port, _describe(exc)) from None
    reply = b""
    try:
        # A printer that accepts and resets at once (a busy single-session NIC) has
        # already closed by now: that is "not sent", so the caller may retry.
        await asyncio.sleep(0)
        if writer.transport.is_closing() or reader.at_eof():
            raise PrinterUnreachable(host, port, "closed the connection before the write")
        _no_delay(writer)
        writer.write(payload)
        written_at = time.time()
        try:
            async with asyncio.timeout(write_timeout):
                await writer.drain()
        except (ConnectionResetError, BrokenPipeError) as exc:
            # A reset means the printer's socket closed with our bytes unread (a NIC that
            # is busy with another session aborts this way, PROTOCOLS §3): nothing pulsed.
            raise PrinterUnreachable(host, port, f"{_describe(exc)} before reading") from None
        except (TimeoutError, OSError) as exc:
            # The bytes may sit in the printer's buffer and still be read later.
            raise DeliveryUncertain(
                host, port, f"write did not complete: {_describe(exc)}"
            ) from None
        if read_reply:
            try:
                async with asyncio.timeout(reply_timeout):
                    reply = await reader.readexactly(read_reply)
            except (TimeoutError, asyncio.IncompleteReadError, OSError):
                reply = b""
        return Sent(written_at=written_at, reply=reply)
    finally:
        await _close(writer, write_timeout)


async def exchange(
    host: str,
    port: int,
    request: bytes,
    reply: int | ReadReply,
    *,
    timeout: float,
) -> bytes:
    """Send a status request and read the reply (`reply` bytes, or as `reply` reads it).

    For probes: the caller sends only requests that print nothing and never pulse.
    """
    read: ReadReply = reply if callable(reply) else _exactly(reply)
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        raise PrinterUnreachable(host, port, "connect timed out") from None
    except OSError as exc:
        raise PrinterUnreachable(host, port, _describe(exc)) from None
    try:
        _no_delay(writer)
        writer.write(request)
        async with asyncio.timeout(timeout):
            await writer.drain()
            return await read(reader)
    except TimeoutError:
        raise PrinterUnreachable(host, port, "no status reply") from None
    except asyncio.IncompleteReadError as exc:
        raise PrinterUnreachable(
            host, port, f"short status reply ({len(exc.partial)} bytes)"
        ) from None
    except OSError as exc:
        raise PrinterUnreachable(host, port, _describe(exc)) from None
    finally:
        await _close(writer, timeout)


def _exactly(size: int) -> ReadReply:
    async def read(reader: asyncio.StreamReader) -> bytes:
        return await reader.readexactly(size)

    return read


async def _close(writer: asyncio.StreamWriter, timeout: float) -> None:
    writer.close()
    try:
        async with asyncio.timeout(timeout):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        # The bytes are already with the kernel; a peer that resets on close changes nothing.
        pass


def _no_delay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (printer busy or port closed)"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
