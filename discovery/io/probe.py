"""TCP 9100 probe: connect only, or with `identify` the read-only GS I / DLE EOT queries."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from discovery.core.probe_parse import (
    DLE_EOT_PRINTER_STATUS,
    IDENTIFY_QUERIES,
    MAX_REPLY,
    ProbeReply,
    extract_gs_i,
    find_status,
)
from discovery.io.limiter import Gauge

log = logging.getLogger(__name__)

# How long the port must stay quiet after the status byte for it to count as a lone reply.
SETTLE_S = 0.1

Guard = Callable[[str, int], AbstractAsyncContextManager[object]]


@asynccontextmanager
async def no_guard(host: str, port: int) -> AsyncIterator[None]:
    """Default guard: nothing else talks to these hosts."""
    yield


class Prober:
    """Raw-port probe; `sockets` counts connections currently open."""

    def __init__(self, *, port: int, timeout_s: float, guard: Guard | None = None) -> None:
        self.port = port
        self.timeout_s = timeout_s
        self.guard: Guard = guard or no_guard
        self.sockets = Gauge()

    async def is_open(self, host: str) -> bool:
        """True when the port accepts a connection; nothing is sent."""
        async with self.guard(host, self.port), self._connection(host) as streams:
            return streams is not None

    async def identify(self, host: str) -> ProbeReply:
        """Ask `DLE EOT 1`; only an ESC/POS-shaped answer earns the GS I maker/model/serial queries.

        Gating GS I on a lone valid status byte keeps a Star printer in Star mode (or any
        non-printer service on the port: HTTP, telnet) from receiving ESC/POS bytes it
        might print as text.
        """
        async with self.guard(host, self.port), self._connection(host) as streams:
            if streams is None:
                return ProbeReply()
            reader, writer = streams
            status = await self._ask_status(reader, writer)
            if status is None or find_status(status) is None:
                return ProbeReply()
            answers: list[str | None] = []
            for query in IDENTIFY_QUERIES:
                # Epson: send nothing more until the previous reply arrived (PROTOCOLS §2.4).
                data = await self._ask(reader, writer, query, _gs_i_complete)
                if data is None:
                    break
                answers.append(extract_gs_i(data)[0])
            answers += [None] * (len(IDENTIFY_QUERIES) - len(answers))
            return ProbeReply(escpos=True, maker=answers[0], model=answers[1], serial=answers[2])

    @asynccontextmanager
    async def _connection(
        self, host: str
    ) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]:
        self.sockets.up()
        writer: asyncio.StreamWriter | None = None
        try:
            try:
                streams = await asyncio.wait_for(
                    asyncio.open_connection(host, self.port, limit=MAX_REPLY), self.timeout_s
                )
            except (OSError, TimeoutError):
                yield None
                return
            writer = streams[1]
            yield streams
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(OSError, TimeoutError):
                    await asyncio.wait_for(writer.wait_closed(), self.timeout_s)
            self.sockets.down()

    async def _ask_status(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bytes | None:
        """Send `DLE EOT 1`; return everything the port says until it stays quiet a moment.

        The reply must be exactly one byte (PROTOCOLS §2.1), so after the first bytes the
        probe listens for a short settle time: a banner or an HTTP error keeps talking.
        """
        first = await self._ask(reader, writer, DLE_EOT_PRINTER_STATUS, bool)
        if first is None:
            return None
        buffer = first
        settle = min(SETTLE_S, self.timeout_s / 3)
        with contextlib.suppress(OSError, TimeoutError):
            while len(buffer) <= MAX_REPLY:
                chunk = await asyncio.wait_for(reader.read(MAX_REPLY), settle)
                if not chunk:
                    break
                buffer += chunk
        return buffer

    async def _ask(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        query: bytes,
        complete: Callable[[bytes], bool],
    ) -> bytes | None:
        """Send one query and read until `complete` or the timeout; None when unanswered."""
        buffer = b""
        deadline = time.monotonic() + self.timeout_s
        try:
            writer.write(query)
            await asyncio.wait_for(writer.drain(), self.timeout_s)
            while not complete(buffer) and len(buffer) < MAX_REPLY:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                chunk = await asyncio.wait_for(reader.read(MAX_REPLY), remaining)
                if not chunk:
                    return None
                buffer += chunk
        except (OSError, TimeoutError) as exc:
            log.debug("probe %s:%d: %r", writer.get_extra_info("peername"), self.port, exc)
            return None
        return buffer if complete(buffer) else None


def _gs_i_complete(buffer: bytes) -> bool:
    return extract_gs_i(buffer)[1]
