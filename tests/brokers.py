"""Real MQTT brokers for the interop and cluster tests: mosquitto, RabbitMQ (MQTT plugin) and
NATS (JetStream + MQTT listener), each its own process on free loopback ports with its own data
directory, killable with SIGKILL and restartable on the same ports and data.

Each class describes the broker's own facts (protocol levels, where retained messages are
delivered), never the agent's: the contract suite reads them to know what to expect.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import Mosquitto, free_port, wait_port

# Debian's rabbitmq-server wrapper insists on su'ing to the system user and the system
# service's directories; the script it wraps honours the RABBITMQ_* variables instead.
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


def _binary(name: str, *candidates: str) -> str:
    for candidate in (name, *candidates):
        found = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if found:
            return found
    pytest.fail(f"{name} is not installed: run .ci/run (it installs it from Debian)")


def mqtt_ready(port: int, timeout: float = 30.0) -> None:
    """Poll with a clean-session MQTT 3.1.1 CONNECT until the broker answers CONNACK 0.

    A listening port is not a working broker: NATS accepts on its MQTT port before the
    JetStream cluster has a meta leader, and refuses sessions until it has one.
    """
    client_id = b"ready-probe"
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
    connect = bytes([0x10, len(body)]) + body  # MQTT 3.1.1 §3.1
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 2) as sock:
                sock.settimeout(6)
                sock.sendall(connect)
                connack = sock.recv(4)
                if connack[:1] == b"\x20" and connack[3:4] == b"\x00":  # §3.2.2.3: accepted
                    sock.sendall(b"\xe0\x00")  # DISCONNECT
                    return
                last = f"CONNACK {connack.hex()}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise TimeoutError(f"broker on {port} not ready after {timeout} s: {last}")


@dataclass
class Quirks:
    """What a broker does differently, as observed (docs/brokers.md has the sources)."""

    # RabbitMQ 3.10 sends retained messages only to a subscription on the exact topic.
    retained_on_wildcard: bool = True
    protocols: tuple[str, ...] = ("5", "3.1.1")


class Process:
    """A broker process in its own session, so kill -9 takes its helpers with it."""

    name = "broker"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_timeout = 15.0
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self) -> None:
        log = (self.workdir / "stdout.log").open("ab")
        self.proc = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()
        try:
            wait_port(self.port, self.start_timeout)
        except TimeoutError:
            self.kill()
            tail = (self.workdir / "stdout.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} did not start:\n{tail}") from None

    def kill(self) -> None:
        """kill -9 of the whole process group: no goodbye, no final flush."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(15)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()
        self.restarts += 1


class Nats(Process):
    """nats-server with JetStream and its MQTT listener (MQTT 3.1.1 only)."""

    name = "nats"
    quirks = Quirks(protocols=("3.1.1",))

    def __init__(
        self,
        workdir: Path,
        *,
        server_name: str = "n1",
        cluster: str | None = None,
        routes: tuple[int, ...] = (),
        cluster_port: int | None = None,
        replicas: int = 1,
    ) -> None:
        super().__init__(workdir)
        self.server_name = server_name
        self.client_port = free_port()
        self.cluster_port = cluster_port
        conf = [
            f"server_name: {server_name}",
            f"listen: 127.0.0.1:{self.client_port}",
            f'jetstream {{ store_dir: "{workdir / "js"}" }}',
        ]
        if cluster is not None and cluster_port is not None:
            peers = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes)
            conf.append(
                f"cluster {{ name: {cluster}, listen: 127.0.0.1:{cluster_port}, "
                f"routes: [{peers}] }}"
            )
        # stream_replicas: the MQTT sessions, retained messages and QoS 1 queues live in
        # JetStream streams; 3 replicas survive the loss of one node (NATS MQTT docs).
        conf.append(f"mqtt {{ listen: 127.0.0.1:{self.port}, stream_replicas: {replicas} }}")
        self.conf = workdir / "nats.conf"
        self.conf.write_text("\n".join(conf) + "\n")

    def command(self) -> list[str]:
        return [_binary("nats-server", "/usr/sbin/nats-server"), "-c", str(self.conf)]


