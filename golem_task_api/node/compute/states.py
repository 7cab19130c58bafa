"""The execution state machine: states, the transitions allowed, failure kinds.

    Created ──bid accepted──▶ BidAccepted ──started──▶ Running
    Running ──result ready──▶ AwaitingVerification ──result accepted──▶ Publishing
    Publishing ──published──▶ Completed

Failed and Cancelled are reachable from every non-terminal state; Completed,
Failed and Cancelled are terminal and final. AwaitingVerification sits
between Running and Publishing because a run's capacity is freed when the run
ends while the requestor's verdict may take long, and a result that waits for
its verdict survives a restart (it is on disk), whereas a run does not.
"""

import enum

from golem_task_api.errors import FailedPrecondition, NotFound


class ExecutionState(enum.Enum):
    CREATED = "created"
    BID_ACCEPTED = "bid_accepted"
    RUNNING = "running"
    AWAITING_VERIFICATION = "awaiting_verification"
    PUBLISHING = "publishing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {ExecutionState.COMPLETED, ExecutionState.FAILED, ExecutionState.CANCELLED}
)
ACTIVE_STATES = frozenset(ExecutionState) - TERMINAL_STATES

_FORWARD = {
    ExecutionState.CREATED: ExecutionState.BID_ACCEPTED,
    ExecutionState.BID_ACCEPTED: ExecutionState.RUNNING,
    ExecutionState.RUNNING: ExecutionState.AWAITING_VERIFICATION,
    ExecutionState.AWAITING_VERIFICATION: ExecutionState.PUBLISHING,
    ExecutionState.PUBLISHING: ExecutionState.COMPLETED,
}

ALLOWED_TRANSITIONS: dict[ExecutionState, frozenset[ExecutionState]] = {
    state: (
        frozenset()
        if state.terminal
        else frozenset({_FORWARD[state], ExecutionState.FAILED, ExecutionState.CANCELLED})
    )
    for state in ExecutionState
}


class FailureKind(enum.Enum):
    """Why an execution failed.

    The execution's `retryable` flag says whether another try (on this node
    or another) may work: it is set for everything that is not the subtask's
    own fault (timeouts, restarts, shutdowns, runner trouble, a rejected
    result that another provider may compute right) and clear for a run that
    failed by itself or gave an unusable output, unless the runner says
    otherwise.
    """

    TIMEOUT = "timeout"
    QUEUE_TIMEOUT = "queue_timeout"
    NODE_RESTART = "node_restart"
    NODE_SHUTDOWN = "node_shutdown"
    RUN_ERROR = "run_error"
    INVALID_OUTPUT = "invalid_output"
    RESULT_REJECTED = "result_rejected"
    VERIFICATION_TIMEOUT = "verification_timeout"
    PUBLISH_ERROR = "publish_error"
    CAPACITY = "capacity"


class ExecutionNotFound(NotFound):
    def __init__(self, execution_id: str) -> None:
        super().__init__(f"no execution {execution_id!r} on this node")
        self.execution_id = execution_id


class IllegalTransition(FailedPrecondition):
    """A transition the state machine never allows (a bug in the caller)."""


class StateConflict(FailedPrecondition):
    """The execution is not in the state the caller expected (a late write)."""

    def __init__(self, execution_id: str, actual: ExecutionState, message: str) -> None:
        super().__init__(message)
        self.execution_id = execution_id
        self.actual = actual


def check_transition(current: ExecutionState, new: ExecutionState) -> None:
    if new not in ALLOWED_TRANSITIONS[current]:
        if current.terminal:
            raise IllegalTransition(f"{current.value} is terminal: it cannot become {new.value}")
        raise IllegalTransition(f"an execution cannot go from {current.value} to {new.value}")


__all__ = [
    "ACTIVE_STATES",
    "ALLOWED_TRANSITIONS",
    "TERMINAL_STATES",
    "ExecutionNotFound",
    "ExecutionState",
    "FailureKind",
    "IllegalTransition",
    "StateConflict",
    "check_transition",
]
