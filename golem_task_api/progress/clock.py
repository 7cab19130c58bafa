"""Time as the progress streams see it, injectable so that tests need no sleeps.

`monotonic()` drives throttling and timers; `wall_ns()` stamps events.
"""

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def wall_ns(self) -> int: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Cancellable:
        """Run `callback` on the running loop once monotonic() >= when."""
        ...


class LoopClock:
    """The running event loop's clock (monotonic) and the system's wall clock."""

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def wall_ns(self) -> int:
        return time.time_ns()

    def call_at(self, when: float, callback: Callable[[], None]) -> Cancellable:
        return asyncio.get_running_loop().call_at(when, callback)


class _Timer:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told to, for deterministic tests.

    Timers that come due run when `advance()` passes them (or at once, on the
    loop, if already due when set).
    """

    def __init__(self, start: float = 1000.0, wall_ns: int = 1_700_000_000 * 10**9) -> None:
        self._now = start
        self._wall_offset = wall_ns - int(start * 1e9)
        self._timers: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def wall_ns(self) -> int:
        return int(self._now * 1e9) + self._wall_offset

    def call_at(self, when: float, callback: Callable[[], None]) -> Cancellable:
        if when <= self._now:
            return asyncio.get_running_loop().call_soon(callback)
        timer = _Timer(callback)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward, running every timer that comes due, in order."""
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            if not timer.cancelled:
                timer.callback()
        self._now = target

    @property
    def pending_timers(self) -> int:
        return sum(1 for _, _, t in self._timers if not t.cancelled)


__all__ = ["Cancellable", "Clock", "LoopClock", "ManualClock"]
