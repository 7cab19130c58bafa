"""Compute nodes backed by Dask workers: one per worker, named `cluster-1`...

A worker's capacity is its threads as CPU slots and its memory limit (the
machine's memory when the worker has none) as memory; the market then
spreads subtasks over the workers as over any other compute nodes, and the
requestor's rules (a node that failed verification gets no more subtasks of
that task) apply per worker.
"""

from pathlib import Path

import psutil  # type: ignore[import-untyped, unused-ignore]

from golem_task_api.node.app_registry import AppRegistry, KnownAppStrategy
from golem_task_api.node.cluster.cluster import DaskCluster, WorkerInfo
from golem_task_api.node.cluster.runner import DaskBenchmark, DaskRunner
from golem_task_api.node.compute.bidding import BidDecision, BidRequest
from golem_task_api.node.compute.capacity import DEFAULT_MEMORY_FRACTION, CapacityConfig
from golem_task_api.node.compute.config import ComputeNodeConfig
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.taskapi_runner import DEFAULT_UPDATE_INTERVAL
from golem_task_api.node.compute.taskapi_services import ProviderServices

CLUSTER_NODE_PREFIX = "cluster-"


def cluster_node_id(number: int) -> str:
    return f"{CLUSTER_NODE_PREFIX}{number}"


def cluster_node_ids(count: int) -> list[str]:
    return [cluster_node_id(number) for number in range(1, count + 1)]


def worker_capacity(worker: WorkerInfo) -> CapacityConfig:
    memory = worker.memory_bytes or psutil.virtual_memory().total
    memory_mib = int(memory * DEFAULT_MEMORY_FRACTION) // 2**20
    return CapacityConfig.from_machine(cpu=max(1, worker.threads), memory_mib=memory_mib)


class WorkerPresentStrategy:
    """A bid strategy: no bids once the node's worker has left the cluster
    (a worker restarted by its nanny comes back under another address)."""

    def __init__(self, cluster: DaskCluster, worker: str) -> None:
        self.cluster = cluster
        self.worker = worker

    def should_bid(self, request: BidRequest) -> BidDecision:
        if self.cluster.worker_gone(self.worker):
            return BidDecision.no(f"the Dask worker {self.worker} left the cluster")
        return BidDecision.yes()


def cluster_compute_node(
    work_dir: Path,
    cluster: DaskCluster,
    worker: WorkerInfo,
    registry: AppRegistry,
    *,
    update_interval: float = DEFAULT_UPDATE_INTERVAL,
    default_timeout: float | None = None,
) -> ComputeNode:
    """A `ComputeNode` (not started) whose runs and benchmarks happen on `worker`."""
    config = ComputeNodeConfig(
        Path(work_dir),
        capacity=worker_capacity(worker),
        # The workers start providers as local processes, as this node would.
        environments=ProviderServices().env_ids() or frozenset(),
        default_timeout=default_timeout,
    )
    return ComputeNode(
        config,
        DaskRunner(cluster, worker.address, registry, update_interval=update_interval),
        benchmark_source=DaskBenchmark(cluster, worker.address, registry),
        extra_strategies=[
            KnownAppStrategy(registry), WorkerPresentStrategy(cluster, worker.address)
        ],
    )


__all__ = [
    "CLUSTER_NODE_PREFIX",
    "WorkerPresentStrategy",
    "cluster_compute_node",
    "cluster_node_id",
    "cluster_node_ids",
    "worker_capacity",
]
