"""Bounded concurrency with an in-flight gauge, so sweeps can prove their bound."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass


@dataclass
class Gauge:
    """Current and peak count of something open or in flight."""

    current: int = 0
    peak: int = 0

    def up(self) -> None:
        """One more."""
        self.current += 1
        self.peak = max(self.peak, self.current)

    def down(self) -> None:
        """One fewer."""
        self.current -= 1


class Limiter:
    """A semaphore that records how many holders it had at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = Gauge()
        self._semaphore = asyncio.Semaphore(limit)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of `limit` slots."""
        async with self._semaphore:
            self.in_flight.up()
            try:
                yield
            finally:
                self.in_flight.down()


@dataclass
class SweepStats:
    """Counters a sweep fills in; the benchmark reads them."""

    hosts: int = 0
    snmp_requests: int = 0
    snmp_replies: int = 0
    tcp_connects: int = 0
    tcp_open: int = 0
    peak_in_flight: int = 0
    peak_tcp_sockets: int = 0
    peak_snmp_requests: int = 0
