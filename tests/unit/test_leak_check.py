"""The leak check fails a test that leaves a task, thread or socket behind (negative controls)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from tests.leak_check import settle, snapshot

ROOT = Path(__file__).resolve().parents[2]

LEAKY_TESTS = """
import asyncio, socket, threading

KEPT = []

async def test_leaks_a_task():
    KEPT.append(asyncio.create_task(asyncio.Event().wait(), name="forgotten"))

def test_leaks_a_socket():
    KEPT.append(socket.socket())

async def test_leaks_a_connection():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    KEPT.append(server)
    KEPT.append(await asyncio.open_connection("127.0.0.1", port))

async def test_closes_what_it_opens():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()  # closed by the transport a loop iteration later: not a leak
    server.close()
    task = asyncio.create_task(asyncio.Event().wait())
    task.cancel()  # finishes on the next iteration: not a leak
"""


def run_inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.RunResult:
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    env_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", env_path)
    return pytester.runpytest_subprocess(
        "-p", "tests.leak_check", "-p", "no:cacheprovider", "-o", "leak_grace_s=0.2"
    )


def test_a_leaked_task_socket_or_connection_fails_its_test(pytester, monkeypatch):
    result = run_inner(pytester, monkeypatch)
    result.assert_outcomes(passed=4, errors=3)
    out = result.stdout.str()
    assert "task forgotten" in out
    assert "AF_INET SOCK_STREAM" in out
    assert "('127.0.0.1'," in out  # the leaked connection names its addresses


def test_a_leaked_thread_is_reported():
    stop = threading.Event()
    before = snapshot(None)
    thread = threading.Thread(target=stop.wait, name="leaky-worker")
    thread.start()
    try:
        left = settle(None, before, grace=0.05)
        assert left.threads == {thread}
    finally:
        stop.set()
        thread.join()
    assert not settle(None, before, grace=5)


def test_a_socket_closed_in_time_is_not_reported():
    before = snapshot(None)
    with socket.socket() as sock:
        assert settle(None, before, grace=0.05).sockets
        assert sock.fileno() >= 0
    assert not settle(None, before, grace=0.05)
