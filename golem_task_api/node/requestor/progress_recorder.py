"""The latest progress of each task and running subtask, into node.db.

Values arrive often (each subtask's compute, every half second by default);
only the latest of each is kept and written with the others in one
transaction every `interval`, so `status` shows `N/M` and what each running
subtask is at, from another process, while the node writes little.
"""

import asyncio
import contextlib

from golem_task_api.node.requestor.events import (
    NodeEvent,
    NodeEvents,
    TaskAborted,
    TaskCompleted,
    TaskFailed,
    TaskProgress,
)
from golem_task_api.node.state import NodeDB, Progress
from golem_task_api.node.workgen.events import CommandFailed, CommandFinished, CommandStarted
from golem_task_api.node.workgen.progress import Progress as CommandProgress

DEFAULT_INTERVAL = 0.5


class ProgressRecorder:
    def __init__(self, db: NodeDB, events: NodeEvents, interval: float = DEFAULT_INTERVAL) -> None:
        self._db = db
        self._interval = interval
        self._tasks: dict[str, Progress] = {}
        self._subtasks: dict[str, Progress] = {}
        # (batch, command index) of the compute commands: their progress is
        # the subtask's (transfers report bytes, which say little).
        self._computes: set[tuple[str | None, int | None]] = set()
        self._unsubscribe = events.subscribe(self._on_event)
        self._flusher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._flusher = asyncio.ensure_future(self._run())

    def _on_event(self, event: NodeEvent) -> None:
        kind = event.kind
        if isinstance(kind, CommandProgress):
            if event.subtask_id is not None and (event.batch_id, event.index) in self._computes:
                self._subtasks[event.subtask_id] = Progress(
                    kind.done, kind.total, kind.unit, kind.message
                )
        elif isinstance(kind, CommandStarted):
            if kind.command == "compute":
                self._computes.add((event.batch_id, event.index))
        elif isinstance(kind, CommandFinished | CommandFailed):
            # Its last value came before its end (the throttle flushes first).
            self._computes.discard((event.batch_id, event.index))
        elif isinstance(kind, TaskProgress) and event.task_id is not None:
            self._tasks[event.task_id] = Progress(kind.done, kind.total, kind.unit, kind.message)
        elif isinstance(kind, TaskCompleted | TaskFailed | TaskAborted):
            self.flush()  # a finished task's last value is in at once

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.flush()

    def flush(self) -> None:
        tasks, self._tasks = self._tasks, {}
        subtasks, self._subtasks = self._subtasks, {}
        self._db.save_progress(tasks, subtasks)

    async def aclose(self) -> None:
        self._unsubscribe()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        self.flush()


__all__ = ["DEFAULT_INTERVAL", "ProgressRecorder"]
