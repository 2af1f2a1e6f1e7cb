"""Issue 12, item 2: the printer's SYN leaves before the claim commits, and the kick goes
out on that same connection only after the claim and 'sending' are in the ledger."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import time
from dataclasses import replace

import pytest

from agent.core.admission import Ticket
from agent.core.errors import LedgerError, PrinterUnreachable
from agent.core.ratelimit import PulseRateLimiter
from agent.core.settings import DispatchSettings
from agent.io import printer_link
from agent.io.ledger import Ledger
from agent.service.admission import Admission, Queued
from agent.service.dispatcher import Dispatcher
from tests.integration.test_dispatch import printer
from tests.waiting import eventually

ESC_P = b"\x1bp"  # ESC p m t1 t2: generate pulse (Epson ESC/POS Command Reference)


class RawPrinter:
    """A listening socket we accept from by hand: its accept queue shows a finished handshake."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]

    def handshake_done(self) -> bool:
        readable, _, _ = select.select([self.listener], [], [], 0)
        return bool(readable)

    async def read_kick(self) -> tuple[bytes, int]:
        loop = asyncio.get_running_loop()
        conn, _ = await loop.sock_accept(self.listener)
        with conn:
            data = b""
            while ESC_P not in data:
                chunk = await loop.sock_recv(conn, 64)
                if not chunk:
                    break
                data += chunk
        return data, int(self.handshake_done())

    def close(self) -> None:
        self.listener.close()


def _ticket(event_id: str) -> Ticket:
    now = time.time()
    return Ticket(event_id, "sale", "T1", "p", 1, now, now, now + 5)


@pytest.mark.parametrize("warm", [True, False], ids=["early", "negative control: no warm"])
async def test_the_syn_leaves_before_the_claim_commits(tmp_path, warm):
    raw = RawPrinter()
    p = replace(printer("p", raw.port), confirm=False, precheck=False)
    seen_at_claim: list[bool] = []
    outcomes = []
    with Ledger.open(tmp_path / "l.db") as ledger:

        async def done(outcome):
            outcomes.append(outcome)

        lane = Dispatcher({"p": p}, ledger, DispatchSettings(), done)
        if not warm:
            lane.warm = lambda _pid: None  # type: ignore[method-assign]
        claim = ledger.claim

        def watching_claim(**kw):
            seen_at_claim.append(raw.handshake_done())  # before the INSERT commits
            row = claim(**kw)
            assert ledger.get(kw["event_id"]) is not None
            return row

        ledger.claim = watching_claim  # type: ignore[method-assign]
        task = asyncio.create_task(lane.run())
        try:
            admitted = Admission(ledger, lane, PulseRateLimiter(0)).open(_ticket("e1"))
            assert isinstance(admitted, Queued)
            data, second_connection = await asyncio.wait_for(raw.read_kick(), 5)
            await asyncio.wait_for(lane.drained(), 5)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            raw.close()
    assert seen_at_claim == [warm]
    assert ESC_P in data and second_connection == 0  # one connection, the early one
    assert [o.status.value for o in outcomes] == ["opened"]
    row = ledger_row(tmp_path)
    assert (row.state, row.status, row.attempts) == ("final", "opened", 1)


