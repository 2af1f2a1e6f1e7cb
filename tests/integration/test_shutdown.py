"""Stopping the agent's tasks: a task that shrugs off one cancel still ends (cancel_all)."""

import asyncio
import logging

from agent.service.app import cancel_all
from tests.waiting import eventually


def shrugging(swallows: int, swallowed: asyncio.Event) -> asyncio.Task[None]:
    """A task that survives its first `swallows` cancels, as one in Python 3.11's
    `asyncio.wait_for` does when the cancel meets its inner future's result (gh-86296)."""

    async def body() -> None:
        left = swallows
        while True:
            try:
                await asyncio.Event().wait()  # the next PUBACK, which never comes
            except asyncio.CancelledError:
                if left == 0:
                    raise
                left -= 1
                swallowed.set()

    return asyncio.create_task(body(), name="shrugging")


async def test_a_task_that_swallowed_a_cancel_is_cancelled_again():
    swallowed = asyncio.Event()
    task = shrugging(1, swallowed)
    await asyncio.sleep(0)  # let it reach its wait
    await cancel_all([task], budget_s=5.0)
    assert swallowed.is_set()
    assert task.cancelled()


async def test_negative_control_one_cancel_leaves_it_running():
    swallowed = asyncio.Event()
    task = shrugging(1, swallowed)
    await asyncio.sleep(0)
    task.cancel()
    await eventually(swallowed.is_set)
    await asyncio.sleep(0)  # back in its wait: nothing will ever end it by itself
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


async def test_a_task_that_will_not_stop_is_named_and_left_after_the_budget(caplog):
    swallowed = asyncio.Event()
    task = shrugging(1000, swallowed)  # more cancels than a 0.5 s budget gives
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="agent.service.app"):
        await cancel_all([task], budget_s=0.5)
    assert not task.done()  # cancel_all returned: it gave up on it instead of hanging
    assert "task shrugging did not stop when cancelled (at " in caplog.text
    assert "test_shutdown.py" in caplog.text
    while not task.done():  # the test's own cleanup
        task.cancel()
        await asyncio.wait([task], timeout=0)
