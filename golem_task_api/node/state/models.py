"""What the node records of tasks and subtasks: their states and their rows.

The rows are NamedTuples, not dataclasses: `golem-task-api status` imports
this module, and `dataclasses` (with `inspect`, `ast`, `dis`) and building
frozen dataclasses cost it about a fifth of its time. Change a row with
`row._replace(...)`.
"""

import enum
import json
from typing import Any, NamedTuple


class TaskState(enum.Enum):
    CREATING = "creating"      # dirs prepared, CreateTask not known to have succeeded
    RUNNING = "running"        # subtasks being handed out, computed, verified
    DELIVERING = "delivering"  # complete in the app; copying task_outputs/ out
    COMPLETED = "completed"    # every output file is in the output dir
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    ABORTED = "aborted"

    @property
    def finished(self) -> bool:
        return self in FINISHED_TASK_STATES


FINISHED_TASK_STATES = frozenset(
    {TaskState.COMPLETED, TaskState.FAILED, TaskState.TIMED_OUT, TaskState.ABORTED}
)
UNFINISHED_TASK_STATES = frozenset(TaskState) - FINISHED_TASK_STATES


class SubtaskState(enum.Enum):
    REQUESTED = "requested"        # NextSubtask asked, its answer not recorded
    ISSUED = "issued"              # the app gave it to a node
    COMPUTING = "computing"        # resources sent, the node computes
    DOWNLOADED = "downloaded"      # its result is in subtask_outputs/{id}/
    VERIFYING = "verifying"        # Verify asked, its answer not recorded
    AWAITING_DATA = "awaiting_data"  # Verify said AWAITING_DATA: asked again later
    VERIFIED = "verified"          # SUCCESS
    REJECTED = "rejected"          # FAILURE or INCONCLUSIVE
    FAILED = "failed"              # the compute failed; the app was told (AbortSubtask)
    TIMED_OUT = "timed_out"        # the subtask timeout; the app was told
    LOST = "lost"                  # in flight when the node died; the app was told
    ABORTED = "aborted"            # its task was aborted or ended
    DISCARDED = "discarded"        # verified, then discarded by the user (restart)

    @property
    def settled(self) -> bool:
        return self not in UNSETTLED_SUBTASK_STATES


UNSETTLED_SUBTASK_STATES = frozenset(
    {
        SubtaskState.REQUESTED,
        SubtaskState.ISSUED,
        SubtaskState.COMPUTING,
        SubtaskState.DOWNLOADED,
        SubtaskState.VERIFYING,
        SubtaskState.AWAITING_DATA,
    }
)
# The app hands these parts out again (a retry).
RETRIED_SUBTASK_STATES = frozenset(
    {SubtaskState.REJECTED, SubtaskState.FAILED, SubtaskState.TIMED_OUT, SubtaskState.LOST}
)


class Progress(NamedTuple):
    """The latest progress value of a task or a subtask (None: none yet)."""

    done: float
    total: float | None = None
    unit: str = ""
    message: str = ""

    @property
    def fraction(self) -> float | None:
        if self.total is None or self.total <= 0:
            return None
        return min(1.0, self.done / self.total)


class AppRef(NamedTuple):
    """How the node finds and starts an app again (also after a restart)."""

    key: str                 # its name on this node, e.g. "tutorial"
    module: str              # run as `python -m MODULE`
    cwd: str | None          # where MODULE is importable from
    path: str | None = None  # the app's dir
    definition: dict[str, Any] | None = None  # its task-api-config.json

    def to_json(self) -> str:
        return json.dumps(
            {"key": self.key, "module": self.module, "cwd": self.cwd, "path": self.path,
             "definition": self.definition},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> "AppRef":
        data = json.loads(text)
        return cls(data["key"], data["module"], data.get("cwd"), data.get("path"),
                   data.get("definition"))


class TaskRow(NamedTuple):
    task_id: str
    app: AppRef
    params: dict[str, Any]
    inputs: list[str]
    max_subtasks: int
    output_dir: str
    state: TaskState = TaskState.CREATING
    error: str | None = None
    env_id: str | None = None
    prerequisites: dict[str, Any] | None = None
    min_memory_mib: float = 0.0
    timeout: float | None = None
    subtask_timeout: float | None = None
    deadline: float | None = None
    providers: int = 1
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None
    progress: Progress | None = None
    abort_requested: bool = False

    @property
    def app_key(self) -> str:
        return self.app.key


class SubtaskRow(NamedTuple):
    subtask_id: str
    task_id: str
    number: int
    node_id: str
    state: SubtaskState = SubtaskState.REQUESTED
    execution_id: str | None = None
    params: dict[str, Any] | None = None
    resources: list[str] = []  # shared by the rows that take it: never changed in place
    result_path: str | None = None
    reason: str | None = None
    retry_of: str | None = None
    verify_calls: int = 0
    verdict_reported: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None
    progress: Progress | None = None


__all__ = [
    "FINISHED_TASK_STATES",
    "RETRIED_SUBTASK_STATES",
    "UNFINISHED_TASK_STATES",
    "UNSETTLED_SUBTASK_STATES",
    "AppRef",
    "Progress",
    "SubtaskRow",
    "SubtaskState",
    "TaskRow",
    "TaskState",
]
