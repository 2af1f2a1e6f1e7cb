"""SNMP v1/v2c adapter on pysnmp 7's light v1arch dispatcher (LIBRARIES §3.1-3.2)."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Self

# pyasn1 ships no type information and pyproject's mypy overrides do not list it yet.
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v1arch.asyncio import (
    CommunityData,
    SnmpDispatcher,
    UdpTransportTarget,
    next_cmd,
)
from pysnmp.proto import rfc1902

from discovery.core.snmp_parse import QUERY_PREFIXES, Oid, SnmpValue
from discovery.io.limiter import Gauge

log = logging.getLogger(__name__)
_MP_MODEL = {"1": 0, "2c": 1}


class SnmpError(Exception):
    """A host could not be queried (timeout, bad reply); the sweep moves on."""


class SnmpClient:
    """One dispatcher per event loop, created on entry inside the running loop (LIBRARIES §3.2)."""

    def __init__(
        self,
        *,
        community: str,
        port: int,
        timeout_s: float,
        version: str = "2c",
        retries: int = 0,
    ) -> None:
        self._auth = CommunityData(community, mpModel=_MP_MODEL[version])
        self._v1 = version == "1"
        self._port = port
        self._timeout = timeout_s
        self._retries = retries
        self._dispatcher: SnmpDispatcher | None = None
        self.in_flight = Gauge()

    async def __aenter__(self) -> Self:
        self._dispatcher = SnmpDispatcher()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._dispatcher is not None:
            self._dispatcher.close()
            self._dispatcher = None

    async def query(self, host: str) -> list[tuple[str, SnmpValue]]:
        """One GETNEXT for every prefix in QUERY_PREFIXES; raises SnmpError on no answer."""
        prefixes = list(QUERY_PREFIXES)
        # SNMPv1 fails the whole PDU on the first missing column (RFC 1157 §4.1.3, noSuchName):
        # drop that varbind and ask again, at most once per prefix.
        for _ in range(len(QUERY_PREFIXES)):
            error_status, error_index, varbinds = await self._getnext(host, prefixes)
            if not error_status:
                return varbinds
            if not self._v1 or not 0 < error_index <= len(prefixes) or len(prefixes) == 1:
                raise SnmpError(f"{host}: SNMP error status {error_status}")
            del prefixes[error_index - 1]
        raise SnmpError(f"{host}: nothing readable")

    async def _getnext(
        self, host: str, prefixes: list[str]
    ) -> tuple[int, int, list[tuple[str, SnmpValue]]]:
        if self._dispatcher is None:
            raise RuntimeError("SnmpClient used outside `async with`")
        self.in_flight.up()
        try:
            target = await UdpTransportTarget.create(
                (host, self._port), timeout=self._timeout, retries=self._retries
            )
            indication, status, index, varbinds = await next_cmd(
                self._dispatcher,
                self._auth,
                target,
                *((univ.ObjectIdentifier(p), univ.Null()) for p in prefixes),
                lookupMib=False,
            )
        except (PySnmpError, PyAsn1Error, OSError) as exc:
            raise SnmpError(f"{host}: {exc}") from exc
        finally:
            self.in_flight.down()
        if indication:
            raise SnmpError(f"{host}: {indication}")
        return int(status), int(index), [(str(oid), _value(val)) for oid, val in varbinds]


def _value(value: Any) -> SnmpValue:
    """Map a pysnmp value to the plain types snmp_parse understands."""
    # noSuchObject/noSuchInstance/endOfMibView subclass Null, which subclasses OctetString.
    if isinstance(value, univ.Null):
        return None
    if isinstance(value, rfc1902.ObjectIdentifier | univ.ObjectIdentifier):
        return Oid(str(value))
    if isinstance(value, univ.OctetString):
        return bytes(value)
    if isinstance(value, univ.Integer):
        return int(value)
    return None
