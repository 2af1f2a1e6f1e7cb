"""Shared fixtures: a real mosquitto on a free loopback port, settings and a running agent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from agent.core.commands import CommandSet
from agent.core.settings import Settings, validate
from agent.devtools.emulator import VirtualPrinterServer
from agent.service import app

# leak_check: no task, thread or socket outlives a test. pytester: the negative controls of
# the suite's own checks run pytest on a deliberately bad test.
pytest_plugins = ("tests.leak_check", "pytester")

T = TypeVar("T")

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Poll until something accepts on host:port (external process start-up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s")


def mosquitto_binary() -> str:
    for candidate in MOSQUITTO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    pytest.fail("mosquitto is not installed: run .ci/run, or apt-get install -y mosquitto")


class Mosquitto:
    """A real mosquitto process with persistence that survives kill -9 (autosave on change)."""

    def __init__(self, workdir: Path, extra: str = "") -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"{user}per_listener_settings false\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {workdir / 'data'}/\n"
            "autosave_on_changes true\n"
            "autosave_interval 1\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 100\n"
            f"log_dest file {workdir / 'broker.log'}\n"
            f"listener {self.port} 127.0.0.1\n" + extra
        )

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_port(self.port)
        except TimeoutError:
            self.proc.kill()
            err = self.proc.communicate()[1].decode(errors="replace")
            raise RuntimeError(f"mosquitto did not start: {err}") from None

    def kill(self) -> None:
        """kill -9: no goodbye, no final save."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
async def printers() -> AsyncIterator[tuple[VirtualPrinterServer, VirtualPrinterServer]]:
    """Two virtual printers on loopback: `front` speaks ESC/POS, `back` Star Line."""
    async with (
        VirtualPrinterServer(command_set=CommandSet.ESCPOS, name="front") as front,
        VirtualPrinterServer(command_set=CommandSet.STAR_LINE, name="back") as back,
    ):
        yield front, back


def make_settings(
    tmp_path: Path,
    broker_port: int,
    printers: dict[str, dict[str, object]],
    terminals: dict[str, str],
    **sections: object,
) -> Settings:
    """Settings for a test agent: shop `t`, MQTT v5, HTTP on a free port, ledger in tmp_path."""
    raw: dict[str, object] = {
        "shop_id": "t",
        "mqtt": {"url": f"mqtt://127.0.0.1:{broker_port}"},
        "printers": printers,
        "terminals": terminals,
        "http": {"listen": "127.0.0.1:0"},
        "state": {"path": str(tmp_path / "ledger.db")},
        "dispatch": {"connect_timeout_s": 0.5, "write_timeout_s": 0.5},
    }
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(name), dict):
            raw[name] = {**raw[name], **value}  # type: ignore[dict-item]
        else:
            raw[name] = value
    return validate(raw, lambda p: Path(p).read_bytes())


@contextlib.asynccontextmanager
async def running_service(
    start: Callable[[Callable[[T], None]], Coroutine[object, object, object]],
    ready: Callable[[T], Awaitable[object]],
) -> AsyncIterator[T]:
    """Run `start(started)` in this loop until the block exits; yield what it started once ready.

    `start` is a service's run coroutine given its `started` callback; the yielded view's
    `stopping` event (when it has one) asks it to stop, else the task is cancelled.
    """
    started: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(start(started.set_result))
    try:
        await asyncio.wait({started, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises what stopped the service before it started
        view = started.result()
        await asyncio.wait_for(ready(view), 10)
        yield view
    finally:
        stopping = getattr(started.result(), "stopping", None) if started.done() else None
        if stopping is not None:
            stopping.set()
            await asyncio.wait_for(task, 10)
        else:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def running_agent(settings: Settings) -> contextlib.AbstractAsyncContextManager[app.Agent]:
    """Run the agent in this loop until the block exits; yields once it is subscribed."""
    return running_service(
        lambda started: app.run(settings, install_signals=False, started=started),
        lambda agent: agent.link.connected.wait(),
    )


class HangingPort:
    """A loopback port whose accept backlog is full, so a new connect hangs (SYN dropped)."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = int(self.listener.getsockname()[1])
        self.fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self.fillers.append(filler)

    def close(self) -> None:
        for sock in [*self.fillers, self.listener]:
            sock.close()


@pytest.fixture
def hanging_port() -> Iterator[HangingPort]:
    port = HangingPort()
    yield port
    port.close()
