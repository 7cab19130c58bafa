"""One event stream for everything a job does, in the Golem runtime-event structure.

Every event is `{seq, batch_id, index, timestamp, task_id, provider_id, kind}`
where `kind` is a one-key object: Golem's `progress` (with `step`,
`message`, `progress`, `unit`) or one of the lifecycle kinds below. `seq`
numbers the events of a bus from 0, `index` is the command's place in its
script (Golem's meaning), `timestamp` is taken when the event happens.

Delivery never blocks the engine: `EventBus.emit` is synchronous and only
appends to each listener's bounded buffer. What a listener that falls behind
loses:

- progress values it has not read yet, when a newer value of the same
  command arrives (latest wins, as progress.md asks of progress streams: a
  display wants the current value, not a backlog). Subscribe with
  `coalesce=False` to keep every value (a log does);
- when its buffer is full all the same, whole events: it is told how many by
  a `dropped` event at the place of the gap, so a lost event is never
  mistaken for one that did not happen.

Lifecycle events are never coalesced, so a listener that keeps up sees every
one of them, and every listener sees the events it gets in `seq` order.
"""

import asyncio
import collections
import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, ClassVar, Protocol, Self, get_args

from golem_task_api.node.closing import AsyncClosing
from golem_task_api.node.workgen.progress import Progress

logger = logging.getLogger(__name__)

DEFAULT_BUFFER = 1000


@dataclass(frozen=True, slots=True)
class WorkerStarted:
    KIND: ClassVar[str] = "worker_started"
    provider_name: str


@dataclass(frozen=True, slots=True)
class WorkerFinished:
    """`error`: why the worker crashed, None if it ended by itself."""

    KIND: ClassVar[str] = "worker_finished"
    error: str | None


@dataclass(frozen=True, slots=True)
class TaskStarted:
    KIND: ClassVar[str] = "task_started"
    attempt: int


@dataclass(frozen=True, slots=True)
class TaskAccepted:
    KIND: ClassVar[str] = "task_accepted"
    attempt: int


@dataclass(frozen=True, slots=True)
class TaskRejected:
    """One attempt rejected, by the worker or by a crash (`reason` says which)."""

    KIND: ClassVar[str] = "task_rejected"
    attempt: int
    reason: str
    retry: bool


@dataclass(frozen=True, slots=True)
class TaskRetried:
    """The task waits `delay` seconds, then goes to a provider not in `excluded`."""

    KIND: ClassVar[str] = "task_retried"
    attempt: int
    delay: float
    excluded: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TaskFailed:
    """The task's final outcome is a failure; nothing more happens to it."""

    KIND: ClassVar[str] = "task_failed"
    attempts: int
    error: str


@dataclass(frozen=True, slots=True)
class ScriptStarted:
    KIND: ClassVar[str] = "script_started"
    commands: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ScriptFinished:
    KIND: ClassVar[str] = "script_finished"


@dataclass(frozen=True, slots=True)
class ScriptFailed:
    """`index`: the command that failed (None: cancelled before any command)."""

    KIND: ClassVar[str] = "script_failed"
    index: int | None
    error: str


@dataclass(frozen=True, slots=True)
class CommandStarted:
    KIND: ClassVar[str] = "command_started"
    command: str
    description: str


@dataclass(frozen=True, slots=True)
class CommandFinished:
    """`return_code`: the process's for `run`, 0 for the other commands."""

    KIND: ClassVar[str] = "command_finished"
    command: str
    return_code: int


@dataclass(frozen=True, slots=True)
class CommandFailed:
    KIND: ClassVar[str] = "command_failed"
    command: str
    error: str
    return_code: int | None


@dataclass(frozen=True, slots=True)
class Dropped:
    """Only in one listener's stream: it fell behind and lost `count` events here."""

    KIND: ClassVar[str] = "dropped"
    count: int


LifecycleKind = (
    WorkerStarted
    | WorkerFinished
    | TaskStarted
    | TaskAccepted
    | TaskRejected
    | TaskRetried
    | TaskFailed
    | ScriptStarted
    | ScriptFinished
    | ScriptFailed
    | CommandStarted
    | CommandFinished
    | CommandFailed
    | Dropped
)
EventKind = Progress | LifecycleKind

