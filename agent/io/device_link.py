"""Printers on a character device: usblp (`/dev/usb/lp*`) and ttys (serial, USB-serial, rfcomm).

The same exchanges as printer_link (pre-check, kick, confirm; status probes) and the same
result types, over a file descriptor instead of a socket. ttys are opened with pyserial,
which puts them in termios raw mode (8N1, no echo, no output processing) at the configured
baud rate and flow control; usblp devices with a plain non-blocking `os.open`.

Failure classes, as for TCP:
- the device cannot be opened, is missing or vanishes (ENOENT, ENODEV, ENXIO, EIO: it was
  unplugged, or the Bluetooth peer is out of range) and nothing of the kick was written:
  PrinterUnreachable, retried until the deadline;
- a write that does not complete in `write_timeout` (the printer paused it: RTS/CTS or
  XOFF held, a usblp transfer not taken): DeliveryUncertain, never retried. The bytes still
  queued in the kernel are discarded first (tcflush, or closing the usblp device, which
  cancels its pending transfer), so they cannot reach the printer later and open the
  drawer late.

usblp facts are from drivers/usb/class/usblp.c: a second open gets EBUSY (`usblp_open`);
`read` is EINVAL unless the printer is bidirectional (`usblp_read`); a non-blocking writer
must wait for poll() writable to know its transfer completed (comment above `usblp_wwait`,
`usblp_poll`); closing kills the pending transfer (`usblp_release`, `usblp_unlink_urbs`).

The device is opened for each exchange and closed after it unless `keep_open`: a device
held open is busy for every other program (usblp allows one open at a time), and opening
an rfcomm tty connects to the Bluetooth printer, which can take seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
import termios
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future
from dataclasses import replace

import serial

from agent.core.errors import PrinterUnreachable
from agent.core.settings import PrinterSettings
from agent.core.transport import DeviceKind, device_kind
from agent.io.printer_link import (
    Confirm,
    DeliveryUncertain,
    Precheck,
    ReadReply,
    Sent,
)

# Errors that mean "the printer is not there (now)": retry until the deadline.
GONE = {errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.EIO, errno.EHOSTDOWN, errno.ECONNREFUSED}
# Bluetooth rfcomm: the peer refused or is out of range when the tty connects on open.
BUSY = {errno.EBUSY, errno.EWOULDBLOCK, errno.EAGAIN}
FLOW = {"none": {}, "rtscts": {"rtscts": True}, "xonxoff": {"xonxoff": True}}


class _Stalled(Exception):
    """A write did not complete before its deadline; `written` bytes were accepted."""

    def __init__(self, written: int) -> None:
        super().__init__(written)
        self.written = written


class _WriteFailed(Exception):
    """A write failed with an OS error after `written` bytes."""

    def __init__(self, exc: OSError, written: int) -> None:
        super().__init__(exc)
        self.exc = exc
        self.written = written


class _Device:
    """One open device: its fd, a StreamReader fed from it, and waits for writability."""

    def __init__(self, path: str, kind: DeviceKind, fd: int, port: serial.Serial | None) -> None:
        self.path = path
        self.kind = kind
        self.fd = fd
        self._port = port
        self._loop = asyncio.get_running_loop()
        self.broken: OSError | None = None
        self.reader = asyncio.StreamReader()
        self._reading = True
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._stop_reading()
            if exc.errno in (errno.EINVAL, errno.EBADF):
                # usblp refuses reads from a printer without the bidirectional protocol:
                # no status can come back, which the caller sees as "no reply in time".
                return
            self.broken = exc
            self.reader.set_exception(exc)
            return
        if data:
            self.reader.feed_data(data)
        else:
            # End of file on a tty: the other side hung up (the printer is gone).
            self._stop_reading()
            self.broken = OSError(errno.EIO, "device hung up")
            self.reader.feed_eof()

    def _stop_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self.fd)
            self._reading = False

    def fresh_reader(self) -> asyncio.StreamReader:
        """Drop input left from before (late replies, XON/XOFF): this exchange starts clean."""
        if self.kind is DeviceKind.TTY:
            with contextlib.suppress(termios.error, OSError):
                termios.tcflush(self.fd, termios.TCIFLUSH)
        if self.broken is None:
            self.reader = asyncio.StreamReader()
        return self.reader

    async def write(self, data: bytes, deadline: float) -> None:
        """Write all of `data` and wait until the device took it, by `deadline` (monotonic).

        Raises _Stalled when it did not (the printer is not reading) and _WriteFailed on an
        OS error, each with how many bytes the kernel accepted.
        """
        view = memoryview(data)
        written = 0
        while written < len(data):
            try:
                written += os.write(self.fd, view[written:])
            except (BlockingIOError, InterruptedError):
                if not await self._writable(deadline):
                    raise _Stalled(written) from None
            except OSError as exc:
                raise _WriteFailed(exc, written) from None
        if not await self._sent(deadline):
            raise _Stalled(written)

    async def _writable(self, deadline: float) -> bool:
        ready: asyncio.Future[None] = self._loop.create_future()

        def on_writable() -> None:
            if not ready.done():
                ready.set_result(None)

        self._loop.add_writer(self.fd, on_writable)
        try:
            async with asyncio.timeout_at(
                self._loop.time() + max(0.0, deadline - time.monotonic())
            ):
                await ready
        except TimeoutError:
            return False
        else:
            return True
        finally:
            self._loop.remove_writer(self.fd)

    async def _sent(self, deadline: float) -> bool:
        """True once the bytes left the kernel for the printer."""
        if self.kind is DeviceKind.USBLP:
            # usblp polls writable again once its write transfer completed (or the
            # printer reports paper out): until then the kick is only queued.
            return await self._writable(deadline)
        # A tty queues output the printer has not taken (CTS low, XOFF): tcdrain waits
        # until it has left the UART. It blocks, so it runs in a thread; discard_output()
        # releases it on a timeout.
        drained = self._loop.run_in_executor(None, termios.tcdrain, self.fd)
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await asyncio.shield(drained)
        except TimeoutError:
            return False
        except (termios.error, OSError):
            return True  # not a real UART (a pty): written is sent
        return True

    def discard_output(self) -> None:
        """Throw away output still queued in the kernel, so it can never reach the printer."""
        if self.kind is DeviceKind.TTY:
            with contextlib.suppress(termios.error, OSError):
                termios.tcflush(self.fd, termios.TCOFLUSH)

    def close(self) -> None:
        """Close the device (for usblp this also cancels a pending write transfer)."""
        self._stop_reading()
        with contextlib.suppress(OSError):
            self._loop.remove_writer(self.fd)
        if self._port is not None:
            with contextlib.suppress(OSError, serial.SerialException):
                self._port.close()
        else:
            with contextlib.suppress(OSError):
                os.close(self.fd)


class DeviceSession:
    """One open device, from `DeviceLink.connect()`: a status round trip, then one kick."""

    def __init__(
        self,
        link: DeviceLink,
        device: _Device,
        reader: asyncio.StreamReader,
        write_timeout: float,
    ) -> None:
        self._link = link
        self._device = device
        self._reader = reader
        self._write_timeout = write_timeout

    async def status(self, precheck: Precheck) -> bytes | None:
        """The pre-check's status reply, None when none came in time; nothing that pulses."""
        return await self._link._precheck(self._device, self._reader, precheck)

    async def kick(self, payload: bytes, confirm: Confirm | None = None) -> Sent:
        """As printer_link.Session.kick, with the device's failure classes (module doc)."""
        data = payload + (confirm.request if confirm else b"")
        written_at = time.time()
        await self._link._write_kick(self._device, data, self._write_timeout)
        if confirm is None:
            return Sent(written_at=written_at)
        return await self._link._confirmation(
            self._reader, confirm, written_at, self._write_timeout
        )


