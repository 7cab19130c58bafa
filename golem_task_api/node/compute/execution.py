"""The execution record: one subtask on this node, as the store keeps it."""

from dataclasses import dataclass
from pathlib import Path

from golem_task_api.node.compute.capacity import Resources
from golem_task_api.node.compute.offers import Offer, SubtaskWork
from golem_task_api.node.compute.states import ExecutionState, FailureKind


@dataclass(frozen=True)
class Execution:
    """A snapshot; the store is the truth, and every change bumps `version`.

    `timeout` is the run time allowed (seconds, None: unbounded);
    `queue_deadline` the wall-clock time (`time.time()`) by which the run must
    have started; `seq` the arrival order in the executor's queue.
    """

    execution_id: str
    offer: Offer
    usage: Resources
    state: ExecutionState
    version: int
    created_at: float
    updated_at: float
    timeout: float | None = None
    queue_deadline: float | None = None
    seq: int | None = None
    work: SubtaskWork | None = None
    result_path: Path | None = None
    published: str | None = None
    failure: FailureKind | None = None
    retryable: bool = False
    reason: str = ""

    @property
    def task_id(self) -> str:
        return self.offer.task_id

    @property
    def requestor_id(self) -> str:
        return self.offer.requestor_id

    @property
    def app_id(self) -> str:
        return self.offer.app_id

    @property
    def env_id(self) -> str:
        return self.offer.env_id


__all__ = ["Execution"]
