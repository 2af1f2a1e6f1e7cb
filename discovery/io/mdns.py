"""mDNS / DNS-SD browser on python-zeroconf's async API (LIBRARIES §2; RFC 6762, RFC 6763)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

from zeroconf import (
    BadTypeInNameException,
    InterfaceChoice,
    IPVersion,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf import Error as ZeroconfError
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from discovery.core.identity import mdns_instance
from discovery.core.mdns_parse import ALL_TYPES, parse_service
from discovery.core.model import Sighting

log = logging.getLogger(__name__)

# Resolution normally completes from the announcement already in the cache; 3 s covers a
# querier that must ask (RFC 6762 §5.2 retransmits at 1 s, 2 s, ...).
RESOLVE_TIMEOUT_MS = 3000


class MdnsError(Exception):
    """mDNS could not start on the requested interfaces."""


class MdnsBrowser:
    """Watch printer service types; report sightings and goodbyes through callbacks."""

    def __init__(
        self,
        *,
        interfaces: Sequence[str],
        on_sighting: Callable[[Sighting], None],
        on_removed: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        types: Sequence[str] = ALL_TYPES,
    ) -> None:
        self._interfaces = list(interfaces)
        self._on_sighting = on_sighting
        self._on_removed = on_removed
        self._clock = clock
        self._types = list(types)
        self._aiozc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        # Handlers are sync callbacks: hold the resolve tasks so they are not collected.
        self._tasks: set[asyncio.Task[None]] = set()
        # One device often advertises several types; it is gone only when all are gone.
        self._live: dict[str, set[str]] = defaultdict(set)

    async def __aenter__(self) -> Self:
        try:
            self._aiozc = AsyncZeroconf(
                interfaces=self._interfaces or InterfaceChoice.All, ip_version=IPVersion.V4Only
            )
            self._browser = AsyncServiceBrowser(
                self._aiozc.zeroconf, self._types, handlers=[self._on_change]
            )
        except (OSError, ZeroconfError) as exc:
            if self._aiozc is not None:
                await self._aiozc.async_close()
            raise MdnsError(f"mDNS on {self._interfaces or 'all interfaces'}: {exc}") from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._aiozc is not None:
            await self._aiozc.async_close()
        self._browser = self._aiozc = None

    def _on_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        instance = mdns_instance(name)
        if state_change is ServiceStateChange.Removed:
            types = self._live.get(instance)
            if types is not None:
                types.discard(service_type)
                if not types:
                    del self._live[instance]
                    if self._on_removed is not None:
                        self._on_removed(instance)
            return
        task = asyncio.get_running_loop().create_task(
            self._resolve(zeroconf, service_type, name), name=f"discovery.mdns.resolve[{name}]"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, zeroconf: Zeroconf, service_type: str, name: str) -> None:
        try:
            info = AsyncServiceInfo(service_type, name)
            if not await info.async_request(zeroconf, RESOLVE_TIMEOUT_MS):
                log.debug("mDNS %s did not resolve", name)
                return
            sighting = parse_service(
                service_type,
                name,
                addresses=info.parsed_addresses(IPVersion.V4Only),
                port=info.port,
                properties=info.properties,
                now=self._clock(),
            )
        except (BadTypeInNameException, ZeroconfError, ValueError, UnicodeError) as exc:
            log.warning("mDNS %s: unusable service record: %s", name, exc)
            return
        if sighting is None:
            return
        self._live[mdns_instance(name)].add(service_type)
        self._on_sighting(sighting)
