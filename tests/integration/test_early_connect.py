"""Issue 12, item 2: the printer's SYN leaves before the claim commits, and the kick goes
out on that same connection only after the claim and 'sending' are in the ledger."""

from __future__ import annotations

import asyncio
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
        reader, writer = await done.finish(timeout=1.0)
        writer.close()
        await writer.wait_closed()
        # Negative control: a SYN the listener dropped is still in progress, so finish()
        # must wait for it (here until its timeout) instead of taking it as connected.
        pending = printer_link.Early.start("127.0.0.1", hanging_port.port)
        assert pending is not None
        assert pending._outcome() is None
        with pytest.raises(PrinterUnreachable, match="connect timed out"):
            await pending.finish(timeout=0.2)
    finally:
        printer_.listener.close()
