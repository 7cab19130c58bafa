"""Bounded waits for tests: a test that fails fails, it never hangs.

Waits are on a condition, never a fixed sleep; `BOUND` is the bound of
waits that should end much sooner.
"""

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

BOUND = 20.0


async def poll(
    predicate: Callable[[], Any], what: str, timeout: float = BOUND, interval: float = 0.005
) -> Any:
    """The first truthy value of `predicate()` (sync or async); fail after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


async def bounded(awaitable: Awaitable[Any], what: str, timeout: float = BOUND) -> Any:
    """What `awaitable` gives; fail if it does not finish within `timeout`."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        raise AssertionError(f"{what} did not finish within {timeout} s") from None