class DeviceLink:
    """One printer on a character device; the dispatcher and the prober share it (under the
    printer's lock, so one exchange at a time)."""

    def __init__(
        self,
        path: str,
        *,
        baudrate: int = 9600,
        flow_control: str = "none",
        keep_open: bool = False,
        kind: DeviceKind | None = None,
    ) -> None:
        self.path = path
        self._kind = kind
        self.baudrate = baudrate
        self.flow_control = flow_control
        self.keep_open = keep_open
        self._device: _Device | None = None
        self.opens = 0

    @property
    def kind(self) -> DeviceKind:
        """usblp or tty: from the node's device number when it exists, else from its name."""
        if self._kind is not None:
            return self._kind
        try:
            st = os.stat(self.path)
        except OSError:
            return device_kind(os.path.realpath(self.path))
        if not stat.S_ISCHR(st.st_mode):
            return device_kind(os.path.realpath(self.path))
        return device_kind(self.path, major=os.major(st.st_rdev), minor=os.minor(st.st_rdev))

    @contextlib.asynccontextmanager
    async def connect(
        self, *, connect_timeout: float, write_timeout: float
    ) -> AsyncIterator[DeviceSession]:
        """`async with link.connect(...) as session:` as printer_link.connect, on the device.

        The device is closed when the block exits, unless `keep_open` and nothing failed.
        """
        device = await self._open(connect_timeout)
        healthy = False
        try:
            yield DeviceSession(self, device, device.fresh_reader(), write_timeout)
            healthy = True
        finally:
            self._release(device, healthy)

    async def send(
        self,
        payload: bytes,
        *,
        connect_timeout: float,
        write_timeout: float,
        confirm: Confirm | None = None,
        precheck: Precheck | None = None,
    ) -> Sent:
        """As printer_link.send: optional pre-check, the kick, optional confirm."""
        async with self.connect(
            connect_timeout=connect_timeout, write_timeout=write_timeout
        ) as session:
            status = None
            if precheck is not None:
                status = await session.status(precheck)
                payload = precheck.decide(status) if precheck.decide else payload
                if not payload:
                    return Sent(written_at=time.time(), status=status, kicked=False)
            sent = await session.kick(payload, confirm)
            return replace(sent, status=status)

    async def exchange(self, request: bytes, reply: int | ReadReply, *, timeout: float) -> bytes:
        """As printer_link.exchange: a status request that prints nothing, and its reply."""
        read = reply if callable(reply) else _exactly(reply)
        device = await self._open(timeout)
        keep = False
        try:
            reader = device.fresh_reader()
            deadline = time.monotonic() + timeout
            try:
                await device.write(request, deadline)
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    answer = await read(reader)
            except _Stalled:
                device.discard_output()
                raise self._unreachable("not reading (paused or stalled)") from None
            except _WriteFailed as exc:
                raise self._unreachable(_describe(exc.exc)) from None
            except TimeoutError:
                raise self._unreachable("no status reply") from None
            except asyncio.IncompleteReadError as exc:
                raise self._unreachable(
                    f"short status reply ({len(exc.partial)} bytes)"
                    if exc.partial
                    else "device hung up"
                ) from None
            except OSError as exc:
                raise self._unreachable(_describe(exc)) from None
            keep = True
            return answer
        finally:
            self._release(device, keep)

    async def close(self) -> None:
        """Close a device held open by keep_open."""
        self.close_now()

    def close_now(self) -> None:
        """Close a device held open by keep_open (synchronous: nothing to wait for)."""
        if self._device is not None:
            self._device.close()
            self._device = None

    async def _precheck(
        self, device: _Device, reader: asyncio.StreamReader, precheck: Precheck
    ) -> bytes | None:
        read = precheck.reply if callable(precheck.reply) else _exactly(precheck.reply)
        deadline = time.monotonic() + precheck.timeout
        try:
            await device.write(precheck.request, deadline)
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                return await read(reader)
        except (TimeoutError, _Stalled):
            # A printer that does not read or answer now would also hold the kick:
            # the caller decides on "no reply"; the status request is discarded.
            device.discard_output()
            return None
        except _WriteFailed as exc:
            raise self._unreachable(f"{_describe(exc.exc)} before the status reply") from None
        except asyncio.IncompleteReadError:
            raise self._unreachable("device hung up before the status reply") from None
        except OSError as exc:
            raise self._unreachable(f"{_describe(exc)} before the status reply") from None

    async def _write_kick(self, device: _Device, data: bytes, write_timeout: float) -> None:
        try:
            await device.write(data, time.monotonic() + write_timeout)
        except _Stalled as exc:
            device.discard_output()
            raise DeliveryUncertain(
                self.path,
                0,
                f"write blocked after {exc.written} of {len(data)} bytes (printer paused or "
                "not reading); the rest was discarded",
            ) from None
        except _WriteFailed as exc:
            if exc.written == 0 and exc.exc.errno in GONE:
                # Nothing of the kick reached the kernel: the printer cannot have it.
                raise self._unreachable(_describe(exc.exc)) from None
            raise DeliveryUncertain(
                self.path,
                0,
                f"write failed after {exc.written} of {len(data)} bytes: {_describe(exc.exc)}",
            ) from None

    async def _confirmation(
        self,
        reader: asyncio.StreamReader,
        confirm: Confirm,
        written_at: float,
        timeout: float,
    ) -> Sent:
        read = confirm.reply if callable(confirm.reply) else _exactly(confirm.reply)
        try:
            async with asyncio.timeout(timeout):
                reply = await read(reader)
        except TimeoutError:
            return Sent(written_at, note="unconfirmed: no status reply after the kick")
        except (asyncio.IncompleteReadError, OSError):
            # The kick left the kernel (drained) before the device went away.
            return Sent(written_at, note="unconfirmed: the device went away after the kick")
        return Sent(written_at, confirmed=True, reply=reply)

    async def _open(self, timeout: float) -> _Device:
        if self._device is not None:
            if self._device.broken is None:
                return self._device
            self._device.close()
            self._device = None
        kind = self.kind
        if kind is DeviceKind.USBLP:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                raise self._unreachable(_describe(exc)) from None
            device = _Device(self.path, kind, fd, None)
        else:
            port = await self._open_tty(timeout)
            device = _Device(self.path, kind, port.fileno(), port)
        self.opens += 1
        if self.keep_open:
            self._device = device
        return device

    async def _open_tty(self, timeout: float) -> serial.Serial:
        """pyserial's open in a thread: an rfcomm tty connects on open, which can take seconds."""
        loop = asyncio.get_running_loop()
        opening: asyncio.Future[serial.Serial] = loop.run_in_executor(None, self._serial)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(opening)
        except TimeoutError:
            # The thread may still open it: close it then, never leak the descriptor.
            opening.add_done_callback(_close_when_opened)
            raise self._unreachable("open timed out (Bluetooth printer out of range?)") from None
        except serial.SerialException as exc:
            raise self._unreachable(_describe_serial(exc)) from None

    def _serial(self) -> serial.Serial:
        return serial.Serial(
            port=self.path,
            baudrate=self.baudrate,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
            timeout=0,
            write_timeout=0,
            # flock: a second program (or agent) opening the same tty is refused, not mixed.
            exclusive=True,
            **FLOW[self.flow_control],
        )

    def _release(self, device: _Device, healthy: bool) -> None:
        if self.keep_open and healthy and device.broken is None:
            return
        device.close()
        if self._device is device:
            self._device = None

    def _unreachable(self, reason: str) -> PrinterUnreachable:
        return PrinterUnreachable(self.path, 0, reason)


