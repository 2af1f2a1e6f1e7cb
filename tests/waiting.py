"""Waiting in tests on the condition itself, never on a guessed duration."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.01


async def eventually(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    what: str = "the condition",
) -> T:
    """Poll `predicate` (plain or async) until it returns something truthy, and return that.

    For state that changes without an event to wait on (another process, a socket, a log).
    AssertionError naming `what` after `timeout` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(POLL_S)


async def loop_turn() -> None:
    """Return once every callback already queued in the event loop has run.

    The loop runs ready callbacks in the order they were queued, so a marker queued now
    runs after them: a task created before this call has reached its first await.
    """
    loop = asyncio.get_running_loop()
    marker = loop.create_future()
    loop.call_soon(marker.set_result, None)
    await marker
