"""What the framework remembers of each task, on disk under the task dir.

Apps keep their own state; this record only lets the server answer NOT_FOUND,
ALREADY_EXISTS and FAILED_PRECONDITION correctly, also after the requestor
app was restarted on the same work dir. It is an append-only JSON-lines log
(one short write per change, no rewrite), read back once per task.
"""

import collections
import contextlib
import enum
import json
import logging
import os
from collections.abc import Iterator
from json.encoder import encode_basestring as _quote
from pathlib import Path
from typing import Any

from golem_task_api.dirutils import RequestorDir
from golem_task_api.errors import AlreadyExists, FailedPrecondition, NotFound
from golem_task_api.progress.value import ProgressValue, State
from golem_task_api.validation import check_id

logger = logging.getLogger(__name__)

RECORD_FILE_NAME = ".golem_task_api_record.jsonl"


class SubtaskState(enum.Enum):
    ISSUED = "issued"
    VERIFIED = "verified"
    FAILED = "failed"
    ABORTED = "aborted"
    DISCARDED = "discarded"


# Subtasks in these states will not be verified again.
SETTLED = frozenset({SubtaskState.VERIFIED, SubtaskState.FAILED})


class TaskRecord:
    def __init__(self, task_id: str, path: Path, files: "RecordFiles") -> None:
        self.task_id = task_id
        self.path = path
        self.fd: int | None = None
        self._files = files
        self.aborted = False
        # Nothing pending and nothing in flight: the outputs are complete.
        self.completed = False
        # The last progress the app reported for the task (kept across restarts).
        self.progress: ProgressValue | None = None
        self.subtasks: dict[str, SubtaskState] = {}
        self._issued = 0
        # In memory only: guards against two concurrent calls for one id.
        self.busy: set[str] = set()

    @classmethod
    def load(cls, task_id: str, path: Path, files: "RecordFiles") -> "TaskRecord":
        record = cls(task_id, path, files)
        data = path.read_bytes()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            # A write torn by a crash (only ever the last line): cut it, so
            # that the next change starts on a line of its own.
            logger.warning("%s: dropping a torn last record line", path)
            os.truncate(path, complete)
        for line in data[:complete].splitlines():
            try:
                op, *args = json.loads(line)
            except ValueError:
                logger.warning("%s: ignoring an unreadable record line", path)
                continue
            record._apply(op, args)
        return record

    def _apply(self, op: str, args: list[Any]) -> None:
        if op == "aborted":
            self.aborted = True
        elif op == "completed":
            self.completed = True
        elif op == "reopened":
            self.completed = False
        elif op == "progress":
            self.progress = _progress_from(args)
        elif op == "subtask":
            self._change(args[0], SubtaskState(args[1]))

    def _append(self, *entry: Any) -> None:
        self._write((json.dumps(entry) + "\n").encode("utf-8"))

    def _write(self, data: bytes) -> None:
        fd = self.fd if self.fd is not None else self._files.open(self)
        os.write(fd, data)

    def _change(self, subtask_id: str, state: SubtaskState) -> None:
        previous = self.subtasks.get(subtask_id)
        self._issued += (state is SubtaskState.ISSUED) - (previous is SubtaskState.ISSUED)
        self.subtasks[subtask_id] = state

    def set_subtask(self, subtask_id: str, state: SubtaskState) -> None:
        self._change(subtask_id, state)
        # The hot path (two per subtask): the line by hand, the id escaped by
        # json's C encoder; json.dumps of the whole entry costs several times more.
        line = f'["subtask", {_quote(subtask_id)}, "{state.value}"]\n'
        self._write(line.encode("utf-8"))

    def set_aborted(self) -> None:
        self.aborted = True
        self._append("aborted")

    def set_progress(self, value: ProgressValue) -> None:
        if value.state is not State.RUNNING:
            value = value._replace(state=State.RUNNING)  # the state is the record's
        if value != self.progress:
            self.progress = value
            self._append("progress", *_progress_fields(value))

    def set_completed(self, completed: bool) -> None:
        if completed != self.completed:
            self.completed = completed
            self._append("completed" if completed else "reopened")

    @property
    def in_flight(self) -> int:
        """Subtasks handed out and not yet settled."""
        return self._issued

    def subtask(self, subtask_id: str) -> SubtaskState:
        try:
            return self.subtasks[subtask_id]
        except KeyError:
            raise NotFound(
                f"task {self.task_id!r} has no subtask {subtask_id!r}"
            ) from None

    def check_active(self) -> None:
        if self.aborted:
            raise FailedPrecondition(f"task {self.task_id!r} was aborted")

    def hold(self, subtask_id: str, what: str) -> "_Hold":
        """Refuse a second concurrent call for the same subtask."""
        if subtask_id in self.busy:
            raise FailedPrecondition(
                f"subtask {subtask_id!r} of task {self.task_id!r} is busy: {what} already running"
            )
        self.busy.add(subtask_id)
        return _Hold(self.busy, subtask_id)


