"""The node's one event stream: the task manager's lifecycle and its scripts' events.

Every event is `{seq, timestamp, task_id, subtask_id, node_id, batch_id,
index, kind}`, `kind` a one-key object as in Golem's runtime events (and the
work generator's): `progress` (`step`, `message`, `progress`, `unit`), a
script or command event of the work generator (`script_started`,
`command_finished`...), or one of the task manager's kinds below.

Delivery is synchronous and never blocks: listeners are plain functions
that update a model (the live view, the progress recorder) or append a line
(`JsonLinesSink`); one that raises is logged and kept.
"""

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Any, ClassVar, Self

from golem_task_api.node.workgen.events import (
    Event,
    EventBus,
    EventKind,
    json_line,
    json_timestamp,
    kind_to_json,
    open_target,
)

logger = logging.getLogger(__name__)


# --- the task manager's kinds ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskCreated:
    KIND: ClassVar[str] = "task_created"
    app: str
    max_subtasks: int
    output_dir: str


@dataclass(frozen=True, slots=True)
class TaskStarted:
    """CreateTask answered (or the task resumed): subtasks are handed out from now."""

    KIND: ClassVar[str] = "task_started"
    env_id: str
    resumed: bool


@dataclass(frozen=True, slots=True)
class TaskProgress:
    """The task's progress: the app's own (WatchTaskProgress), else verified/total."""

    KIND: ClassVar[str] = "task_progress"
    done: float
    total: float | None
    unit: str
    message: str


@dataclass(frozen=True, slots=True)
class TaskCompleted:
    KIND: ClassVar[str] = "task_completed"
    output_dir: str
    files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TaskFailed:
    """`state`: failed or timed_out."""

    KIND: ClassVar[str] = "task_failed"
    state: str
    error: str


@dataclass(frozen=True, slots=True)
class TaskAborted:
    KIND: ClassVar[str] = "task_aborted"
    reason: str


@dataclass(frozen=True, slots=True)
class SubtaskIssued:
    """NextSubtask gave a subtask to `node_id`; `retry_of`: the failed subtask it redoes."""

    KIND: ClassVar[str] = "subtask_issued"
    number: int
    params: dict[str, Any]
    retry_of: str | None


@dataclass(frozen=True, slots=True)
class SubtaskRetried:
    """A part that failed on `previous_node` is computed again (the app handed it out)."""

    KIND: ClassVar[str] = "subtask_retried"
    number: int
    previous: str
    previous_node: str


@dataclass(frozen=True, slots=True)
class SubtaskComputing:
    KIND: ClassVar[str] = "subtask_computing"
    execution_id: str | None


@dataclass(frozen=True, slots=True)
class SubtaskDownloaded:
    KIND: ClassVar[str] = "subtask_downloaded"
    path: str


@dataclass(frozen=True, slots=True)
class SubtaskVerifying:
    KIND: ClassVar[str] = "subtask_verifying"
    attempt: int


@dataclass(frozen=True, slots=True)
class SubtaskVerified:
    KIND: ClassVar[str] = "subtask_verified"
    number: int


@dataclass(frozen=True, slots=True)
class SubtaskRejected:
    """FAILURE or INCONCLUSIVE (or the app's Verify failed): the app hands the part out again."""

    KIND: ClassVar[str] = "subtask_rejected"
    number: int
    verdict: str
    reason: str


@dataclass(frozen=True, slots=True)
class SubtaskAwaitingData:
    """Verify answered AWAITING_DATA: asked again after `delay` s or the task's next verdict."""

    KIND: ClassVar[str] = "subtask_awaiting_data"
    delay: float


@dataclass(frozen=True, slots=True)
class SubtaskFailed:
    """No result: `state` failed, timed_out, lost or aborted. `retry`: the app was
    told (AbortSubtask) and may hand the part out again."""

    KIND: ClassVar[str] = "subtask_failed"
    number: int
    state: str
    reason: str
    retry: bool


@dataclass(frozen=True, slots=True)
class NodeExcluded:
    """The node gets no more subtasks of this task."""

    KIND: ClassVar[str] = "node_excluded"
    reason: str


