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

    async def __aenter__(self) -> None:
        if self._exc is not None:
            raise self._exc
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)

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
        if exc_type is asyncio.CancelledError and self._exc is not None and task.uncancel() == 0:
            raise type(self._exc)(*self._exc.args)


__all__ = ["KillSwitch"]