def ledger_row(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        row = ledger.get("e1")
    assert row is not None
    return row


async def test_a_claim_that_fails_closes_the_early_connection_unwritten(tmp_path):
    raw = RawPrinter()
    p = replace(printer("p", raw.port), confirm=False, precheck=False)
    with Ledger.open(tmp_path / "l.db") as ledger:

        async def done(_outcome):
            return None

        lane = Dispatcher({"p": p}, ledger, DispatchSettings(), done)

        def broken_claim(**_kw):
            raise LedgerError("disk I/O error")

        ledger.claim = broken_claim  # type: ignore[method-assign]
        with pytest.raises(LedgerError):
            Admission(ledger, lane, PulseRateLimiter(0)).open(_ticket("e1"))
        assert lane._early == {}  # closed, not left for a later job
        loop = asyncio.get_running_loop()
        conn, _ = await asyncio.wait_for(loop.sock_accept(raw.listener), 5)
        with conn:
            assert await asyncio.wait_for(loop.sock_recv(conn, 64), 5) == b""  # nothing written
    raw.close()


async def test_finish_uses_a_handshake_that_already_ended_and_waits_for_one_in_progress(
    hanging_port,
):
    printer_ = RawPrinter()
    try:
        done = printer_link.Early.start("127.0.0.1", printer_.port)
        assert done is not None
        await eventually(printer_.handshake_done)
        assert done._outcome() == 0  # connected: no wait for "writable"
        sock = await done.finish(timeout=1.0)
        assert sock.getpeername()[1] == printer_.port
        sock.close()
        # Negative control: a SYN the listener dropped is still in progress, so finish()
        # must wait for it (here until its timeout) instead of taking it as connected.
        pending = printer_link.Early.start("127.0.0.1", hanging_port.port)
        assert pending is not None
        assert pending._outcome() is None
        with pytest.raises(PrinterUnreachable, match="connect timed out"):
            await pending.finish(timeout=0.2)
    finally:
        printer_.listener.close()


# DLE EOT 1, "transmit printer status" (Epson ESC/POS Command Reference, DLE EOT n=1). Its
# reply: bit 1 and bit 4 fixed to 1, bit 3 = offline, bit 2 = drawer connector pin 3; so
# 0x12 is "online, pin 3 low".
DLE_EOT_1 = b"\x10\x04\x01"
ONLINE = b"\x12"


class StatusPrinter(RawPrinter):
    """The raw listener, with its first connection taken by hand during the claim."""

    def take_at_claim(self) -> tuple[socket.socket | None, bytes]:
        """Accept and read without waiting: what the printer holds while the claim runs."""
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return None, b""
        conn.setblocking(False)
        try:
            return conn, conn.recv(64)
        except BlockingIOError:
            return conn, b""

    async def answer_until_kick(self, conn: socket.socket, data: bytes) -> bytes:
        """Answer each DLE EOT 1 with 'online' and read up to the kick (and its confirm)."""
        loop = asyncio.get_running_loop()
        answered = 0
        while True:
            while data.count(DLE_EOT_1) > answered:
                await loop.sock_sendall(conn, ONLINE)
                answered += 1
            if ESC_P in data and data.endswith(DLE_EOT_1) and answered >= 2:
                return data
            chunk = await loop.sock_recv(conn, 64)
            if not chunk:
                return data
            data += chunk


@pytest.mark.parametrize(
    "precheck", [True, False], ids=["status request early", "negative control: no pre-check"]
)
async def test_the_status_request_leaves_before_the_claim_commits(tmp_path, precheck):
    raw = StatusPrinter()
    p = replace(printer("p", raw.port), confirm=True, precheck=precheck)
    at_claim: list[tuple[socket.socket | None, bytes]] = []
    outcomes = []
    with Ledger.open(tmp_path / "l.db") as ledger:

        async def done(outcome):
            outcomes.append(outcome)

        lane = Dispatcher({"p": p}, ledger, DispatchSettings(), done)
        claim = ledger.claim

        def watching_claim(**kw):
            at_claim.append(raw.take_at_claim())  # what the printer holds before the INSERT
            return claim(**kw)

        ledger.claim = watching_claim  # type: ignore[method-assign]
        task = asyncio.create_task(lane.run())
        try:
            admitted = Admission(ledger, lane, PulseRateLimiter(0)).open(_ticket("e1"))
            assert isinstance(admitted, Queued)
            [(conn, before)] = at_claim
            assert conn is not None  # the handshake had ended (issue 12's early SYN)
            with conn:
                data = await asyncio.wait_for(raw.answer_until_kick(conn, before), 5)
            await asyncio.wait_for(lane.drained(), 5)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            raw.close()
    # The status request was with the printer while the claim committed; the kick only
    # came after, on the same connection, once the claim and 'sending' were durable.
    assert before == (DLE_EOT_1 if precheck else b"")
    assert ESC_P not in before
    kick_at = data.index(ESC_P)
    assert data[:kick_at] == (DLE_EOT_1 if precheck else b"")  # one status request, not two
    assert data[kick_at:].endswith(DLE_EOT_1)  # the confirm after the kick
    assert [(o.status.value, o.detail) for o in outcomes] == [("opened", "")]
    row = ledger_row(tmp_path)
    assert (row.state, row.status, row.attempts) == ("final", "opened", 1)


async def test_a_claim_that_fails_after_the_early_status_request_never_kicks(tmp_path):
    raw = RawPrinter()
    p = replace(printer("p", raw.port), precheck=True)
    with Ledger.open(tmp_path / "l.db") as ledger:

        async def done(_outcome):
            return None

        lane = Dispatcher({"p": p}, ledger, DispatchSettings(), done)

        def broken_claim(**_kw):
            raise LedgerError("disk I/O error")

        ledger.claim = broken_claim  # type: ignore[method-assign]
        with pytest.raises(LedgerError):
            Admission(ledger, lane, PulseRateLimiter(0)).open(_ticket("e1"))
        assert lane._early == {}
        loop = asyncio.get_running_loop()
        conn, _ = await asyncio.wait_for(loop.sock_accept(raw.listener), 5)
        with conn:
            data = b""
            while chunk := await asyncio.wait_for(loop.sock_recv(conn, 64), 5):
                data += chunk
    raw.close()
    assert data == DLE_EOT_1  # the status request, then the close: no kick


async def test_a_status_request_waits_for_a_handshake_in_progress(hanging_port):
    early = printer_link.Early.start("127.0.0.1", hanging_port.port, request=DLE_EOT_1)
    assert early is not None
    try:
        assert early.sent == b""  # SYN dropped by the full backlog: nothing written yet
        # Free the backlog: the kernel retransmits the SYN, the handshake ends, and the
        # loop's "writable" callback sends the request without anyone awaiting it.
        listener = hanging_port.listener
        listener.setblocking(False)
        loop = asyncio.get_running_loop()
        accepted: list[socket.socket] = []

        async def ours() -> socket.socket:
            while True:
                conn, peer = await loop.sock_accept(listener)
                accepted.append(conn)
                if peer == early.sock.getsockname():
                    return conn

        conn = await asyncio.wait_for(ours(), 10)
        assert await asyncio.wait_for(loop.sock_recv(conn, 8), 5) == DLE_EOT_1
        assert early.sent == DLE_EOT_1
        async with printer_link.connect(
            "127.0.0.1",
            hanging_port.port,
            connect_timeout=1.0,
            write_timeout=1.0,
            early=early,
        ) as session:
            await loop.sock_sendall(conn, ONLINE)
            reply = await session.status(printer_link.Precheck(DLE_EOT_1, 1, 1.0))
            assert reply == ONLINE
        # The request was not written a second time: the printer reads only the close.
        assert await asyncio.wait_for(loop.sock_recv(conn, 8), 5) == b""
    finally:
        early.close()
        for sock in accepted:
            sock.close()


async def test_a_kick_behind_an_unread_early_status_reply_is_refused_unwritten():
    raw = RawPrinter()
    try:
        early = printer_link.Early.start("127.0.0.1", raw.port, request=DLE_EOT_1)
        assert early is not None and early.sent == DLE_EOT_1
        loop = asyncio.get_running_loop()
        conn, _ = await asyncio.wait_for(loop.sock_accept(raw.listener), 5)
        with conn:
            assert await asyncio.wait_for(loop.sock_recv(conn, 3), 5) == DLE_EOT_1
            await loop.sock_sendall(conn, ONLINE)
            async with printer_link.connect(
                "127.0.0.1", raw.port, connect_timeout=1.0, write_timeout=1.0, early=early
            ) as session:
                # The unread 0x12 would pass for the confirm's reply: the kick is refused.
                with pytest.raises(PrinterUnreachable, match="early status reply"):
                    await session.kick(ESC_P + b"\x00\x32\xfa", printer_link.Confirm(DLE_EOT_1, 1))
            rest = b""
            # The agent closes with the reply unread, so the close may come as a reset.
            with contextlib.suppress(ConnectionResetError):
                while chunk := await asyncio.wait_for(loop.sock_recv(conn, 64), 5):
                    rest += chunk
        assert rest == b""  # nothing after the early request: no kick was written
    finally:
        raw.close()


async def test_an_early_connection_for_another_pre_check_is_closed_not_used(tmp_path):
    """Warmed with the pre-check on, queued with it off (a test kick's variant): the early
    connection's status reply would go unread, so a fresh connection carries the kick."""
    raw = StatusPrinter()
    p = replace(printer("p", raw.port), confirm=True, precheck=True)
    outcomes = []
    with Ledger.open(tmp_path / "l.db") as ledger:

        async def done(outcome):
            outcomes.append(outcome)

        lane = Dispatcher({"p": p}, ledger, DispatchSettings(), done)
        task = asyncio.create_task(lane.run())
        loop = asyncio.get_running_loop()
        try:
            admitted = Admission(ledger, lane, PulseRateLimiter(0)).open(
                _ticket("e1"), replace(p, precheck=False)
            )
            assert isinstance(admitted, Queued)
            first, _ = await asyncio.wait_for(loop.sock_accept(raw.listener), 5)
            with first:
                early = b""
                while chunk := await asyncio.wait_for(loop.sock_recv(first, 64), 5):
                    early += chunk
            second, _ = await asyncio.wait_for(loop.sock_accept(raw.listener), 5)
            with second:
                data = await asyncio.wait_for(raw.answer_until_kick(second, b""), 5)
            await asyncio.wait_for(lane.drained(), 5)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            raw.close()
    assert early == DLE_EOT_1  # the early connection: its request only, closed unread
    assert data.startswith(ESC_P) and data.endswith(DLE_EOT_1)  # kick + confirm, no pre-check
    # One attempt: the early connection was set aside, not tried and refused by the link.
    assert [(o.status.value, o.attempts) for o in outcomes] == [("opened", 1)]
