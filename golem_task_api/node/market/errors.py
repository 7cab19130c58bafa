"""Why a compute node did not give the work generator a result."""

from golem_task_api.node.compute.execution import Execution
from golem_task_api.node.compute.states import ExecutionState
from golem_task_api.node.workgen.errors import WorkgenError


class ComputeNodeError(WorkgenError):
    """Base of the compute-node adapter's errors; `node_id` says which node."""

    def __init__(self, message: str, *, node_id: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.node_id = node_id
        self.retryable = retryable


class BidRefusedError(ComputeNodeError):
    """The node would not take another subtask of the task; `reason` is its own."""

    def __init__(self, node_id: str, reason: str) -> None:
        super().__init__(f"node {node_id} refused to bid: {reason}", node_id=node_id)
        self.reason = reason


class ExecutionFailedError(ComputeNodeError):
    """The execution ended without a result (Failed or Cancelled on the node).

    `retryable` is the node's verdict: whether another try, elsewhere, may work.
    """

    def __init__(self, node_id: str, execution: Execution) -> None:
        work = execution.work
        what = f"subtask {work.subtask_id}" if work is not None else "the subtask"
        failure = f" ({execution.failure.value})" if execution.failure is not None else ""
        super().__init__(
            f"{what} on node {node_id}, execution {execution.execution_id}:"
            f" {execution.state.value}{failure}: {execution.reason}",
            node_id=node_id,
            # Cancelled by someone else (its operator): another node may do it.
            retryable=execution.retryable or execution.state is ExecutionState.CANCELLED,
        )
        self.execution = execution


class NodeStoppedError(ComputeNodeError):
    """The node stopped while the execution waited for it."""

    def __init__(self, node_id: str, execution_id: str) -> None:
        super().__init__(
            f"node {node_id} stopped before execution {execution_id} ended", node_id=node_id
        )
        self.execution_id = execution_id


__all__ = ["BidRefusedError", "ComputeNodeError", "ExecutionFailedError", "NodeStoppedError"]
