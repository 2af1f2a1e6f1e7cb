"""Raw TCP 9100 to one printer: connect, write, read, close (the only socket code for pulses).

Most LAN receipt printers accept a single 9100 session and answer a second one with a
reset (PROTOCOLS §3), so every exchange is short and the connection is always closed.
A pulse's Session drives its non-blocking socket directly; the status probes
(`exchange`) use asyncio streams, off the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

from agent.core.errors import PrinterUnreachable
from agent.core.status import asb_length

# Loop turns a kick with no status reply read before it waits for a reset (Session): the
# stream-based link gave a reset about that many while it set up its transport (6 were
# too few for asyncio's own accept-then-reset server in tests/integration/test_printer_link).
# Only for a kick with no reply read first: the pre-check (on by default) needs none.
RESET_TURNS = 10

ReadReply = Callable[[asyncio.StreamReader], Awaitable[bytes]]


class DeliveryUncertain(PrinterUnreachable):
    """Failed after the bytes were handed to the network: the pulse may have happened."""


@dataclass(frozen=True)
class Sent:
    """A completed write; `confirmed` when the printer answered the status request after it.

    With a pre-check, `status` is its reply (None: none in time) and `kicked` is False when
    the caller's decision was to write nothing (then `written_at` is when it decided).
    """

    written_at: float
    confirmed: bool = False
    reply: bytes = b""
    note: str = ""
    status: bytes | None = None
    kicked: bool = True


@dataclass(frozen=True)
class Confirm:
    """A real-time status request sent right after the kick, and how to read its reply."""

    request: bytes
    reply: int | ReadReply


@dataclass(frozen=True)
class Precheck:
    """A real-time status request sent before the kick on the same connection.

    With `send()`, `decide` gets its reply (None when none came within `timeout`) and
    returns the bytes to write: the kick, another form of it, or b"" for nothing. The policy
    is the caller's (agent.core.precheck); the link only carries it out.
    """

    request: bytes
    reply: int | ReadReply
    timeout: float
    # For `send()` only: a Session's caller decides between status() and kick() itself.
    decide: Callable[[bytes | None], bytes] | None = None


class Session:
    """One connection to a printer, opened by `connect()`: an optional status round trip,
    then one kick.

    Connecting and kicking are separate so that the caller can record "sending" in the
    ledger between them: nothing is written before the connection is up and the status
    read, and the ledger write overlaps nothing the printer must see first.

    The socket is driven directly rather than through an asyncio transport: a write is
    one send(2), and what the kernel already holds (the early status reply, a reset) is
    read at once instead of one loop turn later. Issue 12 trace, 50 ev/s: connect → status
    read took 0.54 ms through streams, most of it loop turns.
    """

    def __init__(
        self,
        host: str,
        port: int,
        sock: socket.socket,
        write_timeout: float,
        present: bytes = b"",
    ) -> None:
        self.host = host
        self.port = port
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._write_timeout = write_timeout
        # The status request an Early connection already sent: its reply is unread.
        self._present = present
        # A reply was read on this connection: the printer is known to be there.
        self._answered = False
        # Fed by pull(): at once when asked, and by the loop when the socket is readable.
        self._reader = asyncio.StreamReader()
        self._watching = True
        self._loop.add_reader(sock.fileno(), self.pull)

    def pull(self) -> None:
        """Move what the kernel holds into the reader: data, the end, or a reset."""
        if not self._watching:
            return
        while True:
            try:
                chunk = self._sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._unwatch()
                self._reader.set_exception(exc)
                return
            if not chunk:
                self._unwatch()
                self._reader.feed_eof()
                return
            self._reader.feed_data(chunk)

    def _unwatch(self) -> None:
        if self._watching:
            self._watching = False
            self._loop.remove_reader(self._sock.fileno())

    def close(self) -> None:
        """Close the socket, having read what came: unread bytes would turn the FIN into a
        reset, and a reset may discard what the printer has not read yet (RFC 9293 §3.10.7)."""
        self.pull()
        self._unwatch()
        self._sock.close()

    def _closed(self) -> bool:
        self.pull()
        return self._reader.at_eof() or self._reader.exception() is not None

    async def _still_open(self) -> None:
        # A printer that accepts and resets at once (a busy single-session NIC) has
        # usually closed by now: that is "not sent", so the caller may retry. With a status
        # reply read already, the printer is there and nothing is waited for; without one,
        # the reset gets the loop turns the stream-based link used to give it (its
        # transport's setup, its reader's first wake-up, one more).
        turns = 0 if self._answered else RESET_TURNS
        for _ in range(turns):
            if self._closed():
                break
            await asyncio.sleep(0)
        if self._closed():
            raise PrinterUnreachable(self.host, self.port, "closed the connection before the write")

    async def _send(self, data: bytes) -> None:
        try:
            written = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            written = 0
        if written < len(data):
            await self._loop.sock_sendall(self._sock, data[written:])

    async def status(self, precheck: Precheck) -> bytes | None:
        """The pre-check's status reply, None when none came in time; nothing that pulses.

        When the early connection sent (part of) this request already, only the rest is
        written and the reply is read as usual.
        """
        sent, self._present = self._present, b""
        if not precheck.request.startswith(sent):
            raise PrinterUnreachable(
                self.host, self.port, "another status request was sent on this connection"
            )
        self.pull()
        reply = await _precheck(self, precheck, already=len(sent))
        self._answered = self._answered or reply is not None
        return reply

    async def kick(self, payload: bytes, confirm: Confirm | None = None) -> Sent:
        """Write `payload`, optionally followed by a status request whose reply confirms it.

        Real-time status requests are answered on receipt (PROTOCOLS §2.1, §2.5), so a reply
        proves the printer read everything before it, the kick included. Raises
        PrinterUnreachable when the printer cannot have read the kick (safe to retry) and
        DeliveryUncertain when it may have (never retried: a drawer must not open twice).
        """
        host, port = self.host, self.port
        if self._present:
            # A reply still unread would be taken for the confirm's: never kick behind it.
            raise PrinterUnreachable(host, port, "the early status reply was not read")
        await self._still_open()
        written_at = time.time()
        try:
            async with asyncio.timeout(self._write_timeout):
                await self._send(payload + (confirm.request if confirm else b""))
        except (ConnectionResetError, BrokenPipeError) as exc:
            # A reset means the printer's socket closed with our bytes unread (a NIC that
            # is busy with another session aborts this way, PROTOCOLS §3): nothing pulsed.
            raise PrinterUnreachable(host, port, f"{_describe(exc)} before reading") from None
        except (TimeoutError, OSError) as exc:
            # The bytes may sit in the printer's buffer and still be read later.
            raise DeliveryUncertain(
                host, port, f"write did not complete: {_describe(exc)}"
            ) from None
        if confirm is None:
            return Sent(written_at=written_at)
        self.pull()
        return await _confirmation(
            host, port, self._reader, confirm, written_at, self._write_timeout
        )


class Early:
    """A connection whose SYN left before the ledger commits (issue 12: overlap).

    `start()` sends the SYN at once, without a loop turn, so the TCP handshake with the
    printer runs while the claim is committed; `connect(..., early=...)` finishes it.
    With a `request` (the pre-kick status request, issue 9), it is written as soon as the
    handshake ends, so the printer's reply is on its way while the claim commits too. A
    real-time status request prints nothing and never pulses (PROTOCOLS §2.1, §2.5);
    nothing else is written on it until then. `close()` when it is not used.
    """

    def __init__(self, host: str, port: int, sock: socket.socket, request: bytes = b"") -> None:
        self.host = host
        self.port = port
        self.sock = sock
        self.request = request
        # What of `request` is written already (all of it, or nothing yet).
        self.sent = b""
        # A connect error read from SO_ERROR while sending (reading SO_ERROR clears it).
        self._failed = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def start(cls, host: str, port: int, request: bytes = b"") -> Early | None:
        """Begin connecting to a numeric IP address; None when that cannot start now."""
        try:
            sock = _begin(host, port)
        except (OSError, ValueError):
            return None
        early = cls(host, port, sock, request)
        if request and not early._send_request():
            # Still connecting: send it from the loop the moment the socket is writable.
            early._loop = asyncio.get_running_loop()
            early._loop.add_writer(sock.fileno(), early._on_writable)
        return early

    def _send_request(self) -> bool:
        """Write the request if the handshake has ended; False while it is in progress."""
        outcome = self._outcome()
        if outcome is None:
            return False
        if outcome:
            self._failed = outcome  # finish() reports it
            return True
        try:
            written = self.sock.send(self.request)
        except OSError:
            return True  # the connection is broken: finish() or the read will say so
        self.sent = self.request[:written]
        return True

    def _on_writable(self) -> None:
        self._unwatch()
        self._send_request()

    def _unwatch(self) -> None:
        if self._loop is not None:
            self._loop.remove_writer(self.sock.fileno())
            self._loop = None

    def close(self) -> None:
        """Drop it unused (nothing was written, or only the status request)."""
        self._unwatch()
        self.sock.close()

    def _outcome(self) -> int | None:
        """The connect's result if it is known already (0: connected), else None.

        The handshake has usually ended while the claim committed: a failed one leaves its
        error in SO_ERROR (read once: reading clears it), an established one has a peer
        name (ENOTCONN while still in progress, connect(2)). Either way the loop turn spent
        waiting for "writable" is saved.
        """
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            return err
        try:
            self.sock.getpeername()
        except OSError:
            return None
        return 0

    async def _writable(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        writable: asyncio.Future[None] = loop.create_future()
        fd = self.sock.fileno()

        def ready() -> None:
            if not writable.done():
                writable.set_result(None)

        loop.add_writer(fd, ready)
        try:
            async with asyncio.timeout(timeout):
                await writable
        except TimeoutError:
            self.close()
            raise PrinterUnreachable(self.host, self.port, "connect timed out") from None
        finally:
            loop.remove_writer(fd)

    async def finish(self, timeout: float) -> socket.socket:
        """Wait for the handshake; the connected socket, or PrinterUnreachable (nothing sent)."""
        self._unwatch()
        err = self._failed or self._outcome()
        if err is None:
            await self._writable(timeout)
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.close()
            raise PrinterUnreachable(
                self.host, self.port, _describe(OSError(err, os.strerror(err)))
            )
        return self.sock


@contextlib.asynccontextmanager
async def connect(
    host: str,
    port: int,
    *,
    connect_timeout: float,
    write_timeout: float,
    early: Early | None = None,
) -> AsyncIterator[Session]:
    """`async with connect(...) as session:` a connection, closed when the block exits.

    With `early` (started for this host and port), its handshake is finished instead of a
    new connect. Raises PrinterUnreachable when no connection is made: nothing was sent.
    """
    present = b""
    if early is not None and (early.host, early.port) == (host, port):
        sock = await early.finish(connect_timeout)
        present = early.sent
    else:
        if early is not None:
            early.close()
        sock = await _open(host, port, connect_timeout)
    try:
        session = Session(host, port, sock, write_timeout, present)
    except BaseException:
        sock.close()
        raise
    try:
        yield session
    finally:
        session.close()


async def _open(host: str, port: int, timeout: float) -> socket.socket:
    """A connected non-blocking socket (TCP_NODELAY), or PrinterUnreachable."""
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        # A host name: resolved off the loop, then connected as a numeric address.
        try:
            async with asyncio.timeout(timeout):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
        except TimeoutError:
            raise PrinterUnreachable(host, port, "connect timed out") from None
        except OSError as exc:
            raise PrinterUnreachable(host, port, _describe(exc)) from None
        addresses = [str(info[4][0]) for info in infos]
    failure: OSError = OSError("no address to connect to")
    for address in addresses:
        try:
            sock = _begin(address, port)
        except OSError as exc:
            failure = exc
            continue
        return await Early(host, port, sock).finish(timeout)
    raise PrinterUnreachable(host, port, _describe(failure))


def _begin(host: str, port: int) -> socket.socket:
    """A non-blocking TCP_NODELAY socket whose SYN has left for a numeric address.

    Raises ValueError for a host name (connect() would resolve it, blocking the loop) and
    OSError when the connect failed at once.
    """
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex((host, port))
    except BaseException:
        sock.close()
        raise
    if err not in (0, errno.EINPROGRESS):
        sock.close()
        raise OSError(err, os.strerror(err))
    return sock


async def send(
    host: str,
    port: int,
    payload: bytes,
    *,
    connect_timeout: float,
    write_timeout: float,
    confirm: Confirm | None = None,
    precheck: Precheck | None = None,
) -> Sent:
    """Connect, write `payload` (see `Session.kick`), close.

    With `precheck`, its status request goes first and its `decide` replaces `payload`
    by what to write given the reply, all in one connection (see Precheck).
    """
    async with connect(
        host, port, connect_timeout=connect_timeout, write_timeout=write_timeout
    ) as session:
        status = None
        if precheck is not None:
            status = await session.status(precheck)
            payload = precheck.decide(status) if precheck.decide else payload
            if not payload:
                return Sent(written_at=time.time(), status=status, kicked=False)
        sent = await session.kick(payload, confirm)
        return replace(sent, status=status)


async def _precheck(session: Session, precheck: Precheck, already: int = 0) -> bytes | None:
    """Send the pre-check request (but its first `already` bytes) and read its reply; None
    when none came in time.

    Nothing but a status request has been written when this raises, so every failure
    here is PrinterUnreachable: safe to retry, no drawer can have opened.
    """
    host, port = session.host, session.port
    read = precheck.reply if callable(precheck.reply) else _exactly(precheck.reply)
    try:
        async with asyncio.timeout(precheck.timeout):
            if precheck.request[already:]:
                await session._send(precheck.request[already:])
            return await read(session._reader)
    except TimeoutError:
        return None
    except asyncio.IncompleteReadError:
        raise PrinterUnreachable(host, port, "closed before the status reply") from None
    except OSError as exc:
        raise PrinterUnreachable(host, port, f"{_describe(exc)} before the status reply") from None


async def _confirmation(
    host: str,
    port: int,
    reader: asyncio.StreamReader,
    confirm: Confirm,
    written_at: float,
    timeout: float,
) -> Sent:
    read = confirm.reply if callable(confirm.reply) else _exactly(confirm.reply)
    try:
        async with asyncio.timeout(timeout):
            reply = await read(reader)
    except ConnectionResetError:
        # Reset with no answer: the kernel discards unread bytes on reset, so the printer's
        # socket was closed with our kick unread (the accept-then-reset busy NIC, §3).
        raise PrinterUnreachable(
            host, port, "connection reset before the printer read the kick"
        ) from None
    except asyncio.IncompleteReadError:
        # A clean close (FIN) comes only after the printer read what we sent.
        return Sent(written_at, note="unconfirmed: the printer closed without a status reply")
    except (TimeoutError, OSError):
        return Sent(written_at, note="unconfirmed: no status reply after the kick")
    return Sent(written_at, confirmed=True, reply=reply)


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
    reader, writer = await _connect(host, port, timeout)
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


def read_up_to(count: int, rest_timeout: float) -> ReadReply:
    """Read one byte, then up to `count - 1` more that arrive within `rest_timeout`.

    For `DLE EOT` requests sent together: every ESC/POS printer answers n = 1, some clones
    never answer the others, and waiting for them would stall the kick.
    """

    async def read(reader: asyncio.StreamReader) -> bytes:
        reply = await reader.readexactly(1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(rest_timeout):
                while len(reply) < count and (chunk := await reader.read(count - len(reply))):
                    reply += chunk
        return reply

    return read


async def read_asb(reader: asyncio.StreamReader) -> bytes:
    """Read one Star ASB: header 1 announces its length (PROTOCOLS §2.5)."""
    header = await reader.readexactly(1)
    return header + await reader.readexactly(max(0, asb_length(header[0]) - 1))


async def _connect(
    host: str, port: int, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.open_connection(host, port)
    except TimeoutError:
        raise PrinterUnreachable(host, port, "connect timed out") from None
    except OSError as exc:
        raise PrinterUnreachable(host, port, _describe(exc)) from None


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
