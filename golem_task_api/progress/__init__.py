"""Progress of computations and tasks: report it, watch it (shared/progress.md)."""

from golem_task_api.progress.clock import Clock, LoopClock, ManualClock
from golem_task_api.progress.computation import ComputationProgress
from golem_task_api.progress.events import ProgressUpdate, from_event, progress_args, to_event
from golem_task_api.progress.fileformat import parse_line
from golem_task_api.progress.filewatch import (
    GOLEM_PROGRESS_FILE,
    ProgressFileReader,
    ProgressFileWatcher,
    new_progress_file,
    progress_file,
    progress_file_env,
    remove_progress_file,
)
from golem_task_api.progress.report import bind, current_progress_file, current_tracker, report
from golem_task_api.progress.tail import TailReader
from golem_task_api.progress.throttle import (
    DEFAULT_INTERVAL,
    HEARTBEAT,
    MIN_INTERVAL,
    Decision,
    Reason,
    Throttle,
)
from golem_task_api.progress.tracker import ProgressTracker
from golem_task_api.progress.value import ProgressValue, State, check_value

__all__ = [
    "DEFAULT_INTERVAL",
    "GOLEM_PROGRESS_FILE",
    "HEARTBEAT",
    "MIN_INTERVAL",
    "Clock",
    "ComputationProgress",
    "Decision",
    "LoopClock",
    "ManualClock",
    "ProgressFileReader",
    "ProgressFileWatcher",
    "ProgressTracker",
    "ProgressUpdate",
    "ProgressValue",
    "Reason",
    "State",
    "TailReader",
    "Throttle",
    "bind",
    "check_value",
    "current_progress_file",
    "current_tracker",
    "from_event",
    "new_progress_file",
    "parse_line",
    "progress_args",
    "progress_file",
    "progress_file_env",
    "remove_progress_file",
    "report",
    "to_event",
]
