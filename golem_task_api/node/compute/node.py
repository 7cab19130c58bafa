"""`ComputeNode`: the provider side of the node, an endpoint wired to its parts.

The endpoint methods follow one rule: write the new state first (a
compare-and-set in the store), then act on it. So whatever a background task
finds when it finishes late, the store has already decided, and its write
bounces off. Each execution that reaches a terminal state produces exactly
one terminal event, once its work has stopped and its workdir is gone:
`PublishComplete` (Completed), `ComputeFailure` (Failed) or `CancelComplete`
(Cancelled). A run that ended with a result produces `RunComplete` before
that, when it starts waiting for the requestor's verdict.

Layout under `config.work_dir`: `compute.sqlite` (the store),
`executions/<execution_id>/` (one workdir per run), `results/` (kept results).

Everything runs on one event loop; the methods are not thread-safe.
"""

import asyncio
import contextlib
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

from golem_task_api.errors import AlreadyExists, InvalidArgument
from golem_task_api.node.compute.benchmarks import BenchmarkCache, BenchmarkSource
from golem_task_api.node.compute.bidding import (
    BenchmarkStrategy,
    BidChain,
    BidRequest,
    BidStrategy,
    EnvironmentStrategy,
    JobLimitStrategy,
    PrerequisitesStrategy,
    QueueLimitStrategy,
    RequestorStrategy,
    TimeoutStrategy,
    TotalCapacityStrategy,
)
from golem_task_api.node.compute.buffer import (
    ExecutorBuffer,
    QueuedExecution,
    RunOutcome,
    StopReason,
    StopResult,
)
from golem_task_api.node.compute.callbacks import (
    Callback,
    CancelComplete,
    ChainedCallback,
    ComputeEvent,
    ComputeFailure,
    ExecutionProgress,
    PublishComplete,
    RunComplete,
)
from golem_task_api.node.compute.capacity import Allocation, CapacityTracker
from golem_task_api.node.compute.config import ComputeNodeConfig
from golem_task_api.node.compute.execution import Execution
from golem_task_api.node.compute.info import NodeInfo
from golem_task_api.node.compute.offers import Bid, Offer, SubtaskWork
from golem_task_api.node.compute.process import GROUP_FILE, kill_recorded_group
from golem_task_api.node.compute.publisher import KeepResult, Publisher
from golem_task_api.node.compute.runner import ExecutionRunner, ProgressUpdate, RunJob
from golem_task_api.node.compute.states import (
    TERMINAL_STATES,
    ExecutionNotFound,
    ExecutionState,
    FailureKind,
    StateConflict,
)
from golem_task_api.node.compute.store import ExecutionStore, HistoryEntry
from golem_task_api.validation import resolve_inside

logger = logging.getLogger(__name__)

S = ExecutionState


