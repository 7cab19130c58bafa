"""Blocking work off the event loop, stopped with the server (original API).

Apps call `Executor.run(func, *args)` for CPU-bound work so that the server
keeps answering (health, progress, Shutdown) while it runs, and check
`Executor.is_shutting_down()` in long loops to stop early.

The original kept one process-wide flag. Here each server's event loop has
its own, so a provider and a requestor served by one process (as in tests
with `InlineTaskApiService`) do not stop each other's work.
"""

import asyncio
import contextvars
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The flag of the server that started the work, seen from its worker thread.
_thread_flag: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "golem_task_api_executor_flag", default=None
)


def _loop_or_none() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Executor:
    _flags: ClassVar[
        "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, threading.Event]"
    ] = weakref.WeakKeyDictionary()
    _default_flag: ClassVar[threading.Event] = threading.Event()
    _tasks: ClassVar[set["asyncio.Future[Any]"]] = set()

    @classmethod
    def _flag(cls) -> threading.Event:
        flag = _thread_flag.get()
        if flag is not None:
            return flag
        loop = _loop_or_none()
        if loop is None:
            return cls._default_flag
        flag = cls._flags.get(loop)
        if flag is None:
            flag = cls._flags[loop] = threading.Event()
        return flag

    @classmethod
    def initialize(cls) -> None:
        cls._flag().clear()

    @classmethod
    def is_shutting_down(cls) -> bool:
        return cls._flag().is_set()

    @classmethod
    def request_shutdown(cls) -> None:
        cls._flag().set()

    @classmethod
    async def run(cls, func: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """`func(*args, **kwargs)` in a worker thread; None once shutting down.

        The caller's context variables (e.g. the progress reporter) are
        carried into the thread.
        """
        flag = cls._flag()
        if flag.is_set():
            return None
        context = contextvars.copy_context()

        def call() -> T:
            _thread_flag.set(flag)
            return func(*args, **kwargs)

        future = asyncio.get_running_loop().run_in_executor(None, context.run, call)
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
