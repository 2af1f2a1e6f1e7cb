"""Dispatch with real sockets and a real ledger: retry, deadline, no head-of-line blocking."""

import asyncio
import time

import pytest

from agent.core.acks import AckStatus
from agent.core.commands import CommandSet
from agent.core.kick import Job
from agent.core.settings import DispatchSettings, PrinterSettings
from agent.devtools.emulator import Behaviour, VirtualPrinterServer
from agent.io.ledger import Ledger
from agent.service.dispatcher import Dispatcher
from tests.conftest import free_port
from tests.waiting import eventually


def printer(pid, port):
    return PrinterSettings(
        id=pid,
        host="127.0.0.1",
        port=port,
        command_set=CommandSet.ESCPOS,
        model=None,
        drawer=1,
        pulse_on_ms=100,
        pulse_off_ms=500,
    )


class Harness:
    def __init__(self, tmp_path, printers):
        self.ledger = Ledger.open(tmp_path / "l.db")
        self.outcomes = []
        self.done = asyncio.Condition()
        self.dispatcher = Dispatcher(
            {p.id: p for p in printers},
            self.ledger,
            DispatchSettings(connect_timeout_s=0.3, write_timeout_s=0.3),
            self.record,
        )

    async def record(self, outcome):
        async with self.done:
            self.outcomes.append(outcome)
            self.done.notify_all()

    def submit(self, event_id, printer_id, max_age=5.0):
        now = time.time()
        self.ledger.claim(
            event_id=event_id,
            type_="sale",
            terminal_id="T1",
            printer_id=printer_id,
            occurred_at=now,
            received_at=now,
            deadline=now + max_age,
        )
        self.dispatcher.submit(Job(event_id, printer_id, "T1", now, now + max_age))

    async def wait(self, n, timeout=10.0):
        async with asyncio.timeout(timeout), self.done:
            await self.done.wait_for(lambda: len(self.outcomes) >= n)
        return {o.job.event_id: o for o in self.outcomes}


@pytest.fixture
async def harness_factory(tmp_path):
    made = []

    async def make(printers):
        h = Harness(tmp_path, printers)
        h.task = asyncio.create_task(h.dispatcher.run())
        made.append(h)
        return h

    yield make
    for h in made:
        h.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await h.task
        h.ledger.close()


async def test_printer_down_then_up_within_deadline(harness_factory):
    port = free_port()
    h = await harness_factory([printer("p", port)])
    h.submit("e1", "p", max_age=5.0)
    async with VirtualPrinterServer(port=port) as vp:  # comes up while the agent retries
        outcomes = await h.wait(1)
        assert len(vp.pulses) == 1
    assert outcomes["e1"].status is AckStatus.OPENED
    assert outcomes["e1"].attempts >= 1
    row = h.ledger.get("e1")
    assert (row.status, row.state) == ("opened", "final")


async def test_refusing_printer_retries_until_the_deadline_then_fails(harness_factory):
    port = free_port()
    h = await harness_factory([printer("p", port)])
    h.submit("e1", "p", max_age=1.0)
    outcome = (await h.wait(1))["e1"]
    assert outcome.status is AckStatus.FAILED
    assert outcome.attempts > 3
    assert "refused" in outcome.detail
    # Given up means nothing is left that could pulse late when the printer returns: no job
    # queued or in progress, and no task but the dispatcher's and its idle worker.
    assert h.dispatcher.pending() == 0
    others = asyncio.all_tasks() - {asyncio.current_task(), h.task}
    assert {t.get_name() for t in others} == {"dispatch[p]"}


async def test_hanging_printer_does_not_delay_others(harness_factory, hanging_port):
    async with VirtualPrinterServer() as healthy:
        h = await harness_factory([printer("hung", hanging_port.port), printer("ok", healthy.port)])
        h.submit("stuck", "hung", max_age=2.0)
        h.submit("fine", "ok")
        outcomes = await h.wait(1)
        # Opened while the hung printer's event still waits for its deadline: not behind it.
        assert set(outcomes) == {"fine"}
        assert outcomes["fine"].status is AckStatus.OPENED
        outcomes = await h.wait(2)
    assert outcomes["stuck"].status is AckStatus.FAILED
    assert "timed out" in outcomes["stuck"].detail


async def test_two_tills_sharing_a_printer_get_two_pulses_in_order(harness_factory):
    async with VirtualPrinterServer() as vp:
        h = await harness_factory([printer("p", vp.port)])
        h.submit("a", "p")
        h.submit("b", "p")
        outcomes = await h.wait(2)
        assert [o.job.event_id for o in h.outcomes] == ["a", "b"]
        assert all(o.status is AckStatus.OPENED for o in outcomes.values())
        assert len(vp.pulses) == 2
        assert vp.connections == 2  # one session at a time, closed after each pulse


async def test_queued_past_its_deadline_is_expired_without_a_pulse(harness_factory, hanging_port):
    h = await harness_factory([printer("p", hanging_port.port)])
    h.submit("first", "p", max_age=0.6)
    h.submit("second", "p", max_age=0.3)  # waits behind the first, then has no time left
    outcomes = await h.wait(2)
    assert outcomes["second"].status is AckStatus.EXPIRED
    assert outcomes["second"].attempts == 0
    assert "queued" in outcomes["second"].detail


async def test_reset_printer_is_retried(harness_factory):
    async with VirtualPrinterServer(behaviour=Behaviour.RESET) as vp:
        h = await harness_factory([printer("p", vp.port)])
        h.submit("e1", "p", max_age=3.0)
        await eventually(lambda: vp.connections >= 2, 3, "a retry on the resetting printer")
        vp.behaviour = Behaviour.NORMAL
        outcome = (await h.wait(1))["e1"]
        assert outcome.status is AckStatus.OPENED
        assert outcome.attempts >= 3
        assert len(vp.pulses) == 1
