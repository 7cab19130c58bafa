"""Tasks: the units of work `execute_tasks` hands to workers, and their outcomes."""

import enum
import itertools
import math
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from golem_task_api.node.workgen.errors import InvalidTaskStateError, TaskFailedError

D = TypeVar("D")
R = TypeVar("R")

_numbers = itertools.count(1)


class TaskState(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    ACCEPTED = "accepted"
    FAILED = "failed"


@dataclass(frozen=True)
class Attempt:
    """One try of a task on one provider; `error` None means its result was accepted."""

    number: int
    provider_id: str
    error: BaseException | None


@dataclass(frozen=True)
class RetryPolicy:
    """How often a task is tried, and how long it waits between tries.

    The wait before attempt n+1 is `backoff * backoff_factor ** (n - 1)`,
    at most `max_backoff`. Each retry goes to a provider the task has not
    failed on; crashes of the worker count as attempts too, so a task that
    kills every worker ends instead of going round forever.
    """

    max_attempts: int = 3
    backoff: float = 1.0
    backoff_factor: float = 2.0
    max_backoff: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for name in ("backoff", "backoff_factor", "max_backoff"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")

    def delay(self, failed_attempts: int) -> float:
        exponent = max(failed_attempts - 1, 0)
        try:
            delay = self.backoff * self.backoff_factor**exponent
        except OverflowError:
            return self.max_backoff
        return min(delay, self.max_backoff)


class _Settler(Protocol):
    def accept(self, task: "Task[Any, Any]", result: Any) -> None: ...

    def reject(self, task: "Task[Any, Any]", reason: str, retry: bool) -> None: ...


class Task(Generic[D, R]):
    """`data` to work on; after `execute_tasks` yields it, its final outcome.

    The worker that holds a running task settles it with `accept_result` or
    `reject_result`. Once final, `result` is the accepted value, or raises
    `TaskFailedError` (also in `error`) whose `__cause__` is the last
    attempt's error.
    """

    def __init__(self, data: D, *, task_id: str | None = None) -> None:
        self._id = task_id if task_id is not None else f"task-{next(_numbers)}"
        self.data = data
        self._state = TaskState.WAITING
        self._attempts: list[Attempt] = []
        self._excluded: set[str] = set()
        self._result: R | None = None
        self._error: TaskFailedError | None = None
        self._settler: _Settler | None = None
        self._provider_id: str | None = None
        # Loop time before which a retried task is not handed out.
        self._ready_at = 0.0

    def __repr__(self) -> str:
        return f"<Task {self._id} {self._state.value}, {len(self._attempts)} attempt(s)>"

    @property
    def id(self) -> str:
        return self._id

    @property
    def state(self) -> TaskState:
        return self._state

    @property
    def done(self) -> bool:
        return self._state in (TaskState.ACCEPTED, TaskState.FAILED)

    @property
    def accepted(self) -> bool:
        return self._state is TaskState.ACCEPTED

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every attempt that has ended, oldest first."""
        return tuple(self._attempts)

    @property
    def provider_id(self) -> str | None:
        """The provider of the running (or the accepted) attempt."""
        return self._provider_id

    @property
    def excluded(self) -> frozenset[str]:
        """Providers this task failed on; it never goes back to them."""
        return frozenset(self._excluded)

    @property
    def result(self) -> R:
        if self._state is TaskState.ACCEPTED:
            return self._result  # type: ignore[return-value]
        if self._error is not None:
            raise self._error
        raise InvalidTaskStateError(f"task {self._id} is {self._state.value}: no result yet")

    @property
    def error(self) -> TaskFailedError | None:
        return self._error

    def accept_result(self, result: R) -> None:
        """The attempt succeeded: `result` is the task's final result."""
        self._running("accept").accept(self, result)

    def reject_result(self, reason: str, retry: bool = True) -> None:
        """The attempt failed: try again elsewhere (within the retry policy), or fail now."""
        self._running("reject").reject(self, reason, retry)

    def _running(self, verb: str) -> _Settler:
        if self._state is not TaskState.RUNNING or self._settler is None:
            raise InvalidTaskStateError(
                f"cannot {verb} task {self._id}: it is {self._state.value}, not running"
            )
        return self._settler

    # --- transitions, made by the engine --------------------------------------

    def _start(self, settler: _Settler, provider_id: str) -> int:
        self._state = TaskState.RUNNING
        self._settler = settler
        self._provider_id = provider_id
        return len(self._attempts) + 1

    def _end_attempt(self, error: BaseException | None) -> int:
        assert self._provider_id is not None
        attempt = Attempt(len(self._attempts) + 1, self._provider_id, error)
        self._attempts.append(attempt)
        self._settler = None
        if error is not None:
            self._excluded.add(self._provider_id)
        return attempt.number

    def _wait(self, ready_at: float) -> None:
        self._state = TaskState.WAITING
        self._provider_id = None
        self._ready_at = ready_at

    def _accept(self, result: R) -> None:
        self._state = TaskState.ACCEPTED
        self._result = result

    def _fail(self, error: TaskFailedError) -> None:
        self._state = TaskState.FAILED
        self._settler = None
        self._error = error


__all__ = ["Attempt", "RetryPolicy", "Task", "TaskState"]
