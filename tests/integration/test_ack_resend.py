"""One message, one ack: resending unacked acks after a reconnect never doubles an ack."""

from agent.core.acks import Ack, AckStatus
from agent.core.errors import BrokerError
from agent.core.topics import Topics
from agent.io.ledger import Ledger
from agent.service.intake import AckPublisher


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
