"""The compute node: the provider side of the node (design.md, layer 4)."""

from golem_task_api.node.compute.benchmarks import BenchmarkSource
from golem_task_api.node.compute.bidding import BidChain, BidDecision, BidRequest, BidStrategy
from golem_task_api.node.compute.callbacks import (
    Callback,
    CancelComplete,
    ChainedCallback,
    ComputeFailure,
    ExecutionProgress,
    PublishComplete,
    RunComplete,
)
from golem_task_api.node.compute.capacity import Allocation, CapacityConfig, Resources
from golem_task_api.node.compute.config import ComputeNodeConfig
from golem_task_api.node.compute.execution import Execution
from golem_task_api.node.compute.info import NodeInfo
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.offers import Bid, Offer, SubtaskWork
from golem_task_api.node.compute.publisher import KeepResult, Publisher
from golem_task_api.node.compute.runner import (
    ExecutionRunner,
    ProgressReporter,
    ProgressUpdate,
    RunJob,
    RunResult,
)
from golem_task_api.node.compute.states import ExecutionState, FailureKind, StateConflict

__all__ = [
    "Allocation",
    "BenchmarkSource",
    "Bid",
    "BidChain",
    "BidDecision",
    "BidRequest",
    "BidStrategy",
    "Callback",
    "CancelComplete",
    "CapacityConfig",
    "ChainedCallback",
    "ComputeFailure",
    "ComputeNode",
    "ComputeNodeConfig",
    "Execution",
    "ExecutionProgress",
    "ExecutionRunner",
    "ExecutionState",
    "FailureKind",
    "KeepResult",
    "NodeInfo",
    "Offer",
    "ProgressReporter",
    "ProgressUpdate",
    "PublishComplete",
    "Publisher",
    "Resources",
    "RunComplete",
    "RunJob",
    "RunResult",
    "StateConflict",
    "SubtaskWork",
]
