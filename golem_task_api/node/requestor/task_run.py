"""`TaskRun`: one task from CreateTask to its files in the output dir.

    creating ──CreateTask──▶ running ──nothing pending, all settled──▶ delivering ──▶ completed
    any unfinished state ──▶ failed | timed_out | aborted

The dispatcher asks HasPendingSubtasks; while the app has work it leases a
node (a won bid, the market's strategy picking among the bidders), calls
NextSubtask with that node's opaque id, and hands the subtask to a
`SubtaskFlow`; an empty answer releases the lease and tries another node.
When no node gets a subtask, it waits for a state change (a verdict, a
subtask ending) instead of asking again at once. Subtasks run at once up to
the nodes' capacity (the market leases no more than a node has).

A run started on a task that was running before (a resume) first settles
what the previous node process left in flight (`SubtaskFlow.recover`).
"""

import asyncio
import contextlib
import logging
import shutil
import time
import uuid
from pathlib import Path

from golem_task_api.client import ShutdownException
from golem_task_api.dirutils import RequestorDir, RequestorTaskDir
from golem_task_api.errors import (
    AlreadyExists,
    InvalidArgument,
    TaskApiError,
    Unavailable,
    Unimplemented,
)
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.offers import Offer
from golem_task_api.node.market.market import ComputeMarket
from golem_task_api.node.market.provider import ComputeNodeProvider
from golem_task_api.node.requestor.apps import RequestorApp
from golem_task_api.node.requestor.context import (
    NodeContext,
    RunState,
    app_spec,
    params_key,
)
from golem_task_api.node.requestor.delivery import deliver
from golem_task_api.node.requestor.errors import TaskError
from golem_task_api.node.requestor.events import (
    Notice,
    SubtaskIssued,
    SubtaskRetried,
    TaskAborted,
    TaskCompleted,
    TaskFailed,
    TaskProgress,
    TaskStarted,
)
from golem_task_api.node.requestor.subtask_flow import SubtaskFlow, cancel_execution
from golem_task_api.node.state import (
    RETRIED_SUBTASK_STATES,
    SubtaskRow,
    SubtaskState,
    TaskRow,
    TaskState,
)
from golem_task_api.node.workgen.errors import NoProviderAvailableError
from golem_task_api.structs import Infrastructure, Task

logger = logging.getLogger(__name__)

S = SubtaskState
ABORT_TIMEOUT = 30.0
WATCH_END_WAIT = 2.0
NODE_TIMEOUT_GRACE = 10.0


