"""Following executions on a compute node through its callbacks.

One `ExecutionTracker` per node (however many markets use it) listens to the
node's events and routes those of watched executions: progress to the
watcher's callback, the end of the run and the end of the execution to
futures. Events come in the node's order, so every progress value of a run
is handed on before its end is known.
"""

import asyncio
import weakref
from collections.abc import Callable

from golem_task_api.node.compute.callbacks import (
    Callback,
    CancelComplete,
    ComputeFailure,
    ExecutionProgress,
    PublishComplete,
    RunComplete,
)
from golem_task_api.node.compute.execution import Execution
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.runner import ProgressUpdate

_trackers: "weakref.WeakKeyDictionary[ComputeNode, ExecutionTracker]" = (
    weakref.WeakKeyDictionary()
)


class ExecutionWatch:
    """What is known of one execution: `run_ended` (the execution after its
    run: AwaitingVerification, or terminal if the run did not give a result)
    and `ended` (the terminal execution, once its work has stopped)."""

    def __init__(
        self, execution_id: str, on_progress: Callable[[ProgressUpdate], None] | None
    ) -> None:
        loop = asyncio.get_running_loop()
        self.execution_id = execution_id
        self.on_progress = on_progress
        self.run_ended: asyncio.Future[Execution] = loop.create_future()
        self.ended: asyncio.Future[Execution] = loop.create_future()

    def _run_ended(self, execution: Execution) -> None:
        if not self.run_ended.done():
            self.run_ended.set_result(execution)

    def _ended(self, execution: Execution) -> None:
        self._run_ended(execution)
        if not self.ended.done():
            self.ended.set_result(execution)


class ExecutionTracker(Callback):
    """Use `ExecutionTracker.of(node)`: it registers itself on the node once."""

    name = "execution tracker"

    def __init__(self) -> None:
        self._watches: dict[str, ExecutionWatch] = {}

    @classmethod
    def of(cls, node: ComputeNode) -> "ExecutionTracker":
        tracker = _trackers.get(node)
        if tracker is None:
            tracker = _trackers[node] = cls()
            node.callbacks.add(tracker)
        return tracker

    def watch(
        self, execution_id: str, on_progress: Callable[[ProgressUpdate], None] | None = None
    ) -> ExecutionWatch:
        """Start following an execution; before it can run, so nothing is missed."""
        watch = self._watches.get(execution_id)
        if watch is None:
            watch = self._watches[execution_id] = ExecutionWatch(execution_id, on_progress)
        else:
            watch.on_progress = on_progress
        return watch

    def get(self, execution_id: str) -> ExecutionWatch | None:
        return self._watches.get(execution_id)

    def forget(self, execution_id: str) -> None:
        self._watches.pop(execution_id, None)

    async def on_progress(self, event: ExecutionProgress) -> None:
        watch = self._watches.get(event.execution_id)
        if watch is not None and watch.on_progress is not None:
            watch.on_progress(event.update)

    async def on_run_complete(self, event: RunComplete) -> None:
        watch = self._watches.get(event.execution.execution_id)
        if watch is not None:
            watch._run_ended(event.execution)

    async def on_compute_failure(self, event: ComputeFailure) -> None:
        self._end(event.execution)

    async def on_cancel_complete(self, event: CancelComplete) -> None:
        self._end(event.execution)

    async def on_publish_complete(self, event: PublishComplete) -> None:
        self._end(event.execution)

    def _end(self, execution: Execution) -> None:
        watch = self._watches.pop(execution.execution_id, None)
        if watch is not None:
            watch._ended(execution)


__all__ = ["ExecutionTracker", "ExecutionWatch"]
