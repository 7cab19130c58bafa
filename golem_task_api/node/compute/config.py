"""How a compute node is configured: capacity, environments, limits, timeouts."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from golem_task_api.envs.constants import DOCKER_CPU_ENV_ID, DOCKER_GPU_ENV_ID
from golem_task_api.node.compute.bidding import DEFAULT_PREREQUISITE_CHECKS, PrerequisiteCheck
from golem_task_api.node.compute.buffer import DEFAULT_BACKFILL_DEPTH, DEFAULT_MAX_PASSES
from golem_task_api.node.compute.capacity import CapacityConfig


@dataclass(frozen=True)
class ComputeNodeConfig:
    """How a compute node behaves; times are in seconds, None means no limit.

    - `default_timeout`: the run time of an offer that names none;
      `max_timeout`: offers asking for more are refused.
    - `queue_timeout`: how long an accepted execution may wait for its start
      (an offer's own `queue_timeout` wins); it then fails, retryable.
    - `bid_timeout`: a bid not accepted within it is withdrawn (Cancelled).
    - `verification_timeout`: a result whose verdict does not come within it
      fails, and its workdir is removed.
    - `max_passes`, `max_head_wait`: the backfill bound; `backfill_depth`
      how far down the queue a scheduling pass looks (see `buffer`).
    - `max_queued`: refuse offers while this many executions are queued.
    - `max_rejected_results`: refuse requestors that rejected this many results.
    - `retention`: forget terminal executions older than this at start.
    """

    work_dir: Path
    capacity: CapacityConfig = field(default_factory=CapacityConfig.from_machine)
    environments: frozenset[str] = frozenset({DOCKER_CPU_ENV_ID, DOCKER_GPU_ENV_ID})
    prerequisite_checks: Mapping[str, PrerequisiteCheck] = field(
        default_factory=lambda: dict(DEFAULT_PREREQUISITE_CHECKS)
    )
    refused_requestors: frozenset[str] = frozenset()
    max_rejected_results: int | None = None
    default_timeout: float | None = 3600.0
    max_timeout: float | None = None
    queue_timeout: float | None = None
    max_queued: int | None = None
    bid_timeout: float | None = 180.0
    verification_timeout: float | None = None
    max_passes: int = DEFAULT_MAX_PASSES
    max_head_wait: float | None = None
    backfill_depth: int = DEFAULT_BACKFILL_DEPTH
    keep_failed_workdirs: bool = False
    retention: float | None = None
    callback_close_timeout: float = 5.0

    def __post_init__(self) -> None:
        if (
            self.max_timeout is not None
            and self.default_timeout is not None
            and self.default_timeout > self.max_timeout
        ):
            raise ValueError(
                f"default_timeout {self.default_timeout:g} s exceeds max_timeout"
                f" {self.max_timeout:g} s"
            )

    @property
    def store_path(self) -> Path:
        return self.work_dir / "compute.sqlite"

    @property
    def executions_dir(self) -> Path:
        return self.work_dir / "executions"

    @property
    def results_dir(self) -> Path:
        return self.work_dir / "results"


__all__ = ["ComputeNodeConfig"]
