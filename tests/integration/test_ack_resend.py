"""One message, one ack: resending unacked acks after a reconnect never doubles an ack."""

import asyncio

from agent.core.acks import Ack, AckStatus
from agent.core.errors import BrokerError
from agent.core.topics import Topics
from agent.io.ledger import Ledger
from agent.service.intake import AckPublisher
from tests.waiting import eventually


class RecordingLink:
    """The publish seam of MqttLink: records payloads, or fails like a lost broker."""

    def __init__(self) -> None:
        self.published: list[bytes] = []
        self.down = False

    async def publish(self, topic, payload, **_):
        if self.down:
            raise BrokerError("not connected")
        self.published.append(payload)


def final(ledger, event_id):
    ledger.claim(
        event_id=event_id,
        type_="sale",
        terminal_id="T1",
        printer_id="p",
        occurred_at=1.0,
        received_at=1.0,
        deadline=31.0,
        status="opened",
    )


async def test_resend_skips_queued_and_still_sensing(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        link = RecordingLink()
        acks = AckPublisher(link, Topics("t"), ledger)
        for event_id in ("queued", "sensing", "lost"):
            final(ledger, event_id)
        acks.put(Ack(event_id="queued", status=AckStatus.OPENED))
        await acks.resend_unacked(skip={"sensing"})
        await acks.flush()
        ids = sorted(p.split(b'"')[3].decode() for p in link.published)
        assert ids == ["lost", "queued"]
        assert ledger.unacked()[0].event_id == "sensing"


async def test_ack_failed_while_down_is_resent_once_after_reconnect(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        link = RecordingLink()
        acks = AckPublisher(link, Topics("t"), ledger)
        final(ledger, "e1")
        link.down = True
        acks.put(Ack(event_id="e1", status=AckStatus.OPENED))
        await acks.flush()
        assert link.published == []
        link.down = False
        await acks.resend_unacked()
        await acks.resend_unacked()  # a second reconnect before the queue drained
        await acks.flush()
        assert len(link.published) == 1
        assert ledger.unacked() == []


class GatedLink(RecordingLink):
    """Publishes wait at a gate, as they would for the broker's PUBACK."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = 0
        self.order: list[bytes] = []

    async def publish(self, topic, payload, **kw):
        self.order.append(payload)  # handed to the client, in this order
        self.waiting += 1
        await self.gate.wait()
        self.waiting -= 1
        await super().publish(topic, payload, **kw)


async def acks_in_flight(tmp_path, window):
    """Five final events' acks put while the broker holds every PUBACK."""
    with Ledger.open(tmp_path / "l.db") as ledger:
        link = GatedLink()
        acks = AckPublisher(link, Topics("t"), ledger, window=window)
        ids = [f"e{i}" for i in range(5)]
        for event_id in ids:
            final(ledger, event_id)
            acks.put(Ack(event_id=event_id, status=AckStatus.OPENED))
        runner = asyncio.create_task(acks.run())
        await eventually(lambda: link.waiting == min(window, 5))
        held = link.waiting
        flushing = asyncio.create_task(acks.flush())
        link.gate.set()
        await flushing
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        sent = [p.split(b'"')[3].decode() for p in link.order]
        return held, acks.most_in_flight, sent, ids, ledger.unacked()


async def test_acks_wait_for_their_pubacks_together_in_queue_order(tmp_path):
    held, most, sent, ids, unacked = await acks_in_flight(tmp_path, window=4)
    assert held == most == 4  # as many on their way at once as the window allows
    assert sent == ids  # handed to the client in queue order
    assert unacked == []  # flush() waited for every one in flight, and each was marked


async def test_negative_control_a_window_of_one_holds_one_at_a_time(tmp_path):
    held, most, sent, ids, unacked = await acks_in_flight(tmp_path, window=1)
    assert held == most == 1
    assert (sent, unacked) == (ids, [])


async def test_a_full_ack_queue_holds_the_next_message_until_an_ack_leaves(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        link = GatedLink()
        acks = AckPublisher(link, Topics("t"), ledger, window=1, queue_size=2)
        # Negative control: with room in the queue, intake does not wait.
        await asyncio.wait_for(acks.wait_room(), 5)
        for event_id in ("e0", "e1"):
            final(ledger, event_id)
            acks.put(Ack(event_id=event_id, status=AckStatus.OPENED))
        waiting = asyncio.create_task(acks.wait_room())
        for _ in range(5):
            await asyncio.sleep(0)  # loop turns, not time: nothing can free a place yet
        assert not waiting.done()  # full: the next message stays with the broker
        runner = asyncio.create_task(acks.run())
        await asyncio.wait_for(waiting, 5)  # e0 left the queue for the broker
        assert not acks.queue.full()
        link.gate.set()
        await acks.flush()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        assert ledger.unacked() == []
