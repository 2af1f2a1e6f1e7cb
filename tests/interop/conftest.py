"""One broker process per kind for the whole session (RabbitMQ alone takes ~9 s to boot)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.brokers import MosquittoBroker, Nats, Process, RabbitMQ, Target
from tests.faults.harness import AgentProcess

# (id, broker kind, MQTT protocol level the agent uses): mosquitto speaks both levels,
# RabbitMQ 3.10's plugin and NATS 2.9's listener speak 3.1.1 only.
TARGETS = [
    ("mosquitto-5", "mosquitto", "5"),
    ("mosquitto-3.1.1", "mosquitto", "3.1.1"),
    ("rabbitmq", "rabbitmq", "3.1.1"),
    ("nats", "nats", "3.1.1"),
]
KINDS: dict[str, type[Process]] = {"mosquitto": MosquittoBroker, "rabbitmq": RabbitMQ, "nats": Nats}


@pytest.fixture(scope="session")
def broker_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Process]]:
    """Started lazily, once each, torn down at the end of the session."""
    started: dict[str, Process] = {}

    class Lazy(dict[str, Process]):
        def __missing__(self, kind: str) -> Process:
            broker = KINDS[kind](tmp_path_factory.mktemp(kind))
            broker.start()
            started[kind] = broker
            self[kind] = broker
            return broker

    yield Lazy()
    for broker in started.values():
        broker.stop()


@pytest.fixture(params=TARGETS, ids=[t[0] for t in TARGETS])
def target(request: pytest.FixtureRequest, broker_processes: dict[str, Process]) -> Target:
    ident, kind, protocol = request.param
    broker = broker_processes[kind]
    if broker.proc is None:  # a test that killed it failed before restarting it
        broker.start()
    return Target(ident, broker, protocol)


@pytest.fixture
async def agent_proc() -> AsyncIterator[list[AgentProcess]]:
    procs: list[AgentProcess] = []
    yield procs
    for proc in procs:
        await proc.stop()
