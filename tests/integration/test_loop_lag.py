"""The agent says when its event loop was blocked: every deadline depends on it."""

import asyncio
import contextlib
import logging
import time

from agent.service.app import watch_loop_lag
from tests.waiting import eventually, loop_turn


async def test_a_blocked_event_loop_is_reported(caplog):
    caplog.set_level(logging.WARNING, logger="agent.service.app")
    task = asyncio.create_task(watch_loop_lag(period=0.02, warn_after=0.1))
    try:
        await loop_turn()  # the watcher has taken its first reading and waits for the next
        time.sleep(0.3)  # the blocking call under test, not a synchronisation
        lag = await eventually(
            lambda: [
                r.getMessage() for r in caplog.records if "event loop blocked" in r.getMessage()
            ],
            2,
            "the lag warning",
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert int(lag[0].split()[4]) >= 150
