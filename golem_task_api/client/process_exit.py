"""Waiting for a child process to exit, and only for that.

On Python 3.11, `asyncio.subprocess.Process.wait()` also waits until every
pipe of the child is closed, which a grandchild that inherited stdout may
never do: a launcher must learn of the exit itself, kill what is left of the
process group, and only then wait for the pipes.
"""

import asyncio
import os
from collections.abc import Callable

_POLL_START = 0.005
_POLL_MAX = 0.1


async def wait_for_exit(pid: int, has_exited: Callable[[], bool]) -> None:
    """Return once `pid` has exited (a zombie, or reaped by the child watcher).

    `has_exited()` tells whether the exit is already known (e.g. a return
    code was recorded), which also covers a pid reaped before we look.
    """
    if has_exited():
        return
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already reaped
    except (AttributeError, OSError):
        await _poll(has_exited)
        return
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(fd, on_exit)
    try:
        await exited
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def _poll(has_exited: Callable[[], bool]) -> None:
    """Without pidfds (not Linux): look at the return code, backing off."""
    delay = _POLL_START
    while not has_exited():
        await asyncio.sleep(delay)
        delay = min(delay * 2, _POLL_MAX)


__all__ = ["wait_for_exit"]