class RabbitMQ(Process):
    """RabbitMQ 3.x as its own Erlang node with the MQTT plugin (MQTT 3.1.1 in 3.10)."""

    name = "rabbitmq"
    quirks = Quirks(retained_on_wildcard=False, protocols=("3.1.1",))

    def __init__(self, workdir: Path, *, node: str = "drawer", epmd_port: int | None = None):
        super().__init__(workdir)
        self.start_timeout = 90.0
        self.node = f"{node}-{self.port}@localhost"
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.epmd_port = epmd_port or free_port()
        self.epmd: subprocess.Popen[bytes] | None = None
        (workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "mqtt.allow_anonymous = true\n"
            "mqtt.vhost = /\n"
            "mqtt.exchange = amq.topic\n"
        )
        (workdir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        cookie = workdir / ".erlang.cookie"
        cookie.write_text("DRAWERAGENTTESTCOOKIE")
        cookie.chmod(0o400)

    def env(self) -> dict[str, str]:
        w = self.workdir
        return {
            **os.environ,
            "HOME": str(w),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(w / "mnesia"),
            "RABBITMQ_LOG_BASE": str(w / "log"),
            "RABBITMQ_CONFIG_FILE": str(w / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(w / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(w / "rabbitmq.pid"),
        }

    def command(self) -> list[str]:
        if not os.access(RABBITMQ_SERVER, os.X_OK):
            pytest.fail("rabbitmq-server is not installed: run .ci/run")
        return [RABBITMQ_SERVER]

    def start(self) -> None:
        # Our own epmd on our own port, so this node neither meets nor outlives the system's.
        if self.epmd is None:
            self.epmd = subprocess.Popen(
                [_binary("epmd", "/usr/bin/epmd"), "-port", str(self.epmd_port)],
                env={**os.environ, "ERL_EPMD_ADDRESS": "127.0.0.1"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            wait_port(self.epmd_port)
        super().start()

    def stop(self) -> None:
        super().stop()
        if self.epmd is not None:
            self.epmd.kill()
            self.epmd.wait()
            self.epmd = None


class MosquittoBroker(Process):
    """The existing mosquitto fixture, behind the same interface."""

    name = "mosquitto"
    quirks = Quirks()

    def __init__(self, workdir: Path) -> None:
        self.inner = Mosquitto(workdir)
        self.workdir = workdir
        self.port = self.inner.port
        self.restarts = 0

    @property  # type: ignore[override]
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.inner.proc

    def start(self) -> None:
        self.inner.start()

    def kill(self) -> None:
        self.inner.kill()

    def stop(self) -> None:
        self.inner.stop()


@dataclass
class Target:
    """One broker and the MQTT protocol level the agent speaks to it."""

    id: str
    broker: Process
    protocol: str
    events: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.broker.url

    @property
    def port(self) -> int:
        return self.broker.port


class NatsCluster:
    """Three nats-server nodes routed to each other; the MQTT streams have 3 replicas."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        cluster_ports = [free_port() for _ in range(size)]
        self.nodes = [
            Nats(
                workdir / f"n{i}",
                server_name=f"n{i}",
                cluster="drawer",
                cluster_port=cluster_ports[i],
                routes=tuple(p for j, p in enumerate(cluster_ports) if j != i),
                replicas=size,
            )
            for i in range(size)
        ]

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self) -> None:
        # Started together: each waits for its routes, and JetStream needs a quorum.
        for node in self.nodes:
            node.start_timeout = 30.0
        procs = []
        for node in self.nodes:
            log = (node.workdir / "stdout.log").open("ab")
            node.proc = subprocess.Popen(
                node.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=node.workdir,
                start_new_session=True,
            )
            log.close()
            procs.append(node)
        for node in procs:
            mqtt_ready(node.port, node.start_timeout)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class RabbitCluster:
    """RabbitMQ nodes on one epmd, joined with `rabbitmqctl join_cluster`.

    `mirrored`: a policy mirrors the MQTT plugin's session queues (`mqtt-subscription-…`) to
    every node (classic mirrored queues, `ha-mode: all`, RabbitMQ 3.x). Without it a session
    queue lives on the node it was declared on, and another node refuses the session while
    that node is down ("home node … of durable queue … is down or inaccessible", seen with
    3.10.8); quorum queues on two nodes lose their majority with one (docs/brokers.md).
    """

    def __init__(self, workdir: Path, size: int = 2, *, mirrored: bool = True) -> None:
        epmd = free_port()
        self.nodes = [
            RabbitMQ(workdir / f"r{i}", node=f"r{i}", epmd_port=epmd) for i in range(size)
        ]
        self.mirrored = mirrored

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def ctl(self, node: RabbitMQ, *args: str) -> str:
        done = subprocess.run(
            [RABBITMQCTL, "-n", node.node, *args],
            env=node.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def start(self) -> None:
        first, *others = self.nodes
        for node in self.nodes:
            node.start()  # the second node's own epmd exits at once: the port is taken
            mqtt_ready(node.port, 60)
        for node in others:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.node)
            self.ctl(node, "start_app")
            mqtt_ready(node.port, 60)
        if self.mirrored:
            policy = '{"ha-mode":"all","ha-sync-mode":"automatic"}'
            self.ctl(first, "set_policy", "--apply-to", "queues", "mqtt-sessions",
                     "^mqtt-subscription-", policy)  # fmt: skip

    def stop(self) -> None:
        for node in reversed(self.nodes):  # the first node owns the shared epmd
            node.stop()
