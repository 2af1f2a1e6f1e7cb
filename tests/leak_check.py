"""Fail a test that leaves asyncio tasks, non-daemon threads or open sockets behind.

Per test, the state when its function-scoped fixtures start (session and module fixtures,
brokers among them, already set up) is compared with the state after they are torn down,
before its event loop is closed (the loop's runner is set up first, so torn down last). A
resource that a factory fixture hands out during the test and closes at teardown is not a
leak. Closing is often finished a few loop iterations later (a transport closes its socket
in a callback), so the loop runs until the difference is gone, for `GRACE_S` at most.

Registered by tests/conftest.py; run alone with `-p tests.leak_check`.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

GRACE_S = 2.0
RUNNER = "_function_scoped_runner"  # pytest-asyncio's per-test event loop runner
# The event loop's default executor (asyncio.to_thread): its threads are the loop's, and
# are joined when the runner closes the loop, after this check.
LOOP_EXECUTOR_PREFIX = "asyncio_"


@dataclass(frozen=True)
class Snapshot:
    """What a test could leave behind, at one moment."""

    tasks: frozenset[asyncio.Task[object]]
    threads: frozenset[threading.Thread]
    sockets: frozenset[str]  # /proc/self/fd targets: "socket:[inode]"

    def minus(self, before: Snapshot) -> Snapshot:
        """What is here now and was not `before`."""
        return Snapshot(
            self.tasks - before.tasks,
            self.threads - before.threads,
            self.sockets - before.sockets,
        )

    def __bool__(self) -> bool:
        return bool(self.tasks or self.threads or self.sockets)


def socket_fds() -> dict[str, int]:
    """Open sockets of this process: their "socket:[inode]" name and one fd each."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # closed between the listing and the readlink (the listing's own fd)
            continue
        if target.startswith("socket:"):
            found[target] = int(name)
    return found


def snapshot(loop: asyncio.AbstractEventLoop | None) -> Snapshot:
    """Pending tasks of `loop`, live non-daemon threads, open sockets."""
    tasks = asyncio.all_tasks(loop) if loop is not None and not loop.is_closed() else set()
    threads = {
        t
        for t in threading.enumerate()
        if t.is_alive()
        and not t.daemon
        and t is not threading.main_thread()
        and not t.name.startswith(LOOP_EXECUTOR_PREFIX)
    }
    return Snapshot(frozenset(tasks), frozenset(threads), frozenset(socket_fds()))


def settle(
    loop: asyncio.AbstractEventLoop | None, before: Snapshot, grace: float = GRACE_S
) -> Snapshot:
    """What is left over compared with `before`, once closing in progress had `grace` to end."""
    left = snapshot(loop).minus(before)
    if not left:
        return left
    gc.collect()  # an unreferenced socket in a cycle is closed here, not at a random later gc
    deadline = time.monotonic() + grace
    while (left := snapshot(loop).minus(before)) and time.monotonic() < deadline:
        if loop is not None and not loop.is_closed() and not loop.is_running():
            loop.run_until_complete(asyncio.sleep(0.01))  # run the pending close callbacks
        else:
            time.sleep(0.01)  # polling: what is left closes in other threads
    return left


def describe(left: Snapshot) -> str:
    """One line per leaked task, thread and socket, naming what each is."""
    lines = [f"task {t.get_name()}: {t.get_coro()!r}" for t in left.tasks]
    lines += [f"thread {t.name} (target {getattr(t, '_target', None)!r})" for t in left.threads]
    fds = socket_fds()
    lines += [f"{name} on fd {fds.get(name)}: {_addresses(fds.get(name))}" for name in left.sockets]
    return "\n".join(sorted(lines))


def _addresses(fd: int | None) -> str:
    if fd is None:
        return "closed meanwhile"
    try:
        dup = socket.socket(fileno=os.dup(fd))
    except OSError as exc:
        return f"unreadable ({exc})"
    with dup:
        try:
            peer = dup.getpeername()
        except OSError:
            peer = None
        return f"{dup.family.name} {dup.type.name} {dup.getsockname()!r} -> {peer!r}"


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test when its tasks, threads or sockets outlive its fixtures."""
    loop = None
    if RUNNER in request.fixturenames:
        loop = request.getfixturevalue(RUNNER).get_loop()
    before = snapshot(loop)
    yield
    left = settle(loop, before, float(request.config.getini("leak_grace_s")))
    if left:
        pytest.fail(f"left behind by the test or its fixtures:\n{describe(left)}", pytrace=False)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "leak_grace_s", "how long closing in progress may take after a test", default=str(GRACE_S)
    )
