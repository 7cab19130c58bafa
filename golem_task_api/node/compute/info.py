"""What a compute node tells about itself: capacity, load and benchmark scores."""

from collections.abc import Mapping
from dataclasses import dataclass

from golem_task_api.node.compute.benchmarks import BenchmarkScore
from golem_task_api.node.compute.capacity import Resources
from golem_task_api.node.compute.states import ExecutionState


@dataclass(frozen=True)
class NodeInfo:
    """A snapshot.

    `used` is what running executions hold, `free` what is left of `total`,
    `queued` the summed usage of accepted executions waiting to start.
    `held_for` names the queued execution for which capacity is being held
    (backfill stopped so that it does not starve). `executions` counts the
    executions in the store by state; `benchmarks` are the cached scores.
    """

    total: Resources
    used: Resources
    free: Resources
    queued: Resources
    job_max: Resources
    running_executions: int
    queued_executions: int
    held_for: str | None
    executions: Mapping[ExecutionState, int]
    benchmarks: tuple[BenchmarkScore, ...]

    def benchmark_score(self, app_id: str, env_id: str | None = None) -> float | None:
        """The latest cached score of an app (in an environment), if any."""
        scores = [b for b in self.benchmarks if b.app_id == app_id and env_id in (None, b.env_id)]
        return max(scores, key=lambda b: b.measured_at).score if scores else None


__all__ = ["NodeInfo"]
