"""Child processes for handlers: run, stream, measure, and never leave one behind."""

from golem_task_api.apputils.process.command import (
    DEFAULT_SAMPLE_INTERVAL,
    DEFAULT_TERMINATE_TIMEOUT,
    CmdResult,
    CmdTimeoutError,
    RunOptions,
    exec_and_monitor_cmd,
    exec_cmd,
    run_cmd,
)
from golem_task_api.apputils.process.output import CAPTURE, DEVNULL, PIPE, STDOUT
from golem_task_api.apputils.process.usage import Usage

__all__ = [
    "CAPTURE",
    "DEFAULT_SAMPLE_INTERVAL",
    "DEFAULT_TERMINATE_TIMEOUT",
    "DEVNULL",
    "PIPE",
    "STDOUT",
    "CmdResult",
    "CmdTimeoutError",
    "RunOptions",
    "Usage",
    "exec_and_monitor_cmd",
    "exec_cmd",
    "run_cmd",
]