def _close_when_opened(opening: Future[serial.Serial] | asyncio.Future[serial.Serial]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        with contextlib.suppress(OSError, serial.SerialException):
            opening.result().close()


def _exactly(size: int) -> ReadReply:
    async def read(reader: asyncio.StreamReader) -> bytes:
        return await reader.readexactly(size)

    return read


def _describe(exc: OSError) -> str:
    code = exc.errno
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return "device not present (unplugged?)"
    if code == errno.EIO:
        return "device I/O error (unplugged?)"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied (the agent's user needs the device's group: lp or dialout)"
    if code in BUSY:
        return "device busy (another program has it open)"
    if code in (errno.EHOSTDOWN, errno.ECONNREFUSED):
        return "Bluetooth printer not reachable"
    return (exc.strerror or str(exc)).lower()


def _describe_serial(exc: serial.SerialException) -> str:
    code = getattr(exc, "errno", None)
    if isinstance(code, int):
        return _describe(OSError(code, os.strerror(code)))
    return f"not a usable tty: {exc}"


class DeviceLinks:
    """The device link of each printer on a character device, shared by dispatcher and prober.

    Created on first use from the printer's settings (the mapping may change while the agent
    runs); a printer whose device settings changed gets a new link, the old one is closed.
    """

    def __init__(self) -> None:
        self._links: dict[str, tuple[tuple[object, ...], DeviceLink]] = {}

    def for_printer(self, printer: PrinterSettings) -> DeviceLink | None:
        """The link for this printer, None when it is reached over TCP."""
        if printer.device is None:
            return None
        key = (printer.device, printer.baudrate, printer.flow_control, printer.keep_open)
        known = self._links.get(printer.id)
        if known is not None and known[0] == key:
            return known[1]
        if known is not None:
            known[1].close_now()
        link = DeviceLink(
            printer.device,
            baudrate=printer.baudrate,
            flow_control=printer.flow_control,
            keep_open=printer.keep_open,
        )
        self._links[printer.id] = (key, link)
        return link

    async def close(self) -> None:
        """Close every device held open (keep_open), e.g. at shutdown."""
        for _, link in self._links.values():
            await link.close()
