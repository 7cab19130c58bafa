"""The exceptions of the work generator.

Names follow yapapi's where the concept is the same (`BatchError`,
`CommandExecutionError`, `BatchTimeoutError`), so its users find their way.
Every message names the batch, the command and the provider involved, because
"exited with code 1" alone is what yapapi's users complained about.
"""


class WorkgenError(Exception):
    """Base of the work generator's own errors."""


class ScriptUsageError(WorkgenError, RuntimeError):
    """A script used wrongly: changed after it was yielded, yielded twice, from another worker."""


class InvalidTaskStateError(WorkgenError, RuntimeError):
    """accept/reject on a task that is not running, or `result` of an unfinished task."""


class BatchError(WorkgenError):
    """A script did not run to its end. Thrown into the worker at its `yield`.

    `index` is the command that failed (None if the script failed before its
    first command), `command` its description.
    """

    def __init__(
        self, message: str, *, batch_id: str, index: int | None, command: str | None
    ) -> None:
        super().__init__(message)
        self.batch_id = batch_id
        self.index = index
        self.command = command


class CommandExecutionError(BatchError):
    """Command `index` raised; the provider's exception is `__cause__`."""


class BatchTimeoutError(BatchError, TimeoutError):
    """The script ran past its timeout; the command that was running was cancelled."""


class CommandNotExecutedError(WorkgenError):
    """Set on every command after a failed one: it was never started."""

    def __init__(self, message: str, *, index: int, failed_index: int | None) -> None:
        super().__init__(message)
        self.index = index
        self.failed_index = failed_index


class ProcessFailedError(WorkgenError):
    """A `run` command exited with a non-zero code (and was run with check=True)."""

    def __init__(self, args: tuple[str, ...], returncode: int, stderr: bytes) -> None:
        tail = stderr[-2000:].decode("utf-8", "replace").strip()
        message = f"{' '.join(args)!r} exited with code {returncode}"
        super().__init__(f"{message}; stderr: {tail}" if tail else f"{message}; no stderr")
        self.argv = args
        self.returncode = returncode
        self.stderr = stderr


class TaskRejectedError(WorkgenError):
    """One attempt of a task, rejected by the worker (`Task.reject_result`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TaskNotSettledError(WorkgenError):
    """The worker ended without accepting or rejecting a task it had taken."""


class TaskFailedError(WorkgenError):
    """The final outcome of a task that was not accepted; `__cause__` is the last error."""

    def __init__(self, message: str, *, task_id: str, attempts: int) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.attempts = attempts


class NoProviderAvailableError(WorkgenError):
    """The market has no provider outside the excluded ones, and never will."""


class JobTimeoutError(WorkgenError, TimeoutError):
    """`execute_tasks` ran past its timeout."""


class JobCancelledError(WorkgenError):
    """The job was closed (its consumer stopped iterating) before the task ended."""


__all__ = [
    "BatchError",
    "BatchTimeoutError",
    "CommandExecutionError",
    "CommandNotExecutedError",
    "InvalidTaskStateError",
    "JobCancelledError",
    "JobTimeoutError",
    "NoProviderAvailableError",
    "ProcessFailedError",
    "ScriptUsageError",
    "TaskFailedError",
    "TaskNotSettledError",
    "TaskRejectedError",
    "WorkgenError",
]
