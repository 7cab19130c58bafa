"""What the node tells the outside world, and how it keeps listeners at arm's length.

The node never awaits a listener. `ChainedCallback.emit` only appends to one
lane per listener; each lane has its own worker that delivers the events in
order. So a slow listener delays nobody but itself, and one that raises has
its exception logged and gets the next event as usual. Progress is
coalesced per execution while a lane is behind: a slow listener sees the
latest value, never an unbounded backlog.
"""

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from golem_task_api.node.compute.execution import Execution
from golem_task_api.node.compute.runner import ProgressUpdate

logger = logging.getLogger(__name__)

SLOW_CALLBACK_SECONDS = 1.0


@dataclass(frozen=True)
class RunComplete:
    """The run ended with a result; the execution awaits the requestor's verdict."""

    execution: Execution
    result_path: Path


@dataclass(frozen=True)
class ComputeFailure:
    """The execution became Failed; `execution.failure`, `.reason` and `.retryable` say why."""

    execution: Execution


@dataclass(frozen=True)
class CancelComplete:
    """The execution is Cancelled and its work (if it was running) has stopped."""

    execution: Execution


@dataclass(frozen=True)
class PublishComplete:
    """The accepted result was published (kept or handed over) and the workdir removed."""

    execution: Execution
    published: str


@dataclass(frozen=True)
class ExecutionProgress:
    execution_id: str
    task_id: str
    update: ProgressUpdate


ComputeEvent = RunComplete | ComputeFailure | CancelComplete | PublishComplete | ExecutionProgress


class Callback:
    """A listener: override the methods you need (the others do nothing)."""

    async def on_run_complete(self, event: RunComplete) -> None:
        return None

    async def on_compute_failure(self, event: ComputeFailure) -> None:
        return None

    async def on_cancel_complete(self, event: CancelComplete) -> None:
        return None

    async def on_publish_complete(self, event: PublishComplete) -> None:
        return None

    async def on_progress(self, event: ExecutionProgress) -> None:
        return None


async def deliver(callback: Callback, event: ComputeEvent) -> None:
    """Call the method of `callback` that handles `event`."""
    match event:
        case RunComplete():
            await callback.on_run_complete(event)
        case ComputeFailure():
            await callback.on_compute_failure(event)
        case CancelComplete():
            await callback.on_cancel_complete(event)
        case PublishComplete():
            await callback.on_publish_complete(event)
        case ExecutionProgress():
            await callback.on_progress(event)


@dataclass(frozen=True)
class _ProgressSlot:
    execution_id: str


class _Lane:
    """One listener's ordered, non-blocking mailbox and its worker."""

    def __init__(self, callback: Callback) -> None:
        self.callback = callback
        self.name = getattr(callback, "name", type(callback).__name__)
        self._events: deque[ComputeEvent | _ProgressSlot] = deque()
        self._progress: dict[str, ExecutionProgress] = {}
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None

    def push(self, event: ComputeEvent) -> None:
        if isinstance(event, ExecutionProgress):
            if event.execution_id in self._progress:
                self._progress[event.execution_id] = event
                return
            self._progress[event.execution_id] = event
            self._events.append(_ProgressSlot(event.execution_id))
        else:
            self._events.append(event)
        self._idle.clear()
        self._wakeup.set()
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._work(), name=f"callback lane {self.name}"
            )

    async def _work(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._events:
                item = self._events.popleft()
                if isinstance(item, _ProgressSlot):
                    await self._deliver(self._progress.pop(item.execution_id))
                else:
                    await self._deliver(item)
            self._idle.set()

    async def _deliver(self, event: ComputeEvent) -> None:
        started = time.monotonic()
        try:
            await deliver(self.callback, event)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            logger.error("callback %s cancelled itself on %s", self.name, type(event).__name__)
        except Exception:
            logger.exception("callback %s failed on %s", self.name, type(event).__name__)
        took = time.monotonic() - started
        if took > SLOW_CALLBACK_SECONDS:
            logger.warning(
                "callback %s took %.1f s on %s: it delays only itself, but check it",
                self.name,
                took,
                type(event).__name__,
            )

    @property
    def idle(self) -> bool:
        return self._idle.is_set()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None


class ChainedCallback(Callback):
    """Fans every event out to several callbacks, each in its own lane.

    Its own `on_*` methods (and `emit`) return at once, so chains nest.
    """

    def __init__(self, *callbacks: Callback) -> None:
        self._lanes = [_Lane(callback) for callback in callbacks]

    def add(self, callback: Callback) -> None:
        self._lanes.append(_Lane(callback))

    @property
    def callbacks(self) -> list[Callback]:
        return [lane.callback for lane in self._lanes]

    def emit(self, event: ComputeEvent) -> None:
        """Hand `event` to every callback; never blocks, never raises for them."""
        for lane in self._lanes:
            lane.push(event)

    async def on_run_complete(self, event: RunComplete) -> None:
        self.emit(event)

    async def on_compute_failure(self, event: ComputeFailure) -> None:
        self.emit(event)

    async def on_cancel_complete(self, event: CancelComplete) -> None:
        self.emit(event)

    async def on_publish_complete(self, event: PublishComplete) -> None:
        self.emit(event)

    async def on_progress(self, event: ExecutionProgress) -> None:
        self.emit(event)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until every callback has handled what it was given; False on timeout."""
        waits = [lane.wait_idle() for lane in self._lanes]
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*waits)
        except TimeoutError:
            return False
        return True

    async def aclose(self, timeout: float = 5.0) -> None:
        """Let callbacks finish (up to `timeout`), then stop their workers."""
        if not await self.drain(timeout):
            slow = [lane.name for lane in self._lanes if not lane.idle]
            logger.warning("callbacks %s still busy after %.1f s: stopping them", slow, timeout)
        for lane in self._lanes:
            await lane.aclose()


__all__ = [
    "SLOW_CALLBACK_SECONDS",
    "Callback",
    "CancelComplete",
    "ChainedCallback",
    "ComputeEvent",
    "ComputeFailure",
    "ExecutionProgress",
    "PublishComplete",
    "RunComplete",
    "deliver",
]
