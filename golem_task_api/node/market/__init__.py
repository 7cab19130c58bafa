"""The work generator on local compute nodes: a `Market` of nodes, their
`Provider` adapter, and the default worker for Task API subtasks."""

from golem_task_api.node.market.errors import (
    BidRefusedError,
    ComputeNodeError,
    ExecutionFailedError,
    NodeStoppedError,
)
from golem_task_api.node.market.market import ComputeMarket
from golem_task_api.node.market.provider import ComputeNodeProvider
from golem_task_api.node.market.selection import (
    Candidate,
    SelectionStrategy,
    fastest_first,
    most_free_capacity,
)
from golem_task_api.node.market.worker import (
    SubtaskResult,
    SubtaskSpec,
    VerdictSink,
    Verifier,
    subtask_worker,
)

__all__ = [
    "BidRefusedError",
    "Candidate",
    "ComputeMarket",
    "ComputeNodeError",
    "ComputeNodeProvider",
    "ExecutionFailedError",
    "NodeStoppedError",
    "SelectionStrategy",
    "SubtaskResult",
    "SubtaskSpec",
    "VerdictSink",
    "Verifier",
    "fastest_first",
    "most_free_capacity",
    "subtask_worker",
]