_LIFECYCLE: dict[str, type[LifecycleKind]] = {cls.KIND: cls for cls in get_args(LifecycleKind)}


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    timestamp: datetime
    kind: EventKind
    batch_id: str | None = None
    index: int | None = None
    task_id: str | None = None
    provider_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "batch_id": self.batch_id,
            "index": self.index,
            "timestamp": json_timestamp(self.timestamp),
            "task_id": self.task_id,
            "provider_id": self.provider_id,
            "kind": kind_to_json(self.kind),
        }

    def to_json_line(self) -> str:
        return json_line(self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Event":
        return cls(
            seq=data["seq"],
            timestamp=datetime.fromisoformat(data["timestamp"]),
            kind=_kind_from_json(data["kind"]),
            batch_id=data.get("batch_id"),
            index=data.get("index"),
            task_id=data.get("task_id"),
            provider_id=data.get("provider_id"),
        )


class Kind(Protocol):
    """An event kind: a dataclass that names itself (this module's and the node's)."""

    KIND: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]


def json_timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def json_line(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def _number(value: float) -> float | int:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def kind_to_json(kind: Kind) -> dict[str, Any]:
    """`{KIND: {field: value}}`; progress in Golem's CommandProgress form."""
    if isinstance(kind, Progress):
        # Golem's CommandProgress: a single-step operation is step [0, 1].
        return {
            "progress": {
                "step": [kind.step, kind.step_count or 1],
                "message": kind.message or None,
                "progress": [
                    _number(kind.done),
                    None if kind.total is None else _number(kind.total),
                ],
                "unit": kind.unit or None,
            }
        }
    payload = {f.name: getattr(kind, f.name) for f in dataclasses.fields(kind)}
    return {kind.KIND: {k: list(v) if isinstance(v, tuple) else v for k, v in payload.items()}}


def _kind_from_json(data: dict[str, Any]) -> EventKind:
    ((name, payload),) = data.items()
    if name == "progress":
        step, step_count = payload["step"]
        done, total = [*(payload.get("progress") or [0]), None][:2]
        return Progress(
            done=done,
            total=total,
            unit=payload.get("unit") or "",
            message=payload.get("message") or "",
            step=step,
            step_count=step_count,
        )
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in payload.items()}
    return _LIFECYCLE[name](**fields)


class _Entry:
    __slots__ = ("event",)

    def __init__(self, event: Event) -> None:
        self.event: Event | None = event


class EventStream:
    """One listener's view of a bus: an async iterator over its events.

    Holds at most `buffer` events not yet read (see the module doc for what is
    given up when it is full). Iteration ends after `close()` (or the bus's)
    once what was buffered has been read.
    """

    def __init__(self, bus: "EventBus", buffer: int, coalesce: bool) -> None:
        if buffer < 1:
            raise ValueError(f"an event stream needs a buffer of at least 1, got {buffer}")
        self._bus = bus
        self._buffer = buffer
        self._coalesce = coalesce
        self._entries: collections.deque[_Entry] = collections.deque()
        self._live = 0
        self._progress: dict[tuple[str | None, int | None], _Entry] = {}
        self._gap = 0
        self._gap_seq = 0
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0
        self.superseded = 0

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        while True:
            event = self._pop()
            if event is not None:
                return event
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def take_ready(self) -> list[Event]:
        """Every event buffered now, without waiting."""
        events = []
        while (event := self._pop()) is not None:
            events.append(event)
        return events

    def close(self) -> None:
        """Stop receiving; what is buffered can still be read."""
        if not self._closed:
            self._closed = True
            self._bus._unsubscribe(self)
            self._wake()

    def _offer(self, event: Event) -> None:
        if self._coalesce and isinstance(event.kind, Progress):
            key = (event.batch_id, event.index)
            older = self._progress.get(key)
            if older is not None and older.event is not None:
                older.event = None
                self._live -= 1
                self.superseded += 1
        if self._live >= self._buffer:
            self.dropped += 1
            self._gap += 1
            self._gap_seq = event.seq
            return
        self._flush_gap()
        entry = _Entry(event)
        self._entries.append(entry)
        self._live += 1
        if self._coalesce and isinstance(event.kind, Progress):
            self._progress[(event.batch_id, event.index)] = entry
        self._wake()

    def _flush_gap(self) -> None:
        # The marker carries the seq of the last lost event, so it sorts
        # into the stream exactly where the gap is.
        if self._gap:
            marker = Event(seq=self._gap_seq, timestamp=datetime.now(UTC), kind=Dropped(self._gap))
            self._entries.append(_Entry(marker))
            self._gap = 0

    def _pop(self) -> Event | None:
        while self._entries:
            entry = self._entries.popleft()
            event = entry.event
            if event is None:
                continue
            if isinstance(event.kind, Dropped):
                return event
            self._live -= 1
            if self._coalesce and isinstance(event.kind, Progress):
                key = (event.batch_id, event.index)
                if self._progress.get(key) is entry:
                    del self._progress[key]
            return event
        if self._closed and self._gap:
            self._flush_gap()
            return self._pop()
        return None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class EventBus:
    """Where a job's events go; any number of listeners subscribe to it."""

    def __init__(self) -> None:
        self._seq = 0
        self._streams: list[EventStream] = []
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def subscribe(self, *, buffer: int = DEFAULT_BUFFER, coalesce: bool = True) -> EventStream:
        """A stream of the events emitted from now on.

        `buffer`: how many unread events it holds; `coalesce`: whether an
        unread progress value is replaced by a newer one of the same command.
        """
        stream = EventStream(self, buffer, coalesce)
        if self._closed:
            stream.close()
        else:
            self._streams.append(stream)
        return stream

    def emit(
        self,
        kind: EventKind,
        *,
        batch_id: str | None = None,
        index: int | None = None,
        task_id: str | None = None,
        provider_id: str | None = None,
    ) -> Event:
        """Stamp and deliver an event; never blocks, never raises for a listener."""
        event = Event(
            seq=self._seq,
            timestamp=datetime.now(UTC),
            kind=kind,
            batch_id=batch_id,
            index=index,
            task_id=task_id,
            provider_id=provider_id,
        )
        self._seq += 1
        if not self._closed:
            for stream in tuple(self._streams):
                stream._offer(event)
        return event

    def close(self) -> None:
        """End every stream (after it is read to its end); later events go nowhere."""
        self._closed = True
        for stream in tuple(self._streams):
            stream.close()

    def _unsubscribe(self, stream: EventStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)


