"""`drawer-agent emulate`: a virtual printer on TCP, for the demo, docker compose and tests."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import socket
import struct
import time
import tty

from agent.devtools.emulation import ESCPOS, Pulse, VirtualPrinter

log = logging.getLogger(__name__)


class Behaviour(enum.StrEnum):
    """How the virtual printer treats a connection."""

    NORMAL = "normal"
    RESET = "reset"  # accept, then reset at once (a busy NIC)
    SILENT = "silent"  # accept, never read (a wedged printer)


class VirtualPrinterServer:
    """`async with VirtualPrinterServer(...) as vp:` listens until the block exits."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        command_set: str = ESCPOS,
        *,
        max_sessions: int = 1,
        open_for_s: float = 3.0,
        behaviour: Behaviour = Behaviour.NORMAL,
        name: str = "virtual",
        sensor_high_when_open: bool | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.max_sessions = max_sessions
        self.behaviour = behaviour
        self.name = name
        self.printer = VirtualPrinter(
            str(command_set), open_for_s=open_for_s, sensor_high_when_open=sensor_high_when_open
        )
        if command_set != ESCPOS:
            self.printer.vendor, self.printer.model = "STAR", "TSP654II (STR_T-001)"
        self.connections = 0
        self._sessions = 0
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Condition()
        self._held: set[asyncio.StreamWriter] = set()

    @property
    def pulses(self) -> list[Pulse]:
        """Every pulse so far."""
        return self.printer.pulses

    async def __aenter__(self) -> VirtualPrinterServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen (again) on host:port; after the first start the port stays the same."""
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "virtual %s printer %s listening on %s:%d",
            self.printer.command_set,
            self.name,
            self.host,
            self.port,
        )

    async def stop(self) -> None:
        """Stop listening and drop every connection (the printer goes down)."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._held):
            _reset(writer)
        self._held.clear()
        await self._server.wait_closed()
        self._server = None

    async def set_state(self, **state: object) -> None:
        """Change the printer's state (online, cover_open, paper, error); see VirtualPrinter.

        Back online it runs what waited in its buffer: late pulses, and replies written to
        the open session if there is one.
        """
        before = len(self.pulses)
        reply = self.printer.set_state(time.time(), **state)  # type: ignore[arg-type]
        for writer in list(self._held):
            if reply and not writer.is_closing():
                writer.write(reply)
        if len(self.pulses) > before:
            async with self._changed:
                self._changed.notify_all()

    async def wait_for_pulses(self, count: int, timeout: float = 5.0) -> list[Pulse]:
        """Wait until at least `count` pulses arrived; TimeoutError otherwise."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.pulses) >= count)
        return list(self.pulses)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.behaviour is Behaviour.RESET or self._sessions >= self.max_sessions:
            # Single-session NICs answer a second client with a reset (PROTOCOLS §3).
            _reset(writer)
            return
        if self.behaviour is Behaviour.SILENT:
            self._held.add(writer)
            return
        self._sessions += 1
        self._held.add(writer)
        try:
            while data := await reader.read(4096):
                before = len(self.pulses)
                reply = self.printer.feed(data, time.time())
                for pulse in self.pulses[before:]:
                    log.info(
                        "%s: drawer %d pulse %d/%d ms%s",
                        self.name,
                        pulse.drawer,
                        pulse.on_ms,
                        pulse.off_ms,
                        " (real-time)" if pulse.realtime else "",
                    )
                if reply:
                    writer.write(reply)
                    await writer.drain()
                if len(self.pulses) > before:
                    async with self._changed:
                        self._changed.notify_all()
        except (ConnectionError, OSError):
            pass
        finally:
            self._sessions -= 1
            self._held.discard(writer)
            writer.close()


class PtyPrinter:
    """A virtual printer on the master side of a kernel pty; the agent opens `path`.

    `async with PtyPrinter(...) as vp:` The slave side is a real tty (/dev/pts/N), so the
    agent's device transport runs exactly as on a USB-serial or rfcomm port. `pause()`
    stops reading (a printer that holds its input: the pty buffer fills and writes block),
    `unplug()` closes the master (the tty goes away: EIO, then the path is gone).
    """

    def __init__(
        self,
        command_set: str = ESCPOS,
        *,
        open_for_s: float = 3.0,
        name: str = "pty",
        sensor_high_when_open: bool | None = None,
    ) -> None:
        self.name = name
        self.printer = VirtualPrinter(
            str(command_set), open_for_s=open_for_s, sensor_high_when_open=sensor_high_when_open
        )
        if command_set != ESCPOS:
            self.printer.vendor, self.printer.model = "STAR", "mPOP"
        self.path = ""
        self.received = bytearray()
        self._master = -1
        self._slave = -1
        self._reading = False
        self._changed = asyncio.Condition()

    @property
    def pulses(self) -> list[Pulse]:
        """Every pulse so far."""
        return self.printer.pulses

    async def __aenter__(self) -> PtyPrinter:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.unplug()

    def start(self) -> None:
        """Open the pty pair and serve on the master side."""
        self._master, self._slave = os.openpty()
        # Keep a slave descriptor open, so the master never reads EIO between the agent's
        # opens (Linux hangs a pty up when its last slave descriptor closes); raw mode so
        # bytes pass unchanged until the agent sets its own termios.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self.resume()
        log.info("virtual %s printer %s on %s", self.printer.command_set, self.name, self.path)

    def pause(self) -> None:
        """Stop reading, as a printer whose buffer is full or that is paused."""
        if self._reading:
            asyncio.get_running_loop().remove_reader(self._master)
            self._reading = False

    def resume(self) -> None:
        """Read again."""
        if not self._reading and self._master >= 0:
            asyncio.get_running_loop().add_reader(self._master, self._readable)
            self._reading = True

    def unplug(self) -> None:
        """Close both sides: the tty is gone, as when a USB-serial cable is pulled."""
        self.pause()
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    async def set_state(self, **state: object) -> None:
        """Change the printer's state; see VirtualPrinterServer.set_state."""
        before = len(self.pulses)
        reply = self.printer.set_state(time.time(), **state)  # type: ignore[arg-type]
        if reply and self._master >= 0:
            with contextlib.suppress(OSError):
                os.write(self._master, reply)
        if len(self.pulses) > before:
            async with self._changed:
                self._changed.notify_all()

    async def wait_for_pulses(self, count: int, timeout: float = 5.0) -> list[Pulse]:
        """Wait until at least `count` pulses arrived; TimeoutError otherwise."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.pulses) >= count)
        return list(self.pulses)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.pause()
            return
        self.received += data
        before = len(self.pulses)
        reply = self.printer.feed(data, time.time())
        for pulse in self.pulses[before:]:
            log.info(
                "%s: drawer %d pulse %d/%d ms%s",
                self.name,
                pulse.drawer,
                pulse.on_ms,
                pulse.off_ms,
                " (real-time)" if pulse.realtime else "",
            )
        if reply:
            with contextlib.suppress(OSError):
                os.write(self._master, reply)
        if len(self.pulses) > before:
            asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # SO_LINGER 0: close sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def serve_pty_forever(command_set: str) -> None:
    """Run a virtual printer on a pty until cancelled (the CLI's `emulate --pty`)."""
    async with PtyPrinter(command_set) as vp:
        print(f"virtual {command_set} printer on {vp.path}; Ctrl-C to stop", flush=True)  # noqa: T201
        await asyncio.Event().wait()


async def serve_forever(host: str, port: int, command_set: str) -> None:
    """Run a virtual printer until cancelled (the CLI's `emulate`)."""
    async with VirtualPrinterServer(host, port, command_set, name=f"{host}:{port}") as vp:
        print(f"virtual {command_set} printer on {host}:{vp.port}; Ctrl-C to stop", flush=True)  # noqa: T201
        await asyncio.Event().wait()
