"""A subscription read in the background, so that tests can ask what arrived."""

import asyncio
from collections.abc import AsyncIterator

from golem_task_api.progress import ProgressTracker, ProgressValue, Throttle, from_event
from golem_task_api.proto import golem_task_api_pb2 as pb

# A safety net against a hung test, never a way to wait for something.
DEADLINE = 10.0


async def settle() -> None:
    """Let every callback and task that is ready run (no time passes)."""
    for _ in range(50):
        await asyncio.sleep(0)


class Probe:
    def __init__(self, tracker: ProgressTracker, throttle: Throttle | None = None) -> None:
        self.events: list[pb.ProgressEvent] = []
        self.ended = False
        self._read = 0
        self._arrived = asyncio.Event()
        self.task = asyncio.ensure_future(self._run(tracker.subscribe(throttle)))

    async def _run(self, events: AsyncIterator[pb.ProgressEvent]) -> None:
        try:
            async for event in events:
                self.events.append(event)
                self._arrived.set()
        finally:
            self.ended = True
            self._arrived.set()

    async def next(self) -> ProgressValue:
        """The next event's value (waiting for it)."""
        async with asyncio.timeout(DEADLINE):
            while self._read >= len(self.events):
                assert not self.ended, "the stream ended"
                self._arrived.clear()
                await self._arrived.wait()
        event = self.events[self._read]
        self._read += 1
        return from_event(event)

    async def until(self, done: float) -> list[ProgressValue]:
        """Values up to and including the first with this `done`."""
        values = [await self.next()]
        while values[-1].done != done:
            values.append(await self.next())
        return values

    async def rest(self) -> list[ProgressValue]:
        """The values of every event still to come, once the stream ends."""
        async with asyncio.timeout(DEADLINE):
            await self.task
        values = [from_event(e) for e in self.events[self._read :]]
        self._read = len(self.events)
        return values

    async def assert_quiet(self) -> None:
        await settle()
        assert len(self.events) == self._read, [from_event(e) for e in self.events[self._read :]]

    def close(self) -> None:
        self.task.cancel()
