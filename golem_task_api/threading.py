"""Blocking work off the event loop, stopped with the server (original API).

Apps call `Executor.run(func, *args)` for CPU-bound work so that the server
keeps answering (health, progress, Shutdown) while it runs, and check
`Executor.is_shutting_down()` in long loops to stop early.
"""

import asyncio
import contextvars
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Executor:
    _shutting_down: ClassVar[threading.Event] = threading.Event()
    _tasks: ClassVar[set["asyncio.Future[Any]"]] = set()

    @classmethod
    def initialize(cls) -> None:
        cls._shutting_down.clear()

    @classmethod
    def is_shutting_down(cls) -> bool:
        return cls._shutting_down.is_set()

    @classmethod
    def request_shutdown(cls) -> None:
        cls._shutting_down.set()

    @classmethod
    async def run(cls, func: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """`func(*args, **kwargs)` in a worker thread; None once shutting down.

        The caller's context variables (e.g. the progress reporter) are
        carried into the thread.
        """
        if cls.is_shutting_down():
            return None
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
        future = loop.run_in_executor(None, call)
        cls._tasks.add(future)
        try:
            return await future
        finally:
            cls._tasks.discard(future)

    @classmethod
    async def wait_for_shutdown(cls, timeout: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        pending = [t for t in cls._tasks if not t.done() and t.get_loop() is loop]
        if not pending:
            return
        _done, still = await asyncio.wait(pending, timeout=timeout)
        if still:
            logger.warning("%d blocking calls still running after %.1f s", len(still), timeout)


__all__ = ["Executor"]
