"""Testing kit for app developers: run an app's servers and whole tasks."""

from golem_task_api.testutils.handler_env import HandlerEnvironment
from golem_task_api.testutils.inline_service import InlineTaskApiService
from golem_task_api.testutils.lifecycle_util import TaskLifecycleUtil

__all__ = ["HandlerEnvironment", "InlineTaskApiService", "TaskLifecycleUtil"]
