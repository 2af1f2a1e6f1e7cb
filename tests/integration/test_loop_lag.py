"""The agent says when its event loop was blocked: every deadline depends on it."""


async def test_a_blocked_event_loop_is_reported(caplog):
    import asyncio
    import logging
    import time

    from agent.service.app import watch_loop_lag

    caplog.set_level(logging.WARNING, logger="agent.service.app")
    task = asyncio.create_task(watch_loop_lag(period=0.02, warn_after=0.1))
    await asyncio.sleep(0.05)
    time.sleep(0.3)  # the blocking call under test, not a synchronisation
    async with asyncio.timeout(2):
        while not any("event loop blocked" in r.getMessage() for r in caplog.records):
            await asyncio.sleep(0.01)
    task.cancel()
    lag = [r.getMessage() for r in caplog.records if "blocked" in r.getMessage()]
    assert lag and int(lag[0].split()[4]) >= 150