class JsonLinesWriter(AsyncClosing):
    """Writes every event of a bus as one JSON object per line.

    Subscribes on `__aenter__`; on exit, writes what is buffered and stops.
    Writes happen in a thread, a batch of lines at a time, so a slow disk
    slows only this listener (whose buffer is bounded like any other). A log
    keeps every progress value unless `coalesce` is set.
    """

    def __init__(
        self,
        bus: EventBus,
        target: str | os.PathLike[str] | IO[str],
        *,
        append: bool = False,
        buffer: int = 10 * DEFAULT_BUFFER,
        coalesce: bool = False,
    ) -> None:
        self._bus = bus
        self._coalesce = coalesce
        self._target = target
        self._append = append
        self._buffer = buffer
        self._file: IO[str] | None = None
        self._owns_file = False
        self._stream: EventStream | None = None
        self._task: asyncio.Task[None] | None = None
        self.written = 0

    @property
    def dropped(self) -> int:
        return 0 if self._stream is None else self._stream.dropped

    async def __aenter__(self) -> Self:
        self._file, self._owns_file = open_target(self._target, "a" if self._append else "w")
        self._stream = self._bus.subscribe(buffer=self._buffer, coalesce=self._coalesce)
        self._task = asyncio.create_task(self._run(self._stream, self._file))
        return self

    async def aclose(self) -> None:
        if self._stream is not None:
            self._stream.close()
        try:
            if self._task is not None:
                await self._task
        finally:
            if self._owns_file and self._file is not None:
                self._file.close()
            self._file = None
            self._task = None

    async def _run(self, stream: EventStream, file: IO[str]) -> None:
        async for event in stream:
            batch = [event, *stream.take_ready()]
            text = "".join(e.to_json_line() + "\n" for e in batch)
            await asyncio.to_thread(_write, file, text)
            self.written += len(batch)


def open_target(target: str | os.PathLike[str] | IO[str], mode: str) -> tuple[IO[str], bool]:
    """The file to write lines to, and whether it was opened here (and is closed here)."""
    if isinstance(target, str | os.PathLike):
        return open(target, mode, encoding="utf-8"), True
    return target, False


def _write(file: IO[str], text: str) -> None:
    file.write(text)
    file.flush()


__all__ = [
    "DEFAULT_BUFFER",
    "CommandFailed",
    "CommandFinished",
    "CommandStarted",
    "Dropped",
    "Event",
    "EventBus",
    "EventKind",
    "EventStream",
    "JsonLinesWriter",
    "Kind",
    "LifecycleKind",
    "ScriptFailed",
    "ScriptFinished",
    "ScriptStarted",
    "TaskAccepted",
    "TaskFailed",
    "TaskRejected",
    "TaskRetried",
    "TaskStarted",
    "WorkerFinished",
    "WorkerStarted",
    "json_line",
    "json_timestamp",
    "kind_to_json",
    "open_target",
]
