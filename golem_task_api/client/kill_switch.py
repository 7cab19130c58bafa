"""Interrupt calls in flight with an exception, from anywhere (e.g. shutdown)."""

import asyncio
from types import TracebackType


class KillSwitch:
    """`async with switch:` blocks are cancelled, and raise, once tripped."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()
        self._exc: BaseException | None = None

    @property
    def tripped(self) -> bool:
        return self._exc is not None

    def trip(self, exc: BaseException) -> None:
        if self._exc is not None:
            return
        self._exc = exc
        for task in self._tasks:
            task.cancel()

    # enter/cancelled/leave are `async with switch:` without its two extra
    # coroutines, for the clients' hot path (AppClient._call):
    #     task = switch.enter()
    #     try: ... except asyncio.CancelledError: switch.cancelled(task); raise
    #     finally: switch.leave(task)

    def enter(self) -> "asyncio.Task[object]":
        """Raise the switch's exception if tripped, else register the current task."""
        if self._exc is not None:
            raise self._exc
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        return task

    def cancelled(self, task: "asyncio.Task[object]") -> None:
        """`task` got a CancelledError: if it was our cancel, raise our exception."""
        if self._exc is not None and task.uncancel() == 0:
            raise type(self._exc)(*self._exc.args)

    def leave(self, task: "asyncio.Task[object]") -> None:
        self._tasks.discard(task)

    async def __aenter__(self) -> None:
        self.enter()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.discard(task)
        # Our cancel, not the caller's: turn it into the switch's exception.
        if exc_type is asyncio.CancelledError:
            self.cancelled(task)

__all__ = ["KillSwitch"]
