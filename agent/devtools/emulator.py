"""`drawer-agent emulate`: a virtual printer on TCP, for the demo, docker compose and tests."""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
import struct
import time

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


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # SO_LINGER 0: close sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def serve_forever(host: str, port: int, command_set: str) -> None:
    """Run a virtual printer until cancelled (the CLI's `emulate`)."""
    async with VirtualPrinterServer(host, port, command_set, name=f"{host}:{port}") as vp:
        print(f"virtual {command_set} printer on {host}:{vp.port}; Ctrl-C to stop", flush=True)  # noqa: T201
        await asyncio.Event().wait()