def _progress_fields(value: ProgressValue) -> list[Any]:
    return [value.done, value.total, value.unit, value.message, value.step, value.step_count]


def _progress_from(args: list[Any]) -> ProgressValue | None:
    try:
        done, total, unit, message, step, step_count = args
        return ProgressValue.checked(done, total, unit, message, step, step_count)
    except (TypeError, ValueError):
        return None


class _Hold:
    """Releases a held subtask id (a class: cheaper than a generator on the hot path)."""

    __slots__ = ("_busy", "_subtask_id")

    def __init__(self, busy: set[str], subtask_id: str) -> None:
        self._busy = busy
        self._subtask_id = subtask_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        self._busy.discard(self._subtask_id)


class RecordFiles:
    """Record files kept open for appending, the least recently used closed
    beyond a bound: a long-lived app with many tasks keeps few descriptors."""

    def __init__(self, limit: int = 64) -> None:
        self._limit = limit
        self._open: collections.OrderedDict[int, TaskRecord] = collections.OrderedDict()

    def open(self, record: TaskRecord) -> int:
        fd = os.open(record.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        record.fd = fd
        self._open[fd] = record
        while len(self._open) > self._limit:
            old_fd, old = self._open.popitem(last=False)
            old.fd = None
            os.close(old_fd)
        return fd

    def close_all(self) -> None:
        while self._open:
            fd, record = self._open.popitem()
            record.fd = None
            os.close(fd)


class TaskRecords:
    """The records of every task under one requestor work dir."""

    def __init__(self, work_dir: RequestorDir) -> None:
        self._work_dir = work_dir
        self._records: dict[str, TaskRecord] = {}
        self._creating: set[str] = set()
        self.files = RecordFiles()

    def _path(self, task_id: str) -> Path:
        return self._work_dir.task_dir(task_id) / RECORD_FILE_NAME

    def get(self, task_id: str) -> TaskRecord:
        record = self._records.get(task_id)
        if record is not None:
            return record
        path = self._path(check_id("task_id", task_id))
        try:
            record = TaskRecord.load(task_id, path, self.files)
        except FileNotFoundError:
            raise NotFound(f"unknown task {task_id!r}: CreateTask was not called for it") from None
        self._records[task_id] = record
        return record

    def exists(self, task_id: str) -> bool:
        return task_id in self._records or self._path(task_id).exists()

    @contextlib.contextmanager
    def creating(self, task_id: str) -> Iterator[None]:
        """Around the app's create_task: the record exists only if it succeeded."""
        if task_id in self._creating or self.exists(task_id):
            raise AlreadyExists(f"task {task_id!r} already exists")
        self._creating.add(task_id)
        try:
            yield
            record = TaskRecord(task_id, self._path(task_id), self.files)
            record._append("created")
            self._records[task_id] = record
        finally:
            self._creating.discard(task_id)


__all__ = ["RECORD_FILE_NAME", "SETTLED", "SubtaskState", "TaskRecord", "TaskRecords"]