class TaskRun:
    def __init__(self, ctx: NodeContext, task_id: str) -> None:
        self._ctx = ctx
        self.task_id = task_id
        self._stop: tuple[TaskState, str] | None = None
        self._work: asyncio.Task[None] | None = None
        self._state: RunState | None = None
        self._market: ComputeMarket | None = None

    async def add_node(self, node_id: str, node: ComputeNode) -> None:
        """A compute node joined the node: this task may use it from now on."""
        if self._market is not None:
            await self._market.add_node(node_id, node)
        self.poke()

    def poke(self) -> None:
        """Something changed outside (e.g. subtasks discarded): ask the app again."""
        if self._state is not None:
            self._state.changed()

    def abort(self, reason: str = "aborted by the user") -> None:
        """Stop the task for good: computations cancelled, AbortTask, state aborted."""
        self._stop_with(TaskState.ABORTED, reason)

    def _stop_with(self, state: TaskState, reason: str) -> None:
        if self._stop is None:
            self._stop = (state, reason)
        if self._work is not None:
            self._work.cancel()

    async def run(self) -> TaskRow:
        """Run the task to its end; its final row. Cancelled: the node stops, and
        the task stays unfinished (a later start resumes it)."""
        db = self._ctx.db
        task = db.get_task(self.task_id)
        if task.state.finished:
            return task
        spec = app_spec(task.app)
        self._ctx.registry.register(spec.name, spec)
        app = self._ctx.apps.get(spec)
        app.retain()
        timer = None
        try:
            if task.abort_requested:
                self._stop = (TaskState.ABORTED, "aborted by the user")
            else:
                if task.deadline is not None:
                    left = max(0.0, task.deadline - time.time())
                    timer = asyncio.get_running_loop().call_later(left, self._time_up, task)
                self._work = asyncio.ensure_future(self._run_work(task, app))
                try:
                    await self._work
                except asyncio.CancelledError:
                    current = asyncio.current_task()
                    if self._stop is None or (current is not None and current.cancelling()):
                        raise
            if self._stop is not None:
                await self._finish_stopped(app, *self._stop)
        except TaskError as exc:
            await self._finish_failed(app, exc.message)
        except (TaskApiError, OSError) as exc:
            await self._finish_failed(app, _describe(exc))
        finally:
            if timer is not None:
                timer.cancel()
            await app.release()
        return db.get_task(self.task_id)

    def _time_up(self, task: TaskRow) -> None:
        self._stop_with(
            TaskState.TIMED_OUT, f"the task did not finish within its timeout ({task.timeout:g} s)"
        )

    # --- the work ------------------------------------------------------------------------

    async def _run_work(self, task: TaskRow, app: RequestorApp) -> None:
        task_dir = RequestorDir(app.work_dir).task_dir(self.task_id)
        warming = None
        if self._ctx.warm_up is not None and task.state is not TaskState.DELIVERING:
            warming = asyncio.ensure_future(self._ctx.warm_up(app.spec))
        try:
            if task.state is TaskState.CREATING:
                task = await self._create(task, app, task_dir)
            elif task.state is TaskState.RUNNING:
                self._ctx.events.emit(TaskStarted(task.env_id or "", True), task_id=self.task_id)
            if task.state is TaskState.RUNNING:
                await self._compute_all(task, app, task_dir)
        finally:
            if warming is not None:
                warming.cancel()
        await self._deliver(task, task_dir)

    async def _create(
        self, task: TaskRow, app: RequestorApp, task_dir: RequestorTaskDir
    ) -> TaskRow:
        await asyncio.to_thread(_prepare, task_dir, [Path(p) for p in task.inputs])
        try:
            created = await app.call(
                lambda c: c.create_task(self.task_id, task.max_subtasks, task.params)
            )
        except AlreadyExists:
            # Created before the node died, its answer lost: the definition says the rest.
            definition = task.app.definition or {}
            created = Task(
                env_id=str(definition.get("requestor_env") or "docker_cpu"),
                prerequisites=dict(definition.get("requestor_prereq") or {}),
            )
        except InvalidArgument as exc:
            raise TaskError(f"the app refused the task: {exc.message}", user_error=True) from exc
        except (Unavailable, ShutdownException):
            raise
        except TaskApiError as exc:
            raise TaskError(f"CreateTask failed: {_describe(exc)}") from exc
        self._ctx.db.update_task(
            self.task_id,
            state=TaskState.RUNNING,
            env_id=created.env_id,
            prerequisites=created.prerequisites,
            min_memory_mib=float(created.inf_requirements.min_memory_mib or 0.0),
        )
        self._ctx.events.emit(TaskStarted(created.env_id, False), task_id=self.task_id)
        return self._ctx.db.get_task(self.task_id)

    async def _compute_all(
        self, task: TaskRow, app: RequestorApp, task_dir: RequestorTaskDir
    ) -> None:
        ctx = self._ctx
        created = Task(
            env_id=task.env_id or "docker_cpu",
            prerequisites=dict(task.prerequisites or {}),
            inf_requirements=Infrastructure(min_memory_mib=task.min_memory_mib),
        )
        # The node's own run limit is a backstop only: the subtask timeout
        # (from issue to download) is the requestor's, and cancels first.
        offer = Offer.from_task(
            self.task_id, task.app_key, created, ctx.config.requestor_id,
            timeout=None if task.subtask_timeout is None
            else task.subtask_timeout + NODE_TIMEOUT_GRACE,
        )
        market = self._market = ComputeMarket(
            ctx.nodes, offer, ctx.dirs.staging_dir / self.task_id, strategy=ctx.config.strategy
        )
        state = self._state = RunState(self.task_id, wanted=task.max_subtasks)
        flow = SubtaskFlow(ctx, app, state, task_dir, market,
                           subtask_timeout=task.subtask_timeout)
        try:
            async with asyncio.TaskGroup() as group:
                watch = group.create_task(self._watch(app, state))
                await self._recover(flow, state, group)
                await self._dispatch(task, app, market, flow, state, group)
                # The app's stream ends by itself with the final value, just after.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(watch), WATCH_END_WAIT)
                watch.cancel()
        except BaseExceptionGroup as errors:
            raise _first(errors) from None
        finally:
            await asyncio.shield(market.aclose())
        if not state.app_progress:
            self._fallback_progress(state, done=True)

    async def _recover(self, flow: SubtaskFlow, state: RunState, group: asyncio.TaskGroup) -> None:
        """Take over what a previous node process left of this task."""
        db = self._ctx.db
        state.excluded.update(db.excluded_nodes(self.task_id))
        state.next_number = db.next_subtask_number(self.task_id)
        rows = db.subtasks(self.task_id)
        redone = {row.retry_of for row in rows if row.retry_of}
        for row in rows:
            if row.state is S.VERIFIED:
                state.verified += 1
            elif row.state in RETRIED_SUBTASK_STATES and row.subtask_id not in redone:
                state.retry_candidates[params_key(row.params)] = (row.subtask_id, row.node_id)
        for row in rows:
            if row.state.settled:
                if not row.verdict_reported and row.state in (S.VERIFIED, S.REJECTED):
                    await flow.report(row, row.state is S.VERIFIED, row.reason or "")
                continue
            state.unsettled[row.subtask_id] = row
            if await flow.recover(row):
                group.create_task(flow.verify(state.unsettled[row.subtask_id]))
        if rows:
            state.changed()

    async def _dispatch(
        self,
        task: TaskRow,
        app: RequestorApp,
        market: ComputeMarket,
        flow: SubtaskFlow,
        state: RunState,
        group: asyncio.TaskGroup,
    ) -> None:
        budget = self._ctx.config.failure_budget(task.max_subtasks)
        idle_delay = 0.5
        got_nothing: set[str] = set()
        seen_generation = state.generation
        while True:
            if state.generation != seen_generation:
                got_nothing.clear()
                seen_generation = state.generation
            if state.failures > budget:
                raise TaskError(
                    f"{state.failures} subtasks failed or were rejected (at most {budget} may);"
                    f" the last: {state.last_failure}"
                )
            pending = await app.call(lambda c: c.has_pending_subtasks(self.task_id))
            if not pending:
                if not state.unsettled:
                    return
                await state.wait_changed()
                continue
            usable = self._usable_nodes(market, state)
            candidates = [node for node in usable if node not in got_nothing]
            if not candidates:
                if state.unsettled:
                    await state.wait_changed()
                else:
                    # The app has work but gives none to any node, and nothing
                    # that could change its mind is in flight: ask again later.
                    self._ctx.events.emit(
                        Notice(f"the app has pending subtasks but gives none to any node;"
                               f" asking again in {idle_delay:g} s"),
                        task_id=self.task_id,
                    )
                    await state.wait_changed(idle_delay)
                    idle_delay = min(idle_delay * 2, self._ctx.config.idle_retry_max_delay)
                    got_nothing.clear()
                continue
            preferred = [node for node in candidates if node not in state.avoid] or candidates
            try:
                lease = await market.acquire(set(self._ctx.nodes) - set(preferred))
            except NoProviderAvailableError:
                continue  # refusals were recorded: `_usable_nodes` says what is left
            if lease.id in state.excluded:
                # Rejected while we waited for its capacity.
                await market.release(lease, None)
                continue
            if await self._issue(lease, app, market, flow, state, group):
                idle_delay = 0.5
            else:
                got_nothing.add(lease.id)

    def _usable_nodes(self, market: ComputeMarket, state: RunState) -> list[str]:
        usable = [
            node for node in sorted(self._ctx.nodes)
            if node not in state.excluded and node not in market.refusals and market.usable(node)
        ]
        if usable:
            return usable
        reasons = []
        refusals = market.refusals
        for node in sorted(self._ctx.nodes):
            if node in state.excluded:
                reasons.append(f"{node}: excluded, {state.excluded[node]}")
            elif node in refusals:
                reasons.append(f"{node}: refused the task, {refusals[node]}")
            else:
                reasons.append(f"{node}: gave up after repeated failures")
        listed = "; ".join(reasons) or "there are no compute nodes"
        raise TaskError(f"no compute node can take subtasks of this task any more: {listed}")

    async def _issue(
        self,
        lease: ComputeNodeProvider,
        app: RequestorApp,
        market: ComputeMarket,
        flow: SubtaskFlow,
        state: RunState,
        group: asyncio.TaskGroup,
    ) -> bool:
        """NextSubtask for the leased node; True if a subtask went to it."""
        db = self._ctx.db
        row = SubtaskRow(
            subtask_id=uuid.uuid4().hex,
            task_id=self.task_id,
            number=state.next_number,
            node_id=lease.id,
            execution_id=lease.bid_execution_id,
        )
        db.add_subtask(row)
        opaque = self._ctx.opaque.of(lease.id)
        try:
            subtask = await app.call(
                lambda c: c.next_subtask(self.task_id, row.subtask_id, opaque)
            )
        except asyncio.CancelledError:
            await asyncio.shield(market.release(lease, None))
            raise  # the row stays `requested`: a resume tells the app
        except BaseException as exc:
            db.delete_subtask(row.subtask_id)
            await market.release(lease, None)
            if isinstance(exc, TaskApiError) and not isinstance(exc, Unavailable):
                raise TaskError(f"the app's NextSubtask failed: {_describe(exc)}") from exc
            raise
        if subtask is None:
            db.delete_subtask(row.subtask_id)
            await market.release(lease, None)
            return False
        state.next_number += 1
        if lease.id in state.excluded:
            # Its node was excluded while NextSubtask ran: hand the part back.
            await self._hand_back(row, app, market, lease, state)
            return True
        retry = state.retry_candidates.pop(params_key(subtask.params), None)
        row = row._replace(
            state=S.ISSUED, params=dict(subtask.params), resources=list(subtask.resources),
            retry_of=None if retry is None else retry[0],
        )
        db.update_subtask(
            row.subtask_id, state=S.ISSUED, params=row.params, resources=row.resources,
            retry_of=row.retry_of,
        )
        state.unsettled[row.subtask_id] = row
        events = self._ctx.events
        for kind in (
            SubtaskIssued(row.number, row.params or {}, row.retry_of),
            None if retry is None else SubtaskRetried(row.number, retry[0], retry[1]),
        ):
            if kind is not None:
                events.emit(kind, task_id=self.task_id, subtask_id=row.subtask_id,
                            node_id=row.node_id)
        group.create_task(flow.run(lease, row))
        return True

    async def _hand_back(
        self,
        row: SubtaskRow,
        app: RequestorApp,
        market: ComputeMarket,
        lease: ComputeNodeProvider,
        state: RunState,
    ) -> None:
        db = self._ctx.db
        db.update_subtask(row.subtask_id, state=S.ISSUED)
        try:
            await app.call(lambda c: c.abort_subtask(self.task_id, row.subtask_id))
        except (Unavailable, ShutdownException):
            raise
        except TaskApiError as exc:
            logger.warning("AbortSubtask %s: %s", row.subtask_id, exc)
        reason = f"{lease.id} was excluded before the subtask could start"
        db.update_subtask(row.subtask_id, state=S.ABORTED, reason=reason)
        await market.release(lease, None)
        state.changed()

    # --- the task's progress -----------------------------------------------------------

    async def _watch(self, app: RequestorApp, state: RunState) -> None:
        """The app's own progress of the task (WatchTaskProgress), while it runs."""
        interval = self._ctx.config.progress_interval
        self._fallback_progress(state)
        while True:
            client = await app.client()
            try:
                async for update in client.watch_task_progress(
                    self.task_id, update_interval=interval
                ):
                    value = update.value
                    state.app_progress = True
                    self._ctx.events.emit(
                        TaskProgress(value.done, value.total, value.unit, value.message),
                        task_id=self.task_id,
                    )
                return
            except Unimplemented:
                return
            except (Unavailable, ShutdownException) as exc:
                if not await app.recover(client, exc):
                    await asyncio.sleep(1.0)
            except TaskApiError as exc:
                logger.info("no progress stream of task %s: %s", self.task_id, exc)
                return

    def _fallback_progress(self, state: RunState, *, done: bool = False) -> None:
        total = max(state.wanted, state.verified)
        self._ctx.events.emit(
            TaskProgress(total if done else state.verified, total, "Subtasks", ""),
            task_id=self.task_id,
        )

    # --- the end -------------------------------------------------------------------------

    async def _deliver(self, task: TaskRow, task_dir: RequestorTaskDir) -> None:
        db = self._ctx.db
        db.update_task(self.task_id, state=TaskState.DELIVERING)
        output_dir = Path(task.output_dir)
        files = await asyncio.to_thread(deliver, task_dir.task_outputs_dir, output_dir)
        db.update_task(self.task_id, state=TaskState.COMPLETED, error=None)
        self._ctx.events.emit(
            TaskCompleted(str(output_dir), tuple(str(f) for f in files)), task_id=self.task_id
        )

    async def _finish_stopped(self, app: RequestorApp, state: TaskState, reason: str) -> None:
        await self._end(app, state, reason)
        if state is TaskState.ABORTED:
            self._ctx.events.emit(TaskAborted(reason), task_id=self.task_id)
        else:
            self._ctx.events.emit(TaskFailed(state.value, reason), task_id=self.task_id)

    async def _finish_failed(self, app: RequestorApp, message: str) -> None:
        await self._end(app, TaskState.FAILED, message)
        self._ctx.events.emit(TaskFailed(TaskState.FAILED.value, message), task_id=self.task_id)

    async def _end(self, app: RequestorApp, state: TaskState, reason: str) -> None:
        """Settle what is left in flight, AbortTask (best effort), record the end."""
        db = self._ctx.db
        for row in db.unsettled_subtasks(self.task_id):
            db.update_subtask(row.subtask_id, state=S.ABORTED, reason=reason)
            await cancel_execution(self._ctx.nodes, row)
        task = db.get_task(self.task_id)
        if task.state is not TaskState.CREATING or state is TaskState.ABORTED:
            try:
                async with asyncio.timeout(ABORT_TIMEOUT):
                    await app.call(lambda c: c.abort_task(self.task_id))
            except (TaskApiError, TimeoutError, OSError) as exc:
                logger.info("AbortTask %s: %s", self.task_id, _describe(exc))
        db.update_task(self.task_id, state=state, error=reason)


def _prepare(task_dir: RequestorTaskDir, inputs: list[Path]) -> None:
    """The task dir, its four subdirs, and the inputs copied into task_inputs/."""
    task_dir.parent.mkdir(parents=True, exist_ok=True)
    task_dir.prepare(exist_ok=True)
    for source in inputs:
        if not source.is_file():
            raise TaskError(f"input file {source} is missing", user_error=True)
        shutil.copy2(source, task_dir.task_inputs_dir / source.name)


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that ended a task group (the others are consequences of it)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    status = getattr(exc, "status", None)
    name = getattr(status, "name", None)
    return f"{name}: {message}" if name and name not in ("UNKNOWN", "INTERNAL") else message


__all__ = ["TaskRun"]
