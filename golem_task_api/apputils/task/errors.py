"""Errors of the task database.

Those that describe the task's state carry the gRPC status the contract gives
them, so a handler that lets one propagate answers the node correctly (e.g. a
reused subtask id in NextSubtask is ALREADY_EXISTS).
"""

from golem_task_api.errors import AlreadyExists, FailedPrecondition


class TaskAlreadyCreated(AlreadyExists):
    """`create_task` on a database that already holds the task's parts."""


class SubtaskAlreadyExists(AlreadyExists):
    """`start_subtask` with an id used before (in this task)."""


class PartNotComputable(FailedPrecondition, RuntimeError):
    """`start_subtask` on a part that is being computed, verified, or done.

    A RuntimeError too, as the original package raised.
    """


class PartNotFound(LookupError):
    """A part number the task does not have (a bug in the app, not the node's error)."""


__all__ = ["PartNotComputable", "PartNotFound", "SubtaskAlreadyExists", "TaskAlreadyCreated"]
