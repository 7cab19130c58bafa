"""What a requestor offers, what it hands over once the bid is won, and the bid.

These are plain values; `to_json`/`from_json` are the one place where they
become the text the execution store keeps.
"""

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from golem_task_api.node.compute.capacity import Resources, memory_mib
from golem_task_api.structs import Task
from golem_task_api.validation import check_id


@dataclass(frozen=True)
class Offer:
    """A requestor asks this node to bid for one subtask of a task.

    `requirements` fields left at 0 are filled from the node's default job
    usage. `timeout` is the run time the requestor allows (None: the node's
    default); `queue_timeout` how long it is willing to wait for a start.
    `min_benchmark_score` is the benchmark need: the score this node's run of
    the app's benchmark must reach. `execution_id` may be chosen by the
    requestor; otherwise the node assigns one.
    """

    task_id: str
    app_id: str
    env_id: str
    requestor_id: str
    prerequisites: Mapping[str, Any] = field(default_factory=dict)
    requirements: Resources = field(default_factory=Resources)
    min_benchmark_score: float | None = None
    timeout: float | None = None
    queue_timeout: float | None = None
    execution_id: str | None = None

    def __post_init__(self) -> None:
        check_id("task_id", self.task_id)
        if self.execution_id is not None:
            check_id("execution_id", self.execution_id)
        for name in ("app_id", "env_id", "requestor_id"):
            if not getattr(self, name):
                raise ValueError(f"an offer needs a non-empty {name}")
        for name in ("timeout", "queue_timeout", "min_benchmark_score"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.timeout == 0:
            raise ValueError("timeout must be positive (or None for the node's default)")

    @classmethod
    def from_task(
        cls,
        task_id: str,
        app_id: str,
        task: Task,
        requestor_id: str,
        *,
        cpu: int = 0,
        **options: Any,
    ) -> "Offer":
        """The offer for a subtask of `task` (as CreateTask returned it)."""
        requirements = Resources(
            cpu=cpu, memory_mib=memory_mib(task.inf_requirements.min_memory_mib)
        )
        return cls(
            task_id=task_id,
            app_id=app_id,
            env_id=task.env_id,
            requestor_id=requestor_id,
            prerequisites=dict(task.prerequisites),
            requirements=requirements,
            **options,
        )


@dataclass(frozen=True)
class SubtaskWork:
    """What the requestor hands over with `bid_accepted`: the subtask to compute.

    `resources` are the subtask's input files on this machine; the runner
    places them into the execution's dir.
    """

    subtask_id: str
    params: Mapping[str, Any] = field(default_factory=dict)
    resources: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        check_id("subtask_id", self.subtask_id)
        object.__setattr__(self, "resources", tuple(Path(p) for p in self.resources))


@dataclass(frozen=True)
class Bid:
    """The answer to `ask_for_bid`: bid or not, and why.

    When bidding, `execution_id` names the execution the node created (state
    Created) and `usage` what it will reserve while running; `benchmark_score`
    is this node's cached score for the app, if any.
    """

    accepted: bool
    reason: str
    execution_id: str | None = None
    usage: Resources | None = None
    benchmark_score: float | None = None


def offer_to_json(offer: Offer) -> str:
    req = offer.requirements
    return json.dumps(
        {
            "task_id": offer.task_id,
            "app_id": offer.app_id,
            "env_id": offer.env_id,
            "requestor_id": offer.requestor_id,
            "prerequisites": dict(offer.prerequisites),
            "requirements": [req.cpu, req.memory_mib, req.gpu],
            "min_benchmark_score": offer.min_benchmark_score,
            "timeout": offer.timeout,
            "queue_timeout": offer.queue_timeout,
            "execution_id": offer.execution_id,
        },
        sort_keys=True,
    )


def offer_from_json(text: str) -> Offer:
    data = json.loads(text)
    cpu, mem, gpu = data.pop("requirements")
    return Offer(requirements=Resources(cpu, mem, gpu), **data)


def work_to_json(work: SubtaskWork) -> str:
    return json.dumps(
        {
            "subtask_id": work.subtask_id,
            "params": dict(work.params),
            "resources": [str(p) for p in work.resources],
        },
        sort_keys=True,
    )


def work_from_json(text: str) -> SubtaskWork:
    data = json.loads(text)
    return SubtaskWork(
        data["subtask_id"], data["params"], tuple(Path(p) for p in data["resources"])
    )


__all__ = [
    "Bid",
    "Offer",
    "SubtaskWork",
    "offer_from_json",
    "offer_to_json",
    "work_from_json",
    "work_to_json",
]
