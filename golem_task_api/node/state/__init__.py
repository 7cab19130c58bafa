"""The task manager's crash-safe state: node.db (SQLite, WAL) and the node lock.

Standard library only: `golem-task-api status` reads it without gRPC.
"""

from golem_task_api.node.state.db import AmbiguousTaskId, NodeDB, Request, TaskNotFound
from golem_task_api.node.state.lock import NodeBusy, NodeLock, holder_pid
from golem_task_api.node.state.models import (
    FINISHED_TASK_STATES,
    RETRIED_SUBTASK_STATES,
    UNFINISHED_TASK_STATES,
    UNSETTLED_SUBTASK_STATES,
    AppRef,
    Progress,
    SubtaskRow,
    SubtaskState,
    TaskRow,
    TaskState,
)

__all__ = [
    "FINISHED_TASK_STATES",
    "RETRIED_SUBTASK_STATES",
    "UNFINISHED_TASK_STATES",
    "UNSETTLED_SUBTASK_STATES",
    "AmbiguousTaskId",
    "AppRef",
    "NodeBusy",
    "NodeDB",
    "NodeLock",
    "Progress",
    "Request",
    "SubtaskRow",
    "SubtaskState",
    "TaskNotFound",
    "TaskRow",
    "TaskState",
    "holder_pid",
]
