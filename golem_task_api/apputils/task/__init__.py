"""Task bookkeeping for requestor apps: parts, subtasks and their statuses."""

from golem_task_api.apputils.task.manager import TaskManager
from golem_task_api.apputils.task.status import SubtaskStatus

__all__ = ["SubtaskStatus", "TaskManager"]
