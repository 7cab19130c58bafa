"""The work generator: requestor-side scripts run on providers (design.md, layer 4).

A worker is an async generator that takes tasks, yields `Script`s made by
its `WorkContext`, and accepts or rejects each task; `execute_tasks` runs
workers on providers from a `Market` until every task has ended.
"""

from golem_task_api.node.workgen.commands import Command
from golem_task_api.node.workgen.context import WorkContext
from golem_task_api.node.workgen.engine import Job, TaskSource, Worker, execute_tasks
from golem_task_api.node.workgen.errors import (
    BatchError,
    BatchTimeoutError,
    CommandExecutionError,
    CommandNotExecutedError,
    InvalidTaskStateError,
    JobCancelledError,
    JobTimeoutError,
    NoProviderAvailableError,
    ProcessFailedError,
    ScriptUsageError,
    TaskFailedError,
    TaskNotSettledError,
    TaskRejectedError,
    WorkgenError,
)
from golem_task_api.node.workgen.events import Event, EventBus, EventStream, JsonLinesWriter
from golem_task_api.node.workgen.local_provider import LocalDirProvider
from golem_task_api.node.workgen.market import ProviderPool
from golem_task_api.node.workgen.progress import Progress, ProgressArgs, ProgressCallback
from golem_task_api.node.workgen.provider import Market, Provider, RunResult
from golem_task_api.node.workgen.script import Script
from golem_task_api.node.workgen.tasks import Attempt, RetryPolicy, Task, TaskState

__all__ = [
    "Attempt",
    "BatchError",
    "BatchTimeoutError",
    "Command",
    "CommandExecutionError",
    "CommandNotExecutedError",
    "Event",
    "EventBus",
    "EventStream",
    "InvalidTaskStateError",
    "Job",
    "JobCancelledError",
    "JobTimeoutError",
    "JsonLinesWriter",
    "LocalDirProvider",
    "Market",
    "NoProviderAvailableError",
    "ProcessFailedError",
    "Progress",
    "ProgressArgs",
    "ProgressCallback",
    "Provider",
    "ProviderPool",
    "RetryPolicy",
    "RunResult",
    "Script",
    "ScriptUsageError",
    "Task",
    "TaskFailedError",
    "TaskNotSettledError",
    "TaskRejectedError",
    "TaskSource",
    "TaskState",
    "WorkContext",
    "Worker",
    "WorkgenError",
    "execute_tasks",
]
