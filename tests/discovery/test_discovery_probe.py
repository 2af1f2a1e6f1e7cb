"""TCP 9100 probe against virtual printers on 127.0.2.x."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from discovery_peers import (
    ALLOWED_PROBE_BYTES,
    HTTP_PEER,
    PROMPT_PEER,
    STAR_ASB_PEER,
    TELNET_PEER,
    ChattyPeer,
    FakePrinter,
    ResettingPeer,
    SilentPrinter,
    free_tcp_port,
    tcp_peers,
)

from discovery import DiscoveryConfig
from discovery.io.probe import Prober
from discovery.service import sweep

TIMEOUT = 0.3


def only_allowed_queries(received: bytes) -> bool:
    """Everything the probe sent is one of the read-only queries, whole."""
    for i in range(0, len(received), 3):
        if bytes(received[i : i + 3]) not in ALLOWED_PROBE_BYTES:
            return False
    return len(received) % 3 == 0


async def test_identify_reads_gs_i_replies() -> None:
    port = free_tcp_port("127.0.2.1")
    epson, bixolon = FakePrinter(), FakePrinter(b"BIXOLON", b"SRP-350III", b"BX42")
    async with tcp_peers({"127.0.2.1": epson, "127.0.2.2": bixolon}, port):
        prober = Prober(port=port, timeout_s=TIMEOUT)
        reply = await prober.identify("127.0.2.1")
        assert (reply.escpos, reply.maker, reply.model, reply.serial) == (
            True,
            "EPSON",
            "TM-T20III",
            "X4FT012345",
        )
        assert (await prober.identify("127.0.2.2")).maker == "BIXOLON"
    assert bytes(epson.received) == b"\x10\x04\x01\x1d\x49\x42\x1d\x49\x43\x1d\x49\x44"
    assert prober.sockets.current == 0


async def test_sweep_with_identify_classifies_hosts() -> None:
    port = free_tcp_port("127.0.2.1")
    printer, silent, resetter = FakePrinter(), SilentPrinter(), ResettingPeer()
    peers = {"127.0.2.1": printer, "127.0.2.2": silent, "127.0.2.3": resetter}
    cfg = DiscoveryConfig(
        subnets=("127.0.2.0/28",),
        mdns=False,
        snmp=False,
        identify=True,
        probe_port=port,
        timeout_s=TIMEOUT,
    )
    async with tcp_peers(peers, port):
        records = await sweep(cfg)  # how long it takes: bench_discovery
    by_host = {r.host: r for r in records}
    # Closed ports (127.0.2.4-14) are not printers; open ones are, even when mute.
    assert sorted(by_host) == ["127.0.2.1", "127.0.2.2", "127.0.2.3"]
    epson = by_host["127.0.2.1"]
    assert (epson.vendor, epson.model, epson.serial, epson.command_set, epson.port) == (
        "Epson",
        "TM-T20III",
        "X4FT012345",
        "escpos",
        port,
    )
    assert by_host["127.0.2.2"].vendor is None
    assert by_host["127.0.2.3"].command_set is None
    assert all(r.sources == frozenset({"probe"}) for r in records)
    # The mute host got DLE EOT 1 only: no GS I without an ESC/POS status reply.
    assert bytes(silent.received) == b"\x10\x04\x01"
    assert only_allowed_queries(printer.received)


async def test_connect_only_sends_nothing() -> None:
    port = free_tcp_port("127.0.2.1")
    printer = FakePrinter()
    async with tcp_peers({"127.0.2.1": printer}, port):
        assert await Prober(port=port, timeout_s=TIMEOUT).is_open("127.0.2.1")
        assert not await Prober(port=port, timeout_s=TIMEOUT).is_open("127.0.2.9")
    assert printer.received == b""
    assert printer.connections == 1


async def test_probe_holds_the_guard_while_talking() -> None:
    port = free_tcp_port("127.0.2.1")
    printer = FakePrinter()
    events: list[tuple[str, str, int]] = []
    pulse_in_progress = asyncio.Lock()
    requested = asyncio.Event()

    @asynccontextmanager
    async def guard(host: str, guarded_port: int) -> AsyncIterator[None]:
        requested.set()
        async with pulse_in_progress:
            events.append(("enter", host, guarded_port))
            yield
            events.append(("exit", host, guarded_port))

    async with tcp_peers({"127.0.2.1": printer}, port):
        prober = Prober(port=port, timeout_s=TIMEOUT, guard=guard)
        async with pulse_in_progress:
            # The agent is "pulsing": the probe must wait and not connect.
            task = asyncio.create_task(prober.identify("127.0.2.1"))
            await requested.wait()
            assert printer.connections == 0
            assert not task.done()
        reply = await task
    assert reply.maker == "EPSON"
    assert events == [("enter", "127.0.2.1", port), ("exit", "127.0.2.1", port)]


async def test_non_escpos_status_byte_gets_no_gs_i() -> None:
    port = free_tcp_port("127.0.2.5")
    star_like = FakePrinter(status=0x08)  # bit 1 clear: not an ESC/POS status byte
    async with tcp_peers({"127.0.2.5": star_like}, port):
        reply = await Prober(port=port, timeout_s=TIMEOUT).identify("127.0.2.5")
    assert reply.escpos is False
    assert bytes(star_like.received) == b"\x10\x04\x01"


@pytest.mark.parametrize(
    "peer",
    [HTTP_PEER, TELNET_PEER, STAR_ASB_PEER, PROMPT_PEER],
    ids=["http-400", "telnet-banner", "star-asb", "prompt"],
)
async def test_chatty_non_escpos_ports_are_not_escpos_and_get_no_gs_i(peer) -> None:
    port = free_tcp_port("127.0.2.1")
    chatty, printer = ChattyPeer(**peer), FakePrinter()
    cfg = DiscoveryConfig(
        subnets=("127.0.2.0/30",),
        mdns=False,
        snmp=False,
        identify=True,
        probe_port=port,
        timeout_s=TIMEOUT,
    )
    async with tcp_peers({"127.0.2.1": chatty, "127.0.2.2": printer}, port):
        reply = await Prober(port=port, timeout_s=TIMEOUT).identify("127.0.2.1")
        records = {r.host: r for r in await sweep(cfg)}
    assert reply.escpos is False
    assert records["127.0.2.1"].command_set is None
    # It was asked DLE EOT 1 (once per identify) and nothing else: no GS I.
    assert bytes(chatty.received) == b"\x10\x04\x01" * 2
    # Positive control in the same sweep: a real ESC/POS reply still earns GS I.
    assert records["127.0.2.2"].command_set == "escpos"
    assert bytes(printer.received).endswith(b"\x1d\x49\x44")
