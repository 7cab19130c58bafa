"""The executor buffer: a FIFO queue of accepted executions and the runs it starts.

Scheduling, on every arrival and every release of capacity:

- The queue is ordered by arrival sequence (`Execution.seq`), so ties are
  broken by arrival, never by chance.
- The first queued execution that fits in the free capacity now starts. A
  smaller execution may pass a larger one that does not fit (backfill), but
  every pass is counted on the executions passed, and once the earliest of
  them has been passed `max_passes` times (or has waited `max_head_wait`
  seconds) nothing passes it any more: capacity is held for it as running
  work ends. `max_passes=0` is strict FIFO. No execution starves.
- A pass looks at the first `backfill_depth` queued executions only (as
  Slurm's backfill does), so a pass stays cheap however long the queue.
- Cancelling a queued execution removes it at once (its queued usage with
  it); cancelling a running one cancels its run, and its capacity is freed
  only when the runner has returned, i.e. the work has really stopped.
- A run gets the timeout of its execution and a queued execution may have a
  queue deadline; both call back into the node (`BufferHooks`) first, which
  records the new state, and only then is the work stopped.

The buffer knows nothing of the store: the node's `BufferHooks` write state.
It runs on one event loop and is not thread-safe.
"""

import asyncio
import enum
import logging
from dataclasses import dataclass, field
from typing import Protocol

