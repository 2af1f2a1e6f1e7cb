"""mDNS against real zeroconf registrations on 127.0.0.1."""

from __future__ import annotations

import asyncio
import uuid

from discovery_peers import mdns_registrar, service_info

from discovery import DiscoveryConfig, PrinterRecord, matches
from discovery.core.model import Sighting
from discovery.io.mdns import MdnsBrowser
from discovery.service import DiscoveryService, sweep

LOOPBACK = ("127.0.0.1",)
WAIT = 8.0  # registration probing alone takes ~1.2 s (LIBRARIES §2.2)


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:6]}"


class Changes:
    """Collects on_change calls; lets a test await the one it expects."""

    def __init__(self) -> None:
        self.seen: list[tuple[PrinterRecord, PrinterRecord | None]] = []
        self._event = asyncio.Event()

    def __call__(self, new: PrinterRecord, old: PrinterRecord | None) -> None:
        self.seen.append((new, old))
        self._event.set()

    async def until(self, predicate: object, timeout: float = WAIT) -> PrinterRecord:
        async with asyncio.timeout(timeout):
            while True:
                for new, _old in self.seen:
                    if predicate(new):  # type: ignore[operator]
                        return new
                self._event.clear()
                await self._event.wait()


async def test_service_sees_register_move_and_remove() -> None:
    name = unique("EPSON TM-T20III")
    changes = Changes()
    cfg = DiscoveryConfig(interfaces=LOOPBACK, snmp=False, probe=False)
    txt = {
        b"ty": b"EPSON TM-T20III",
        b"usb_MFG": b"EPSON",
        b"usb_MDL": b"TM-T20III",
        b"usb_CMD": b"ESC/POS",
        b"product": b"(TM-T20III)",
    }
    async with DiscoveryService(cfg, on_change=changes) as svc, mdns_registrar() as zc:
        first = service_info(name, "127.0.3.7", properties=txt)
        await zc.async_register_service(first)  # type: ignore[attr-defined]
        record = await changes.until(lambda r: r.mdns_name == name)
        assert (record.host, record.port, record.vendor, record.model, record.command_set) == (
            "127.0.3.7",
            9100,
            "Epson",
            "TM-T20III",
            "escpos",
        )
        assert record.sources == frozenset({"mdns"})
        assert matches(record, mdns_name=f"{name}._pdl-datastream._tcp.local.")

        # DHCP gave the printer a new address: same instance name, new A record.
        await zc.async_update_service(service_info(name, "127.0.3.8", properties=txt))  # type: ignore[attr-defined]
        moved = await changes.until(lambda r: r.mdns_name == name and r.host == "127.0.3.8")
        assert moved.first_seen == record.first_seen
        assert [r.host for r in svc.snapshot() if r.mdns_name == name] == ["127.0.3.8"]

        await zc.async_unregister_service(first)  # type: ignore[attr-defined]
        gone = await changes.until(lambda r: r.mdns_name == name and "mdns" not in r.sources)
        # The device is no longer advertised, but its last known address is kept.
        assert gone.host == "127.0.3.8"


async def test_garbled_huge_and_non_utf8_txt_records() -> None:
    names = {k: unique(k) for k in ("raw", "huge", "latin")}
    seen: dict[str, Sighting] = {}
    all_seen = asyncio.Event()

    def on_sighting(s: Sighting) -> None:
        seen[s.mdns_name or ""] = s
        if set(names.values()) <= set(seen):
            all_seen.set()

    infos = [
        # Raw TXT bytes with a length byte that overruns, an empty string and a bare key.
        service_info(
            names["raw"], "127.0.3.20", properties=b"\x05ty=A\x00\x0ausb_MFG=\xff\xfe\x40\x10"
        ),
        # Many keys and long values: far beyond what any printer sends.
        service_info(
            names["huge"],
            "127.0.3.21",
            properties={f"k{i}".encode(): b"x" * 200 for i in range(40)}
            | {b"ty": b"BIXOLON SRP-350III " + b"y" * 230},
        ),
        # Non-UTF-8 (latin-1) bytes in the make and model.
        service_info(
            names["latin"],
            "127.0.3.22",
            properties={b"usb_MFG": b"CITIZEN \xe9", b"usb_MDL": b"CT-S310II \xff"},
        ),
    ]
    async with (
        MdnsBrowser(interfaces=LOOPBACK, on_sighting=on_sighting),
        mdns_registrar() as zc,
    ):
        await asyncio.gather(*(zc.async_register_service(i) for i in infos))  # type: ignore[attr-defined]
        async with asyncio.timeout(WAIT):
            await all_seen.wait()
    assert seen[names["raw"]].host == "127.0.3.20"
    assert seen[names["raw"]].vendor is None
    huge = seen[names["huge"]]
    assert (huge.vendor, huge.model, huge.command_set) == ("Bixolon", "SRP-350III", "escpos")
    latin = seen[names["latin"]]
    assert (latin.vendor, latin.model) == ("Citizen", "CT-S310II")


async def test_ipp_only_service_has_no_raw_port_and_http_only_enriches() -> None:
    name = unique("Star TSP654II")
    cfg = DiscoveryConfig(interfaces=LOOPBACK, snmp=False, probe=False, probe_port=9100)
    lonely_http = unique("Some Router")
    async with mdns_registrar() as zc:
        await asyncio.gather(
            zc.async_register_service(  # type: ignore[attr-defined]
                service_info(
                    name,
                    "127.0.3.30",
                    service_type="_ipp._tcp.local.",
                    port=631,
                    properties={b"ty": b"Star TSP654II (STR_T-001)"},
                )
            ),
            zc.async_register_service(  # type: ignore[attr-defined]
                service_info(lonely_http, "127.0.3.31", service_type="_http._tcp.local.", port=80)
            ),
        )
        records = await sweep(cfg, mdns_seconds=1.5)
    by_name = {r.mdns_name: r for r in records}
    star = by_name[name]
    assert (star.vendor, star.model, star.command_set, star.port) == (
        "Star",
        "TSP654II",
        "star-line",
        9100,
    )
    # _http._tcp never creates a printer on its own.
    assert lonely_http not in by_name
