"""Helpers for the deployment-artefact tests: paths, mosquitto configs, MQTT clients.

Everything here talks to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
DEPLOY = REPO / "deploy"
DOCKERFILE = DOCKER / "Dockerfile"

CONNECT_TIMEOUT_S = 5.0
DELIVERY_TIMEOUT_S = 5.0
# After a control message has arrived, how long we keep listening for a message
# that must never arrive. Mosquitto delivers in publish order per client, so a
# forbidden message published before the control would already be here.
SILENCE_S = 0.5


def find_tool(name: str) -> str | None:
    """A tool on PATH, in the running interpreter's bin dir, or in /usr/sbin."""
    found = shutil.which(name)
    if found:
        return found
    for folder in (Path(sys.executable).parent, Path("/usr/sbin"), Path("/usr/local/sbin")):
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- mosquitto configuration files -------------------------------------------------------------


def conf_lines(text: str) -> list[tuple[str, str]]:
    """(option, value) pairs of a mosquitto.conf, comments and blank lines dropped."""
    pairs = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        option, _, value = line.partition(" ")
        pairs.append((option, value.strip()))
    return pairs


def rewrite_conf(
    text: str, *, port: int, map_path: Callable[[str, str], str], run_as_root: bool
) -> str:
    """Make a config runnable in a test without changing its meaning.

    Only three things change: each ``listener`` is bound to ``port`` on 127.0.0.1 (a config
    with more than one listener is refused so that nothing is silently left on a public
    port), every absolute path goes through ``map_path(option, path)``, and ``user root``
    is added when the tests run as root (otherwise mosquitto drops privileges and cannot
    read the 0600 key). ``log_dest stdout`` becomes a log file so failures can be shown.
    """
    out = []
    listeners = 0
    for option, value in conf_lines(text):
        if option == "listener":
            listeners += 1
            out.append(f"listener {port} 127.0.0.1")
        elif option == "log_dest":
            kind, _, path = value.partition(" ")
            if kind in {"stdout", "stderr", "syslog"}:
                out.append(f"log_dest file {map_path('log_dest', '/broker.log')}")
            else:
                assert kind == "file", value
                out.append(f"log_dest file {map_path('log_dest', path.strip())}")
        elif value.startswith("/"):
            out.append(f"{option} {map_path(option, value)}")
        elif option == "user":
            continue
        else:
            out.append(f"{option} {value}")
    assert listeners == 1, f"expected exactly one listener, found {listeners}"
    if run_as_root:
        out.insert(0, "user root")
    return "\n".join(out) + "\n"


@dataclass
class Broker:
    port: int
    log: Path
    proc: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"


@contextmanager
def run_broker(mosquitto: str, conf: Path, port: int, log: Path) -> Iterator[Broker]:
    proc = subprocess.Popen(
        [mosquitto, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    broker = Broker(port=port, log=log, proc=proc)
    try:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                raise AssertionError(
                    f"mosquitto exited with {proc.returncode}:\n{output}\n{broker.log_text()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"mosquitto did not listen on {port}:\n{broker.log_text()}"
                    ) from None
                time.sleep(0.05)
        yield broker
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


# --- TLS material ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def make_certs(folder: Path) -> Certs:
    """Self-signed EC CA and a server cert for 127.0.0.1 (LIBRARIES.md §6.1)."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "30", "-subj", "/CN=drawer-agent test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
        "-keyout", "ca.key", "-out", "ca.crt",
    )  # fmt: skip
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr",
    )  # fmt: skip
    (folder / "server.ext").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "authorityKeyIdentifier=keyid,issuer\n"
        "subjectKeyIdentifier=hash\n"
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "30", "-extfile", "server.ext", "-out", "server.crt",
    )  # fmt: skip
    (folder / "server.key").chmod(0o600)
    return Certs(
        ca=folder / "ca.crt",
        ca_key=folder / "ca.key",
        server_cert=folder / "server.crt",
        server_key=folder / "server.key",
    )


# --- MQTT clients ------------------------------------------------------------------------------


class ConnectRefused(Exception):
    """The broker answered CONNECT with a failure reason code, or closed the connection."""


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class TestClient:
    """A paho client run on its own thread, with queues instead of callbacks."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        port: int,
        *,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        ca: Path | None = None,
    ) -> None:
        self.messages: queue.Queue[Received] = queue.Queue()
        self._connack: queue.Queue[Any] = queue.Queue()
        self._subacks: queue.Queue[list[Any]] = queue.Queue()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
        )
        if ca is not None:
            client.tls_set(ca_certs=str(ca))  # verifies the chain and the host name
        if username is not None:
            client.username_pw_set(username, password)
        client.on_connect = lambda _c, _u, _f, rc, _p: self._connack.put(rc)
        client.on_disconnect = lambda _c, _u, _f, rc, _p: self._connack.put(("closed", rc))
        client.on_subscribe = lambda _c, _u, _m, rcs, _p: self._subacks.put(list(rcs))
        client.on_message = lambda _c, _u, msg: self.messages.put(
            Received(msg.topic, msg.payload, bool(msg.retain))
        )
        self._client = client
        client.connect("127.0.0.1", port, keepalive=30)
        client.loop_start()
        try:
            rc = self._connack.get(timeout=CONNECT_TIMEOUT_S)
        except queue.Empty:
            self.close()
            raise ConnectRefused("no CONNACK") from None
        if isinstance(rc, tuple) or rc.is_failure:
            self.close()
            raise ConnectRefused(str(rc))

    def subscribe(self, *topics: str) -> list[Any]:
        self._client.subscribe([(topic, 1) for topic in topics])
        return self._subacks.get(timeout=DELIVERY_TIMEOUT_S)

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=DELIVERY_TIMEOUT_S)
        assert info.is_published(), f"no PUBACK for {topic}"

    def expect(
        self, topic: str, timeout: float = DELIVERY_TIMEOUT_S
    ) -> tuple[Received, list[Received]]:
        """Wait for a message on ``topic``; also return everything received before it."""
        before: list[Received] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                message = self.messages.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                raise AssertionError(
                    f"nothing on {topic} within {timeout} s; got {before}"
                ) from None
            if message.topic == topic:
                return message, before
            before.append(message)

    def drain(self, wait: float) -> list[Received]:
        """Everything that arrives within ``wait`` seconds."""
        got = []
        deadline = time.monotonic() + wait
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                got.append(self.messages.get(timeout=remaining))
            except queue.Empty:
                break
        return got

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def scrubbed_env() -> dict[str, str]:
    """The environment without DRAWER_AGENT_* overrides that could change a config."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DRAWER_AGENT_")}


# --- Dockerfile parsing ------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions grouped by stage; continuation lines joined, comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continuation are ignored by Docker
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
    assert not pending, "the Dockerfile ends inside a continuation line"

    stages: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name))
        elif instruction.keyword == "ARG" and not stages:
            continue
        else:
            assert stages, f"line {instruction.line}: {instruction.keyword} before FROM"
            stages[-1].instructions.append(instruction)
    return stages


def exec_form(instruction: Instruction) -> list[str]:
    """The JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD, or fail."""
    value = json.loads(instruction.args)
    assert isinstance(value, list), instruction
    assert all(isinstance(v, str) for v in value), instruction
    return value