from golem_task_api.node.compute.capacity import Allocation, CapacityTracker, Resources
from golem_task_api.node.compute.execution import Execution
from golem_task_api.node.compute.runner import (
    ExecutionRunner,
    ProgressUpdate,
    RunJob,
    RunResult,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_PASSES = 8
DEFAULT_BACKFILL_DEPTH = 256
STOP_WARNING_SECONDS = 30.0


class StopReason(enum.Enum):
    CANCEL = "cancel"
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"


class StopResult(enum.Enum):
    DEQUEUED = "dequeued"  # it was queued: removed, nothing ran
    STOPPING = "stopping"  # it was running: its run is being stopped
    UNKNOWN = "unknown"  # neither queued nor running here


@dataclass(eq=False)
class QueuedExecution:
    execution: Execution
    timeout: float | None
    enqueued_at: float
    passed: int = 0
    deadline_timer: asyncio.TimerHandle | None = None

    @property
    def execution_id(self) -> str:
        return self.execution.execution_id

    @property
    def usage(self) -> Resources:
        return self.execution.usage

    @property
    def seq(self) -> int:
        return self.execution.seq or 0


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: by itself (`result`) or stopped by the node (`stopped`)."""

    result: RunResult | None
    stopped: StopReason | None
    duration: float


class BufferHooks(Protocol):
    """The node's side of the buffer; every hook is quick and synchronous."""

    def started(self, item: QueuedExecution, allocation: Allocation) -> RunJob | None:
        """Record that the run starts and prepare its workdir; None: do not run it."""

    def timed_out(self, item: QueuedExecution) -> bool:
        """Record a run timeout; True: stop the run."""

    def queue_expired(self, item: QueuedExecution) -> None:
        """Record that it waited too long (it has been removed from the queue)."""

    def progress(self, item: QueuedExecution, update: ProgressUpdate) -> None: ...

    def finished(self, item: QueuedExecution, outcome: RunOutcome) -> None:
        """The run is over and its capacity free: record the outcome."""


@dataclass(eq=False)
class _Run:
    item: QueuedExecution
    allocation: Allocation
    job: RunJob
    started_at: float
    task: "asyncio.Task[RunResult] | None" = None
    stop_reason: StopReason | None = None
    stop_requested_at: float = 0.0
    timers: list[asyncio.TimerHandle] = field(default_factory=list)


class ExecutorBuffer:
    def __init__(
        self,
        tracker: CapacityTracker,
        runner: ExecutionRunner,
        hooks: BufferHooks,
        *,
        max_passes: int = DEFAULT_MAX_PASSES,
        max_head_wait: float | None = None,
        backfill_depth: int = DEFAULT_BACKFILL_DEPTH,
        stop_warning: float = STOP_WARNING_SECONDS,
    ) -> None:
        if max_passes < 0:
            raise ValueError(f"max_passes must be >= 0, got {max_passes}")
        if backfill_depth < 1:
            raise ValueError(f"backfill_depth must be >= 1, got {backfill_depth}")
        self._tracker = tracker
        self._runner = runner
        self._hooks = hooks
        self._max_passes = max_passes
        self._max_head_wait = max_head_wait
        self._backfill_depth = backfill_depth
        self._stop_warning = stop_warning
        self._queue: dict[str, QueuedExecution] = {}
        self._running: dict[str, _Run] = {}
        self._queued_usage = Resources()
        self._held_for: str | None = None
        self._scheduling = False
        self._reschedule = False
        self._closed = False

    # -- what is going on ----------------------------------------------------

    @property
    def tracker(self) -> CapacityTracker:
        return self._tracker

    @property
    def queued_usage(self) -> Resources:
        return self._queued_usage

    @property
    def held_for(self) -> str | None:
        """The execution that capacity is being held for, if backfill is stopped."""
        return self._held_for

    @property
    def queued_count(self) -> int:
        return len(self._queue)

    @property
    def running_count(self) -> int:
        return len(self._running)

    def queued_ids(self) -> list[str]:
        return list(self._queue)

    def running_ids(self) -> list[str]:
        return list(self._running)

    def is_queued(self, execution_id: str) -> bool:
        return execution_id in self._queue

    def is_running(self, execution_id: str) -> bool:
        return execution_id in self._running

    # -- arrivals and departures ---------------------------------------------

    def enqueue(
        self,
        execution: Execution,
        *,
        timeout: float | None = None,
        queue_timeout: float | None = None,
    ) -> None:
        """Queue `execution` (its `seq` set) and start what fits."""
        if self._closed:
            raise RuntimeError("the executor buffer is closed")
        execution_id = execution.execution_id
        if execution_id in self._queue or execution_id in self._running:
            raise ValueError(f"execution {execution_id!r} is already queued or running")
        if execution.seq is None:
            raise ValueError(f"execution {execution_id!r} has no arrival sequence")
        if not self._tracker.can_ever_fit(execution.usage):
            problems = ", ".join(execution.usage.excess_over(self._tracker.total))
            raise ValueError(f"execution {execution_id!r} can never run here: {problems}")
        loop = asyncio.get_running_loop()
        item = QueuedExecution(execution, timeout, loop.time())
        if queue_timeout is not None:
            item.deadline_timer = loop.call_later(
                max(0.0, queue_timeout), self._queue_expired, item
            )
        self._insert(item)
        self._schedule()

    def _insert(self, item: QueuedExecution) -> None:
        last = next(reversed(self._queue.values()), None)
        self._queue[item.execution_id] = item
        if last is not None and last.seq > item.seq:
            # Out of order (e.g. a restart re-queues older executions after a
            # newer one arrived): restore arrival order.
            self._queue = dict(sorted(self._queue.items(), key=lambda kv: kv[1].seq))
        self._queued_usage = self._queued_usage + item.usage

    def _dequeue(self, item: QueuedExecution) -> None:
        del self._queue[item.execution_id]
        self._queued_usage = self._queued_usage - item.usage
        if item.deadline_timer is not None:
            item.deadline_timer.cancel()
        if self._held_for == item.execution_id:
            self._held_for = None

    def stop(self, execution_id: str, reason: StopReason = StopReason.CANCEL) -> StopResult:
        """Remove a queued execution at once, or start stopping a running one.

        The caller records the new state first. A running execution's
        `finished` hook follows once its run has really stopped.
        """
        item = self._queue.get(execution_id)
        if item is not None:
            self._dequeue(item)
            self._schedule()
            return StopResult.DEQUEUED
        run = self._running.get(execution_id)
        if run is None:
            return StopResult.UNKNOWN
        self._stop_run(run, reason)
        return StopResult.STOPPING

    async def wait_stopped(self, execution_id: str) -> None:
        """Return when the execution's run (if any) is over and its capacity free."""
        run = self._running.get(execution_id)
        if run is not None and run.task is not None:
            # asyncio.wait neither raises the task's outcome nor cancels it
            # when the caller is cancelled.
            await asyncio.wait({run.task})

    async def aclose(self) -> None:
        """Forget the queue, stop every run and wait until all have stopped.

        Queued executions get no hook call: their state stays as it was (for
        the node to re-queue them when it starts again).
        """
        self._closed = True
        for item in list(self._queue.values()):
            self._dequeue(item)
        runs = list(self._running.values())
        for run in runs:
            self._stop_run(run, StopReason.SHUTDOWN)
        tasks = [run.task for run in runs if run.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- scheduling ------------------------------------------------------------

    def _schedule(self) -> None:
        # Hooks may call back into the buffer; a nested call only asks the
        # outer one for another pass, so passes never interleave.
        if self._scheduling:
            self._reschedule = True
            return
        self._scheduling = True
        try:
            self._reschedule = True
            while self._reschedule and not self._closed:
                self._reschedule = False
                self._schedule_pass()
        finally:
            self._scheduling = False

    def _schedule_pass(self) -> None:
        # Decide on a consistent view first, then start: starting takes an
        # execution out of the queue and calls the node, which may change it.
        self._held_for = None
        used, total = self._tracker.used, self._tracker.total
        free_cpu = total.cpu - used.cpu
        free_memory = total.memory_mib - used.memory_mib
        free_gpu = total.gpu - used.gpu
        chosen: list[QueuedExecution] = []
        passed_over: list[QueuedExecution] = []
        for depth, item in enumerate(self._queue.values()):
            if free_cpu == 0 or depth == self._backfill_depth:
                break  # every execution takes at least one slot
            usage = item.usage
            if usage.cpu <= free_cpu and usage.memory_mib <= free_memory and usage.gpu <= free_gpu:
                chosen.append(item)
                free_cpu -= usage.cpu
                free_memory -= usage.memory_mib
                free_gpu -= usage.gpu
                for waiting in passed_over:
                    waiting.passed += 1
            elif not passed_over and self._must_hold(item):
                self._held_for = item.execution_id
                break
            else:
                passed_over.append(item)
        for item in chosen:
            if not self._start(item):
                self._reschedule = True  # its capacity is free again

    def _must_hold(self, item: QueuedExecution) -> bool:
        if item.passed >= self._max_passes:
            return True
        waited = asyncio.get_running_loop().time() - item.enqueued_at
        return self._max_head_wait is not None and waited >= self._max_head_wait

    def _start(self, item: QueuedExecution) -> bool:
        if self._queue.get(item.execution_id) is not item:
            return False  # stopped by a hook of an earlier start in this pass
        allocation = self._tracker.try_reserve(item.usage)
        if allocation is None:
            return False
        self._dequeue(item)
        try:
            job = self._hooks.started(item, allocation)
        except Exception:
            logger.exception("could not start execution %s", item.execution_id)
            job = None
        if job is None:
            self._tracker.release(allocation)
            return False
        loop = asyncio.get_running_loop()
        run = _Run(item, allocation, job, loop.time())
        self._running[item.execution_id] = run
        run.task = loop.create_task(self._run(run), name=f"execution {item.execution_id}")
        run.task.add_done_callback(lambda task: self._run_done(run, task))
        if item.timeout is not None:
            run.timers.append(loop.call_later(item.timeout, self._timed_out, run))
        return True

    # -- runs ------------------------------------------------------------------

    async def _run(self, run: _Run) -> RunResult:
        return await self._runner.run(run.job, lambda u: self._progress(run, u))

    def _run_done(self, run: _Run, task: "asyncio.Task[RunResult]") -> None:
        # A done callback rather than a `finally` in `_run`: a task cancelled
        # before its first step never runs its body, and its capacity must be
        # freed all the same.
        for timer in run.timers:
            timer.cancel()
        del self._running[run.item.execution_id]
        self._tracker.release(run.allocation)
        result: RunResult | None = None
        if task.cancelled():
            if run.stop_reason is None:
                run.stop_reason = StopReason.SHUTDOWN  # not ours: the loop is closing
        elif (exc := task.exception()) is not None:
            logger.error(
                "the runner of execution %s raised",
                run.item.execution_id,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
            result = RunResult.failed(
                f"the runner raised {type(exc).__name__}: {exc}", retryable=True
            )
        else:
            result = task.result()
        outcome = RunOutcome(
            result if run.stop_reason is None else None,
            run.stop_reason,
            asyncio.get_running_loop().time() - run.started_at,
        )
        try:
            self._hooks.finished(run.item, outcome)
        except Exception:
            logger.exception("recording the end of execution %s failed", run.item.execution_id)
        if not self._closed:
            self._schedule()

    def _progress(self, run: _Run, update: ProgressUpdate) -> None:
        if run.stop_reason is not None:
            return  # the execution has moved on; late values would mislead
        try:
            self._hooks.progress(run.item, update)
        except Exception:
            logger.exception("progress of execution %s was lost", run.item.execution_id)

    def _stop_run(self, run: _Run, reason: StopReason) -> None:
        if run.stop_reason is not None or run.task is None or run.task.done():
            return
        loop = asyncio.get_running_loop()
        run.stop_reason = reason
        run.stop_requested_at = loop.time()
        run.task.cancel()
        run.timers.append(loop.call_later(self._stop_warning, self._still_running, run))

    def _still_running(self, run: _Run) -> None:
        logger.warning(
            "execution %s was asked to stop (%s) %.0f s ago and its runner has not"
            " returned: its capacity stays reserved until it does",
            run.item.execution_id,
            run.stop_reason.value if run.stop_reason else "?",
            asyncio.get_running_loop().time() - run.stop_requested_at,
        )

    def _timed_out(self, run: _Run) -> None:
        if run.stop_reason is not None or run.task is None or run.task.done():
            return
        try:
            stop = self._hooks.timed_out(run.item)
        except Exception:
            logger.exception("recording the timeout of %s failed", run.item.execution_id)
            stop = True
        if stop:
            self._stop_run(run, StopReason.TIMEOUT)

    def _queue_expired(self, item: QueuedExecution) -> None:
        if self._queue.get(item.execution_id) is not item:
            return
        self._dequeue(item)
        try:
            self._hooks.queue_expired(item)
        except Exception:
            logger.exception("recording the queue timeout of %s failed", item.execution_id)
        self._schedule()


__all__ = [
    "DEFAULT_BACKFILL_DEPTH",
    "DEFAULT_MAX_PASSES",
    "BufferHooks",
    "ExecutorBuffer",
    "QueuedExecution",
    "RunOutcome",
    "StopReason",
    "StopResult",
]