@dataclass(frozen=True, slots=True)
class AppRestarted:
    """The task's requestor app died and was started again on the same work dir."""

    KIND: ClassVar[str] = "app_restarted"
    app: str
    reason: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something a person should know that changes no state (a wait, a fallback)."""

    KIND: ClassVar[str] = "notice"
    message: str


NodeKind = (
    TaskCreated
    | TaskStarted
    | TaskProgress
    | TaskCompleted
    | TaskFailed
    | TaskAborted
    | SubtaskIssued
    | SubtaskRetried
    | SubtaskComputing
    | SubtaskDownloaded
    | SubtaskVerifying
    | SubtaskVerified
    | SubtaskRejected
    | SubtaskAwaitingData
    | SubtaskFailed
    | NodeExcluded
    | AppRestarted
    | Notice
)
AnyKind = NodeKind | EventKind


@dataclass(frozen=True, slots=True)
class NodeEvent:
    seq: int
    timestamp: datetime
    kind: AnyKind
    task_id: str | None = None
    subtask_id: str | None = None
    node_id: str | None = None
    batch_id: str | None = None
    index: int | None = None

    @property
    def name(self) -> str:
        return self.kind.KIND

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "timestamp": json_timestamp(self.timestamp),
            "task_id": self.task_id,
            "subtask_id": self.subtask_id,
            "node_id": self.node_id,
            "batch_id": self.batch_id,
            "index": self.index,
            "kind": kind_to_json(self.kind),
        }

    def to_json_line(self) -> str:
        return json_line(self.to_json())


Listener = Callable[[NodeEvent], None]


class NodeEvents:
    """Where every event goes; listeners are called in order, at once."""

    def __init__(self) -> None:
        self._seq = 0
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every event from now on; returns the unsubscribe."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def emit(
        self,
        kind: AnyKind,
        *,
        task_id: str | None = None,
        subtask_id: str | None = None,
        node_id: str | None = None,
        batch_id: str | None = None,
        index: int | None = None,
    ) -> NodeEvent:
        event = NodeEvent(
            self._seq, datetime.now(UTC), kind, task_id, subtask_id, node_id, batch_id, index
        )
        self._seq += 1
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:
                logger.exception("an event listener failed on %s", event.name)
        return event


class ScriptEvents(EventBus):
    """The work generator's bus for one subtask's scripts, forwarding into `NodeEvents`
    with the task and subtask ids the work generator does not know of."""

    def __init__(self, events: NodeEvents, task_id: str, subtask_id: str) -> None:
        super().__init__()
        self._events = events
        self._task_id = task_id
        self._subtask_id = subtask_id

    def emit(
        self,
        kind: EventKind,
        *,
        batch_id: str | None = None,
        index: int | None = None,
        task_id: str | None = None,
        provider_id: str | None = None,
    ) -> Event:
        event = self._events.emit(
            kind, task_id=self._task_id, subtask_id=self._subtask_id, node_id=provider_id,
            batch_id=batch_id, index=index,
        )
        return Event(event.seq, event.timestamp, kind, batch_id, index, task_id, provider_id)


class JsonLinesSink:
    """Writes every event as one JSON line, flushed at once (a crash loses none)."""

    def __init__(self, events: NodeEvents, target: str | os.PathLike[str] | IO[str]) -> None:
        self._events = events
        self._target = target
        self._file: IO[str] | None = None
        self._owns = False
        self._unsubscribe: Callable[[], None] | None = None
        self.written = 0

    def open(self) -> None:
        self._file, self._owns = open_target(self._target, "a")
        self._unsubscribe = self._events.subscribe(self._write)

    def _write(self, event: NodeEvent) -> None:
        if self._file is not None:
            self._file.write(event.to_json_line() + "\n")
            self._file.flush()
            self.written += 1

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._owns and self._file is not None:
            self._file.close()
        self._file = None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = [
    "AnyKind",
    "AppRestarted",
    "JsonLinesSink",
    "Listener",
    "NodeEvent",
    "NodeEvents",
    "NodeExcluded",
    "NodeKind",
    "Notice",
    "ScriptEvents",
    "SubtaskAwaitingData",
    "SubtaskComputing",
    "SubtaskDownloaded",
    "SubtaskFailed",
    "SubtaskIssued",
    "SubtaskRejected",
    "SubtaskRetried",
    "SubtaskVerified",
    "SubtaskVerifying",
    "TaskAborted",
    "TaskCompleted",
    "TaskCreated",
    "TaskFailed",
    "TaskProgress",
    "TaskStarted",
    "kind_to_json",
]
