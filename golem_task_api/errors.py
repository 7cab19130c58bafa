"""The exception tree of the Task API, each class carrying its gRPC status.

One table maps exceptions to statuses on the server (`status_of`) and
statuses back to exceptions on the client (`from_status`), so both sides
agree by construction and no RPC method needs its own try/except.
"""

from typing import ClassVar

import grpc


class TaskApiError(Exception):
    """Base of every error the framework raises or maps from a status."""

    status: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    @property
    def code(self) -> grpc.StatusCode:
        return self.status


class InvalidArgument(TaskApiError, ValueError):
    """Malformed JSON, a bad id, a path that leaves its dir."""

    status = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(TaskApiError, LookupError):
    """A task or subtask that this server does not know."""

    status = grpc.StatusCode.NOT_FOUND


class AlreadyExists(TaskApiError):
    """CreateTask for an existing task; NextSubtask with a used subtask id."""

    status = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(TaskApiError):
    """A call the task's state forbids (e.g. NextSubtask on an aborted task)."""

    status = grpc.StatusCode.FAILED_PRECONDITION


class AppError(TaskApiError):
    """The app's handler raised; the message is the handler's."""

    status = grpc.StatusCode.INTERNAL


class Unavailable(TaskApiError):
    """The server is shutting down, or cannot be reached."""

    status = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(TaskApiError, TimeoutError):
    status = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(TaskApiError):
    status = grpc.StatusCode.CANCELLED


class Unimplemented(TaskApiError, NotImplementedError):
    """The app does not have this RPC (e.g. an app built before an extension)."""

    status = grpc.StatusCode.UNIMPLEMENTED


class ResourceExhausted(TaskApiError):
    """A message over the size limit."""

    status = grpc.StatusCode.RESOURCE_EXHAUSTED


_BY_STATUS: dict[grpc.StatusCode, type[TaskApiError]] = {
    cls.status: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        AppError,
        Unavailable,
        DeadlineExceeded,
        Cancelled,
        Unimplemented,
        ResourceExhausted,
    )
}


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status and message a server answers for `exc`."""
    if isinstance(exc, TaskApiError):
        return exc.status, exc.message
    # Whatever else a handler raises is the app's error: INTERNAL, with a
    # message a person can act on even when the exception has none.
    return grpc.StatusCode.INTERNAL, str(exc) or type(exc).__name__


def from_status(code: grpc.StatusCode, message: str) -> TaskApiError:
    """The exception a client raises for a non-OK status."""
    cls = _BY_STATUS.get(code)
    if cls is not None:
        return cls(message)
    error = TaskApiError(f"{code.name}: {message}")
    error.status = code  # type: ignore[misc]
    return error


__all__ = [
    "AlreadyExists",
    "AppError",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "ResourceExhausted",
    "TaskApiError",
    "Unavailable",
    "Unimplemented",
    "from_status",
    "status_of",
]
