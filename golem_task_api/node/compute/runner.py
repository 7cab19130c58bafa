"""The seam between the executor buffer and what actually computes a subtask.

The node's production runner starts a Task API app's ProviderApp server in an
environment and calls ComputeWithProgress; anything else that honours the
`ExecutionRunner` contract can stand in (tests run plain child processes).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from golem_task_api.node.compute.capacity import Allocation
from golem_task_api.node.compute.execution import Execution
from golem_task_api.node.progress import Progress, ProgressCallback

# The node's progress value (the fields of progress.md's ProgressEvent), under
# the name the compute node has always used for it.
ProgressUpdate = Progress
ProgressReporter = ProgressCallback


@dataclass(frozen=True)
class RunJob:
    """Everything a runner gets for one execution.

    `workdir` is the execution's own empty directory, which the node created
    and removes once the execution is over; every file of the run must stay in
    it, the result too. `allocation` names the resources reserved, with the
    concrete GPU ids to expose. `timeout` is the run time the node enforces
    (for information: the node cancels the run when it is up).
    """

    execution: Execution
    workdir: Path
    allocation: Allocation
    timeout: float | None


@dataclass(frozen=True)
class RunResult:
    """How a run ended, when it ended by itself.

    On success, `output_path` is the result file (or dir), relative to the
    workdir or absolute inside it. On failure, `error` says why for a person,
    and `retryable` whether another try (maybe elsewhere) may succeed.
    """

    output_path: Path | None = None
    error: str = ""
    retryable: bool = False

    @classmethod
    def succeeded(cls, output_path: str | Path) -> "RunResult":
        return cls(output_path=Path(output_path))

    @classmethod
    def failed(cls, error: str, *, retryable: bool = False) -> "RunResult":
        return cls(error=error or "the run failed", retryable=retryable)

    @property
    def ok(self) -> bool:
        return self.output_path is not None


class ExecutionRunner(Protocol):
    """Computes one execution.

    The contract:

    - `run` returns a `RunResult` when the work has ended by itself; raising
      an exception is a failure too (recorded as retryable, since it is this
      node's trouble rather than the subtask's).
    - Cancelling the task that awaits `run` must stop the work (kill the
      process group, stop the container), and `run` must let the
      `CancelledError` propagate only once the work has really stopped: the
      node frees the execution's capacity the moment `run` is over. It must
      not swallow the cancellation.
    - `report_progress` is cheap and never blocks or raises; call it as often
      as is useful.
    """

    async def run(self, job: RunJob, report_progress: ProgressReporter) -> RunResult: ...


__all__ = ["ExecutionRunner", "ProgressReporter", "ProgressUpdate", "RunJob", "RunResult"]