class ComputeNode:
    """The provider side: answers bids, runs executions, reports on them.

    `start()` opens the store and recovers what a previous process left;
    `stop()` stops every run (recorded as Failed, retryable), waits for them
    and for the callbacks, and closes the store. Or use `async with`.
    """

    def __init__(
        self,
        config: ComputeNodeConfig,
        runner: ExecutionRunner,
        *,
        callbacks: Sequence[Callback] = (),
        publisher: Publisher | None = None,
        benchmark_source: BenchmarkSource | None = None,
        extra_strategies: Sequence[BidStrategy] = (),
        bid_chain: BidChain | None = None,
    ) -> None:
        self.config = config
        self._runner = runner
        self._callbacks = ChainedCallback(*callbacks)
        self._publisher = publisher or KeepResult(config.results_dir)
        self._benchmark_source = benchmark_source
        self._extra_strategies = list(extra_strategies)
        self._custom_chain = bid_chain
        self._store: ExecutionStore | None = None
        self._buffer: ExecutorBuffer | None = None
        self._benchmarks: BenchmarkCache | None = None
        self._chain: BidChain | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._publishing: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._progress: dict[str, ProgressUpdate] = {}
        self._watchers: dict[str, list[tuple[frozenset[S], asyncio.Future[Execution]]]] = {}
        self._status = "new"

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        if self._status != "new":
            raise RuntimeError(f"a compute node starts once (it is {self._status})")
        config = self.config
        config.executions_dir.mkdir(parents=True, exist_ok=True)
        config.results_dir.mkdir(parents=True, exist_ok=True)
        self._store = ExecutionStore(config.store_path)
        tracker = CapacityTracker(config.capacity.total, config.capacity.gpu_ids)
        self._buffer = ExecutorBuffer(
            tracker,
            self._runner,
            _Hooks(self),
            max_passes=config.max_passes,
            max_head_wait=config.max_head_wait,
            backfill_depth=config.backfill_depth,
        )
        self._benchmarks = BenchmarkCache(self._store, self._benchmark_source)
        self._chain = self._custom_chain or self._default_chain()
        self._status = "started"
        self._recover()

    async def stop(self) -> None:
        if self._status != "started":
            return
        self._status = "stopping"
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        reason = "the node stopped during the run"
        for execution_id in self.buffer.running_ids():
            self._try_move(execution_id, S.RUNNING, S.FAILED, FailureKind.NODE_SHUTDOWN, reason)
        publishing = list(self._publishing.items())
        for execution_id, task in publishing:
            self._try_move(execution_id, S.PUBLISHING, S.FAILED, FailureKind.NODE_SHUTDOWN, reason)
            task.cancel()
        await self.buffer.aclose()
        await asyncio.gather(*(task for _, task in publishing), return_exceptions=True)
        await self.benchmarks.aclose()
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        await self._callbacks.aclose(self.config.callback_close_timeout)
        for watchers in self._watchers.values():
            for _, future in watchers:
                if not future.done():
                    future.set_exception(RuntimeError("the compute node stopped"))
        self.store.close()
        self._status = "stopped"

    async def __aenter__(self) -> "ComputeNode":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def store(self) -> ExecutionStore:
        if self._store is None:
            raise RuntimeError("the compute node is not started")
        return self._store

    @property
    def buffer(self) -> ExecutorBuffer:
        if self._buffer is None:
            raise RuntimeError("the compute node is not started")
        return self._buffer

    @property
    def benchmarks(self) -> BenchmarkCache:
        if self._benchmarks is None:
            raise RuntimeError("the compute node is not started")
        return self._benchmarks

    @property
    def callbacks(self) -> ChainedCallback:
        return self._callbacks

    def _check_serving(self) -> None:
        if self._status != "started":
            raise RuntimeError(f"the compute node is {self._status}, not started")

    # -- the endpoint ----------------------------------------------------------

    async def ask_for_bid(self, offer: Offer) -> Bid:
        """Bid or not for `offer`, at once, with the reasons.

        A bid creates the execution (Created); it is withdrawn (Cancelled)
        unless `bid_accepted` comes within `config.bid_timeout`.
        """
        if self._status != "started":
            return Bid(False, f"the node is {self._status}, not taking work")
        usage = self.config.capacity.usage_for(offer.requirements, offer.env_id)
        score = self._cached_score(offer)
        decision = self._bid_chain.should_bid(BidRequest(offer, usage))
        if not decision.bid:
            logger.info("no bid for task %s: %s", offer.task_id, decision.reason)
            return Bid(False, decision.reason, usage=usage, benchmark_score=score)
        execution_id = offer.execution_id or uuid.uuid4().hex
        timeout = offer.timeout or self.config.default_timeout
        try:
            execution = self.store.create(
                execution_id, offer, usage, timeout=timeout, reason=decision.reason
            )
        except AlreadyExists:
            return Bid(False, f"execution id {execution_id!r} is already used on this node")
        self._changed(execution)
        if self.config.bid_timeout is not None:
            self._arm(execution_id, self.config.bid_timeout, self._bid_expired)
        logger.info("bid for task %s as execution %s", offer.task_id, execution_id)
        return Bid(True, decision.reason, execution_id, usage, score)

    async def bid_accepted(self, execution_id: str, work: SubtaskWork) -> Execution:
        """The requestor chose this node: queue `work` to run (BidAccepted).

        Returns the execution as it is after queueing: Running if it could
        start at once.
        """
        self._check_serving()
        offer = self.store.get(execution_id).offer
        queue_timeout = offer.queue_timeout or self.config.queue_timeout
        deadline = None if queue_timeout is None else time.time() + queue_timeout
        execution = self._move(
            execution_id,
            S.CREATED,
            S.BID_ACCEPTED,
            reason=f"bid accepted for subtask {work.subtask_id}",
            work=work,
            queue_deadline=deadline,
        )
        self._disarm(execution_id)
        self._enqueue(execution)
        return self.store.get(execution_id)

    async def bid_rejected(self, execution_id: str, reason: str = "") -> Execution:
        """The requestor chose another node: the bid is over (Cancelled)."""
        self._check_serving()
        execution = self._move(
            execution_id, S.CREATED, S.CANCELLED, reason=reason or "bid rejected"
        )
        self._settle(execution)
        return execution

    async def result_accepted(self, execution_id: str) -> Execution:
        """The result passed verification: publish it, then clean up.

        Returns the Publishing execution; `PublishComplete` follows.
        """
        self._check_serving()
        execution = self._move(
            execution_id, S.AWAITING_VERIFICATION, S.PUBLISHING, reason="result accepted"
        )
        self._disarm(execution_id)
        task = asyncio.get_running_loop().create_task(
            self._publish(execution), name=f"publish {execution_id}"
        )
        self._publishing[execution_id] = task
        task.add_done_callback(lambda t: self._publish_done(execution_id, t))
        return execution

    async def result_rejected(self, execution_id: str, reason: str = "") -> Execution:
        """The result failed verification: record it (Failed) and clean up."""
        self._check_serving()
        execution = self._move(
            execution_id,
            S.AWAITING_VERIFICATION,
            S.FAILED,
            failure=FailureKind.RESULT_REJECTED,
            retryable=True,
            reason=reason or "the requestor rejected the result",
        )
        self._settle(execution)
        return execution

    async def cancel_execution(self, execution_id: str, reason: str = "") -> Execution:
        """Cancel an execution in any non-terminal state.

        A queued one leaves the queue at once; a running one is stopped, and
        `CancelComplete` comes when its work has really stopped. Cancelling a
        Cancelled execution changes nothing; a Completed or Failed one raises
        `StateConflict`.
        """
        self._check_serving()
        current = self.store.get(execution_id)
        if current.state is S.CANCELLED:
            return current
        if current.state.terminal:
            raise StateConflict(
                execution_id,
                current.state,
                f"execution {execution_id!r} is already {current.state.value}:"
                " there is nothing to cancel",
            )
        execution = self._move(
            execution_id, current.state, S.CANCELLED, reason=reason or "cancelled"
        )
        self._disarm(execution_id)
        if current.state in (S.RUNNING, S.BID_ACCEPTED):
            stopped = self.buffer.stop(execution_id, StopReason.CANCEL)
            if stopped is StopResult.STOPPING:
                return execution  # the end of the run settles it
        elif current.state is S.PUBLISHING:
            task = self._publishing.get(execution_id)
            if task is not None and not task.done():
                task.cancel()
                return execution  # the publishing task settles it
        self._settle(execution)
        return execution

    # -- queries ---------------------------------------------------------------

    def get_execution(self, execution_id: str) -> Execution:
        return self.store.get(execution_id)

    def executions(
        self, states: Collection[ExecutionState] | None = None, *, task_id: str | None = None
    ) -> list[Execution]:
        return self.store.executions(states, task_id=task_id)

    def history(self, execution_id: str) -> list[HistoryEntry]:
        return self.store.history(execution_id)

    def progress(self, execution_id: str) -> ProgressUpdate | None:
        """The latest progress of a running execution."""
        return self._progress.get(execution_id)

    async def wait_for(
        self,
        execution_id: str,
        states: Collection[ExecutionState] = TERMINAL_STATES,
        timeout: float | None = None,
    ) -> Execution:
        """The execution once it is in one of `states` (or terminal, if it never will be).

        Sees the changes this node makes; a change written to the store by
        another process is seen with the next change this node makes.
        """
        execution = self.store.get(execution_id)
        wanted = frozenset(states)
        if execution.state in wanted or execution.state.terminal:
            return execution
        future: asyncio.Future[Execution] = asyncio.get_running_loop().create_future()
        watchers = self._watchers.setdefault(execution_id, [])
        watchers.append((wanted, future))
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            with contextlib.suppress(ValueError):
                watchers.remove((wanted, future))
            if not watchers:
                self._watchers.pop(execution_id, None)

    def info(self) -> NodeInfo:
        tracker = self.buffer.tracker
        return NodeInfo(
            total=tracker.total,
            used=tracker.used,
            free=tracker.free,
            queued=self.buffer.queued_usage,
            job_max=self.config.capacity.job_max,
            running_executions=self.buffer.running_count,
            queued_executions=self.buffer.queued_count,
            held_for=self.buffer.held_for,
            executions=self.store.counts(),
            benchmarks=tuple(self.store.benchmarks()),
        )

    def benchmark_score(
        self, app_id: str, env_id: str, prerequisites: Mapping[str, Any]
    ) -> float | None:
        """The cached benchmark score, if measured."""
        return self.benchmarks.cached(app_id, env_id, prerequisites)

    async def benchmark(
        self,
        app_id: str,
        env_id: str,
        prerequisites: Mapping[str, Any],
        *,
        refresh: bool = False,
    ) -> float:
        """The benchmark score, measured now if not cached (or if `refresh`)."""
        self._check_serving()
        return await self.benchmarks.score(app_id, env_id, prerequisites, refresh=refresh)

    # -- bidding ---------------------------------------------------------------

    @property
    def _bid_chain(self) -> BidChain:
        if self._chain is None:
            raise RuntimeError("the compute node is not started")
        return self._chain

    def _default_chain(self) -> BidChain:
        config = self.config
        semantic: list[BidStrategy] = [
            EnvironmentStrategy(config.environments),
            PrerequisitesStrategy(config.prerequisite_checks),
            RequestorStrategy(
                config.refused_requestors,
                max_rejected_results=config.max_rejected_results,
                rejected_results=self.store.rejected_results,
            ),
            TimeoutStrategy(config.max_timeout, config.default_timeout),
            *self._extra_strategies,
        ]
        resource: list[BidStrategy] = [
            JobLimitStrategy(config.capacity.job_max),
            TotalCapacityStrategy(config.capacity.total),
        ]
        if config.max_queued is not None:
            resource.append(QueueLimitStrategy(config.max_queued, lambda: self.buffer.queued_count))
        measure = None if self._benchmark_source is None else self._measure
        return BidChain(semantic, resource, [BenchmarkStrategy(self._cached_score, measure)])

    def _cached_score(self, offer: Offer) -> float | None:
        return self.benchmarks.cached(offer.app_id, offer.env_id, offer.prerequisites)

    def _measure(self, offer: Offer) -> None:
        self.benchmarks.start(offer.app_id, offer.env_id, offer.prerequisites)

    # -- state changes -----------------------------------------------------------

    def _move(
        self,
        execution_id: str,
        expected: ExecutionState | Collection[ExecutionState],
        new: ExecutionState,
        **changes: Any,
    ) -> Execution:
        execution = self.store.transition(execution_id, expected, new, **changes)
        self._changed(execution)
        return execution

    def _try_move(
        self,
        execution_id: str,
        expected: ExecutionState,
        new: ExecutionState,
        failure: FailureKind,
        reason: str,
    ) -> Execution | None:
        """`_move` to Failed (retryable), or None if the execution moved on already."""
        try:
            return self._move(
                execution_id, expected, new, failure=failure, retryable=True, reason=reason
            )
        except (StateConflict, ExecutionNotFound) as exc:
            logger.debug("%s", exc)
            return None

    def _changed(self, execution: Execution) -> None:
        for wanted, future in self._watchers.get(execution.execution_id, ()):
            if not future.done() and (execution.state in wanted or execution.state.terminal):
                future.set_result(execution)

    def _settle(self, execution: Execution) -> None:
        """A Failed or Cancelled execution: remove its workdir, then tell the callbacks."""
        self._disarm(execution.execution_id)
        self._progress.pop(execution.execution_id, None)
        event: ComputeEvent = (
            ComputeFailure(execution) if execution.state is S.FAILED else CancelComplete(execution)
        )
        if execution.state is S.FAILED:
            logger.info(
                "execution %s failed (%s%s): %s",
                execution.execution_id,
                execution.failure.value if execution.failure else "?",
                ", retryable" if execution.retryable else "",
                execution.reason,
            )
        if execution.state is S.FAILED and self.config.keep_failed_workdirs:
            self._callbacks.emit(event)
            return
        self._spawn(self._remove_workdir_then(execution.execution_id, event))

    async def _remove_workdir_then(self, execution_id: str, event: ComputeEvent) -> None:
        await self._remove_workdir(execution_id)
        self._callbacks.emit(event)

    async def _remove_workdir(self, execution_id: str) -> None:
        path = self._workdir(execution_id)
        if path.exists():
            await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)

    def _workdir(self, execution_id: str) -> Path:
        return self.config.executions_dir / execution_id

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- timers ------------------------------------------------------------------

    def _arm(self, execution_id: str, delay: float, fire: Callable[[str], None]) -> None:
        self._disarm(execution_id)
        self._timers[execution_id] = asyncio.get_running_loop().call_later(
            max(0.0, delay), fire, execution_id
        )

    def _disarm(self, execution_id: str) -> None:
        timer = self._timers.pop(execution_id, None)
        if timer is not None:
            timer.cancel()

    def _bid_expired(self, execution_id: str) -> None:
        self._timers.pop(execution_id, None)
        try:
            execution = self._move(
                execution_id,
                S.CREATED,
                S.CANCELLED,
                reason=f"the bid was not accepted within {self.config.bid_timeout:g} s",
            )
        except (StateConflict, ExecutionNotFound):
            return
        self._settle(execution)

    def _verification_expired(self, execution_id: str) -> None:
        self._timers.pop(execution_id, None)
        execution = self._try_move(
            execution_id,
            S.AWAITING_VERIFICATION,
            S.FAILED,
            FailureKind.VERIFICATION_TIMEOUT,
            f"no verdict on the result within {self.config.verification_timeout:g} s",
        )
        if execution is not None:
            self._settle(execution)

    # -- runs ------------------------------------------------------------------

    def _enqueue(self, execution: Execution) -> None:
        remaining = (
            None if execution.queue_deadline is None else execution.queue_deadline - time.time()
        )
        try:
            self.buffer.enqueue(execution, timeout=execution.timeout, queue_timeout=remaining)
        except ValueError as exc:
            failed = self._try_move(
                execution.execution_id, S.BID_ACCEPTED, S.FAILED, FailureKind.CAPACITY, str(exc)
            )
            if failed is not None:
                self._settle(failed)

    def _run_started(self, item: QueuedExecution, allocation: Allocation) -> RunJob | None:
        execution_id = item.execution_id
        try:
            execution = self._move(execution_id, S.BID_ACCEPTED, S.RUNNING, reason="started")
        except (StateConflict, ExecutionNotFound) as exc:
            logger.warning("not starting execution %s: %s", execution_id, exc)
            return None
        workdir = self._workdir(execution_id)
        try:
            workdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            failed = self._try_move(
                execution_id,
                S.RUNNING,
                S.FAILED,
                FailureKind.RUN_ERROR,
                f"cannot create the workdir {workdir}: {exc}",
            )
            if failed is not None:
                self._settle(failed)
            return None
        return RunJob(execution, workdir, allocation, item.timeout)

    def _run_timed_out(self, item: QueuedExecution) -> bool:
        return (
            self._try_move(
                item.execution_id,
                S.RUNNING,
                S.FAILED,
                FailureKind.TIMEOUT,
                f"the run took longer than its timeout of {item.timeout:g} s",
            )
            is not None
        )

    def _queue_expired(self, item: QueuedExecution) -> None:
        execution = self._try_move(
            item.execution_id,
            S.BID_ACCEPTED,
            S.FAILED,
            FailureKind.QUEUE_TIMEOUT,
            "waited longer than its queue timeout for capacity to start",
        )
        if execution is not None:
            self._settle(execution)

    def _run_progress(self, item: QueuedExecution, update: ProgressUpdate) -> None:
        self._progress[item.execution_id] = update
        self._callbacks.emit(ExecutionProgress(item.execution_id, item.execution.task_id, update))

    def _run_finished(self, item: QueuedExecution, outcome: RunOutcome) -> None:
        execution_id = item.execution_id
        self._progress.pop(execution_id, None)
        if outcome.stopped is not None:
            # Whoever stopped it recorded the state first; only a stop that
            # did not come from this node (the loop closing) is left to write.
            execution = self._try_move(
                execution_id,
                S.RUNNING,
                S.FAILED,
                FailureKind.NODE_SHUTDOWN,
                "the run was stopped with the node's event loop",
            ) or self.store.get(execution_id)
            self._settle(execution)
            return
        result = outcome.result
        if result is None or result.output_path is None:
            self._run_failed(
                execution_id,
                FailureKind.RUN_ERROR,
                result.error if result else "no result",
                retryable=bool(result and result.retryable),
            )
            return
        try:
            path = resolve_inside(self._workdir(execution_id), result.output_path, "output path")
        except InvalidArgument as exc:
            self._run_failed(execution_id, FailureKind.INVALID_OUTPUT, str(exc), retryable=False)
            return
        if not path.exists():
            self._run_failed(
                execution_id,
                FailureKind.INVALID_OUTPUT,
                f"the output path {result.output_path} does not exist",
                retryable=False,
            )
            return
        self._result_ready(execution_id, path, outcome.duration)

    def _result_ready(self, execution_id: str, path: Path, duration: float) -> None:
        try:
            execution = self._move(
                execution_id,
                S.RUNNING,
                S.AWAITING_VERIFICATION,
                reason=f"result ready after {duration:.3f} s",
                result_path=path,
            )
        except (StateConflict, ExecutionNotFound) as exc:
            logger.info("late result refused: %s", exc)
            self._settle_late(execution_id)
            return
        if self.config.verification_timeout is not None:
            self._arm(execution_id, self.config.verification_timeout, self._verification_expired)
        self._callbacks.emit(RunComplete(execution, path))

    def _run_failed(
        self, execution_id: str, kind: FailureKind, reason: str, *, retryable: bool
    ) -> None:
        try:
            execution = self._move(
                execution_id,
                S.RUNNING,
                S.FAILED,
                failure=kind,
                retryable=retryable,
                reason=reason,
            )
        except (StateConflict, ExecutionNotFound) as exc:
            logger.info("late failure refused: %s", exc)
            self._settle_late(execution_id)
            return
        self._settle(execution)

    async def _publish(self, execution: Execution) -> None:
        execution_id = execution.execution_id
        try:
            if execution.result_path is None:
                raise FileNotFoundError("the execution has no result")
            published = await self._publisher.publish(execution, execution.result_path)
            await self._remove_workdir(execution_id)
        except Exception as exc:
            logger.exception("publishing the result of %s failed", execution_id)
            failed = self._try_move(
                execution_id,
                S.PUBLISHING,
                S.FAILED,
                FailureKind.PUBLISH_ERROR,
                f"publishing failed: {type(exc).__name__}: {exc}",
            )
            if failed is not None:
                self._settle(failed)
            else:
                self._settle_late(execution_id)
            return
        try:
            done = self._move(
                execution_id, S.PUBLISHING, S.COMPLETED, reason="published", published=published
            )
        except (StateConflict, ExecutionNotFound) as exc:
            logger.info("late publication refused: %s", exc)
            self._settle_late(execution_id)
            return
        self._callbacks.emit(PublishComplete(done, published))

    def _publish_done(self, execution_id: str, task: "asyncio.Task[None]") -> None:
        self._publishing.pop(execution_id, None)
        if task.cancelled():
            # Whoever cancelled it (cancel_execution, stop) wrote the state
            # first. A done callback, so that a publication cancelled before
            # its first step is settled too.
            self._settle(self.store.get(execution_id))

    def _settle_late(self, execution_id: str) -> None:
        """Settle an execution that another process moved to Failed or Cancelled."""
        current = self.store.find(execution_id)
        if current is not None and current.state in (S.FAILED, S.CANCELLED):
            self._settle(current)

    # -- restart -----------------------------------------------------------------

    def _recover(self) -> None:
        """Take over what the previous process left in the store.

        Runs and publications that were under way are lost with their process:
        they fail (retryable) rather than run again, since what they did is
        unknown. Queued executions never started, so they queue again in their
        order; bids and results awaiting a verdict keep waiting.
        """
        if self.config.retention is not None:
            pruned = self.store.prune(time.time() - self.config.retention)
            if pruned:
                logger.info("forgot %d finished executions", pruned)
        now = time.time()
        for execution in self.store.executions(
            [S.CREATED, S.BID_ACCEPTED, S.RUNNING, S.AWAITING_VERIFICATION, S.PUBLISHING]
        ):
            self._recover_one(execution, now)
        self._spawn(self._remove_stray_workdirs())

    def _recover_one(self, execution: Execution, now: float) -> None:
        execution_id, state = execution.execution_id, execution.state
        if state in (S.RUNNING, S.PUBLISHING):
            # A run's processes outlive the node that crashed: stop them first.
            kill_recorded_group(self._workdir(execution_id) / GROUP_FILE)
            failed = self._try_move(
                execution_id,
                state,
                S.FAILED,
                FailureKind.NODE_RESTART,
                f"the node restarted while the execution was {state.value}; not run again",
            )
            if failed is not None:
                self._settle(failed)
        elif state is S.BID_ACCEPTED:
            if execution.queue_deadline is not None and execution.queue_deadline <= now:
                failed = self._try_move(
                    execution_id,
                    state,
                    S.FAILED,
                    FailureKind.QUEUE_TIMEOUT,
                    "its queue timeout passed while the node was down",
                )
                if failed is not None:
                    self._settle(failed)
            else:
                self._enqueue(execution)
        elif state is S.CREATED and self.config.bid_timeout is not None:
            left = execution.created_at + self.config.bid_timeout - now
            self._arm(execution_id, left, self._bid_expired)
        elif state is S.AWAITING_VERIFICATION:
            self._recover_result(execution, now)

    def _recover_result(self, execution: Execution, now: float) -> None:
        if execution.result_path is None or not execution.result_path.exists():
            failed = self._try_move(
                execution.execution_id,
                S.AWAITING_VERIFICATION,
                S.FAILED,
                FailureKind.NODE_RESTART,
                "the result was lost while the node was down",
            )
            if failed is not None:
                self._settle(failed)
        elif self.config.verification_timeout is not None:
            left = execution.updated_at + self.config.verification_timeout - now
            self._arm(execution.execution_id, left, self._verification_expired)

    async def _remove_stray_workdirs(self) -> None:
        """Workdirs whose execution is over or unknown (a crash mid-cleanup)."""
        for path in list(self.config.executions_dir.iterdir()):
            # Looked up one by one: runs start while this goes on.
            known = self.store.find(path.name)
            if known is not None and not known.state.terminal:
                continue
            if known is not None and known.state is S.FAILED and self.config.keep_failed_workdirs:
                continue
            await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)


class _Hooks:
    """The node's answers to its executor buffer (see `BufferHooks`)."""

    def __init__(self, node: ComputeNode) -> None:
        self._node = node

    def started(self, item: QueuedExecution, allocation: Allocation) -> RunJob | None:
        return self._node._run_started(item, allocation)

    def timed_out(self, item: QueuedExecution) -> bool:
        return self._node._run_timed_out(item)

    def queue_expired(self, item: QueuedExecution) -> None:
        self._node._queue_expired(item)

    def progress(self, item: QueuedExecution, update: ProgressUpdate) -> None:
        self._node._run_progress(item, update)

    def finished(self, item: QueuedExecution, outcome: RunOutcome) -> None:
        self._node._run_finished(item, outcome)


__all__ = ["ComputeNode"]
