"""Scale-out: provider executions on a Dask distributed cluster.

`LocalNodeConfig(cluster="tcp://scheduler:8786")` (or `golem-task-api run
--cluster ...`) makes every Dask worker a compute node of the local node;
`local:N` starts a local cluster of N worker processes. Dask is the optional
`cluster` extra: nothing here imports it until a cluster is used.
"""

from golem_task_api.node.cluster.cluster import (
    LOCAL_PREFIX,
    ClusterError,
    DaskCluster,
    WorkerInfo,
    check_address,
)
from golem_task_api.node.cluster.nodes import cluster_compute_node, cluster_node_ids
from golem_task_api.node.cluster.runner import DaskBenchmark, DaskRunner

__all__ = [
    "LOCAL_PREFIX",
    "ClusterError",
    "DaskBenchmark",
    "DaskCluster",
    "DaskRunner",
    "WorkerInfo",
    "check_address",
    "cluster_compute_node",
    "cluster_node_ids",
]
