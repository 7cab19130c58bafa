"""`TaskManager`: the requestor side of a node, over its compute nodes.

It records new tasks, runs each as a `TaskRun` (several at once), resumes
the unfinished ones after a restart, and serves what other processes ask
through node.db (`abort`, `restart`): a request row, and SIGUSR1 to wake it.

At start it settles what a previous node process left on the compute nodes
(`reconcile_nodes`): bids and queued work nobody will use are withdrawn,
verdicts that were recorded but not reported are reported.
"""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from golem_task_api.errors import TaskApiError
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.states import (
    ExecutionNotFound,
    ExecutionState,
    StateConflict,
)
from golem_task_api.node.market.provider import settle
from golem_task_api.node.requestor.apps import RequestorApps
from golem_task_api.node.requestor.context import NodeContext, app_spec
from golem_task_api.node.requestor.events import NodeEvents, TaskAborted, TaskCreated, TaskFailed
from golem_task_api.node.requestor.task_run import TaskRun
from golem_task_api.node.state import (
    AppRef,
    NodeDB,
    SubtaskRow,
    SubtaskState,
    TaskRow,
    TaskState,
)

logger = logging.getLogger(__name__)

ES = ExecutionState
S = SubtaskState
REQUEST_POLL = 0.5


def new_task_id() -> str:
    return uuid.uuid4().hex


class TaskManager:
    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self._runs: dict[str, TaskRun] = {}
        self._tasks: dict[str, asyncio.Task[TaskRow]] = {}
        self._requests_wake = asyncio.Event()
        self._requests: asyncio.Task[None] | None = None

    # --- tasks ----------------------------------------------------------------------

    def submit(
        self,
        *,
        app: AppRef,
        params: dict[str, Any],
        inputs: Sequence[Path],
        max_subtasks: int,
        output_dir: Path,
        timeout: float | None = None,
        subtask_timeout: float | None = None,
        providers: int = 1,
        task_id: str | None = None,
    ) -> TaskRow:
        """Record a new task (state creating); `start` or `run` runs it."""
        task_id = task_id or new_task_id()
        row = TaskRow(
            task_id=task_id,
            app=app,
            params=params,
            inputs=[str(Path(p).resolve()) for p in inputs],
            max_subtasks=max_subtasks,
            output_dir=str(Path(output_dir).resolve()),
            timeout=timeout,
            subtask_timeout=subtask_timeout,
            providers=providers,
        )
        db = self.ctx.db
        task = db.add_task(row)
        if timeout is not None:
            db.update_task(task_id, deadline=task.created_at + timeout)
        self.ctx.events.emit(
            TaskCreated(app.key, max_subtasks, row.output_dir), task_id=task_id
        )
        return db.get_task(task_id)

    def start(self, task_id: str) -> "asyncio.Task[TaskRow]":
        """Run the task in the background (once); the asyncio task gives its final row."""
        existing = self._tasks.get(task_id)
        if existing is not None:
            return existing
        run = self._runs[task_id] = TaskRun(self.ctx, task_id)
        task = asyncio.ensure_future(self._run(run))
        self._tasks[task_id] = task
        task.add_done_callback(lambda _: self._forget(task_id))
        return task

    async def run(self, task_id: str) -> TaskRow:
        return await self.start(task_id)

    def running(self) -> list[str]:
        return list(self._runs)

    def _forget(self, task_id: str) -> None:
        self._runs.pop(task_id, None)
        self._tasks.pop(task_id, None)

    async def _run(self, run: TaskRun) -> TaskRow:
        try:
            return await run.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A bug of the node, not of the task: the task fails with it
            # rather than taking the node down.
            logger.exception("task %s crashed the task manager", run.task_id)
            message = f"internal error of the node: {type(exc).__name__}: {exc}"
            self.ctx.db.update_task(run.task_id, state=TaskState.FAILED, error=message)
            self.ctx.events.emit(TaskFailed(TaskState.FAILED.value, message),
                                 task_id=run.task_id)
            return self.ctx.db.get_task(run.task_id)

    async def add_node(self, node_id: str, node: ComputeNode) -> None:
        """A compute node added to `ctx.nodes` while the manager runs (a Dask
        worker that joined): the running tasks may use it from now on; tasks
        started later see it in `ctx.nodes`."""
        for run in list(self._runs.values()):
            await run.add_node(node_id, node)

    def resume_all(self) -> list["asyncio.Task[TaskRow]"]:
        """Start every unfinished task."""
        return [self.start(task.task_id) for task in self.ctx.db.unfinished_tasks()]

    # --- user actions ---------------------------------------------------------------

    async def abort(self, task_id: str, reason: str = "aborted by the user") -> TaskRow:
        """Abort a task: at once if it runs here, else recorded and told to its app."""
        db = self.ctx.db
        task = db.get_task(task_id)
        if task.state.finished:
            return task
        db.update_task(task_id, abort_requested=True)
        run = self._runs.get(task_id)
        if run is not None:
            run.abort(reason)
            return await asyncio.shield(self._tasks[task_id])
        return await abort_offline(self.ctx.db, self.ctx.apps, self.ctx.events, task_id, reason)

    async def restart_subtasks(self, task_id: str, subtask_ids: Sequence[str]) -> list[str]:
        """DiscardSubtasks: the app computes those parts again. Returns what it discarded.

        A task that was completed runs again (here if this node runs it, else
        at the next `resume`), and is delivered again.
        """
        db = self.ctx.db
        task = db.get_task(task_id)
        if task.state in (TaskState.FAILED, TaskState.TIMED_OUT, TaskState.ABORTED):
            raise ValueError(f"task {task_id} is {task.state.value}: it cannot be restarted")
        app = self.ctx.apps.get(app_spec(task.app))
        app.retain()
        try:
            discarded = await app.call(lambda c: c.discard_subtasks(task_id, list(subtask_ids)))
        finally:
            await app.release()  # a run of the task holds the app too: it stays
        for subtask_id in discarded:
            db.update_subtask(subtask_id, state=S.DISCARDED, reason="restarted by the user")
        run = self._runs.get(task_id)
        if run is not None:
            run.poke()
        elif discarded and task.state is TaskState.COMPLETED:
            db.update_task(task_id, state=TaskState.RUNNING, error=None)
        return list(discarded)

    # --- requests from other processes ------------------------------------------------

    def start_serving_requests(self) -> None:
        if self._requests is None:
            self._requests = asyncio.ensure_future(self._serve_requests())

    def wake_requests(self) -> None:
        """Something was asked (SIGUSR1 from `golem-task-api abort`)."""
        self._requests_wake.set()

    async def _serve_requests(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._requests_wake.wait(), REQUEST_POLL)
            self._requests_wake.clear()
            try:
                await self.handle_requests()
            except Exception:
                logger.exception("handling requests failed")

    async def handle_requests(self) -> None:
        db = self.ctx.db
        for request in db.pending_requests():
            try:
                if request.op == "abort":
                    reason = str(request.args.get("reason") or "aborted by the user")
                    if request.task_id in self._runs:
                        self._runs[request.task_id].abort(reason)
                        db.update_task(request.task_id, abort_requested=True)
                        result = "aborting"
                    else:
                        task = await abort_offline(
                            self.ctx.db, self.ctx.apps, self.ctx.events, request.task_id, reason
                        )
                        result = task.state.value
                elif request.op == "restart":
                    ids = [str(s) for s in request.args.get("subtask_ids") or []]
                    done = await self.restart_subtasks(request.task_id, ids)
                    result = f"restarted {len(done)}"
                else:
                    result = f"error: unknown request {request.op!r}"
            except (LookupError, ValueError, TaskApiError) as exc:
                result = f"error: {exc}"
            db.finish_request(request.request_id, result)

    # --- start and stop -------------------------------------------------------------

    async def reconcile_nodes(self) -> None:
        """Settle executions a previous node process left on the compute nodes."""
        db = self.ctx.db
        for node_id, node in self.ctx.nodes.items():
            for execution in node.executions([ES.CREATED, ES.BID_ACCEPTED,
                                              ES.AWAITING_VERIFICATION]):
                row = db.subtask_by_execution(execution.execution_id)
                task = None if row is None else db.task(row.task_id)
                try:
                    await _reconcile(node_id, node, execution.execution_id, execution.state,
                                     row, task)
                except (StateConflict, ExecutionNotFound, RuntimeError) as exc:
                    logger.debug("reconciling %s on %s: %s", execution.execution_id, node_id, exc)
                if row is not None and row.state in (S.VERIFIED, S.REJECTED):
                    db.update_subtask(row.subtask_id, verdict_reported=True)

    async def aclose(self) -> None:
        """Stop every task run (they stay unfinished, for a later resume)."""
        if self._requests is not None:
            self._requests.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._requests
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.ctx.apps.aclose()


async def _reconcile(
    node_id: str,
    node: Any,
    execution_id: str,
    state: ExecutionState,
    row: SubtaskRow | None,
    task: TaskRow | None,
) -> None:
    reason = "the requestor no longer needs it"
    if row is not None and task is not None and not task.state.finished:
        if row.state is S.VERIFIED and state is ES.AWAITING_VERIFICATION:
            await settle(node, execution_id, True)
            return
        if row.state is S.REJECTED and state is ES.AWAITING_VERIFICATION:
            await settle(node, execution_id, False, row.reason or "rejected")
            return
        if not row.state.settled and state is ES.AWAITING_VERIFICATION:
            return  # its task's recovery may still use the result
    if row is not None and row.state is S.VERIFIED and state is ES.AWAITING_VERIFICATION:
        await settle(node, execution_id, True)
    elif state is ES.CREATED:
        await node.bid_rejected(execution_id, reason)
    else:
        await node.cancel_execution(execution_id, reason)
    logger.info("withdrew execution %s (%s) on %s: %s", execution_id, state.value, node_id, reason)


async def abort_offline(
    db: NodeDB, apps: RequestorApps, events: NodeEvents, task_id: str, reason: str
) -> TaskRow:
    """Abort a task no task run holds: record it, then AbortTask if its app can start."""
    task = db.get_task(task_id)
    if task.state.finished:
        return task
    db.update_task(task_id, abort_requested=True)
    for row in db.unsettled_subtasks(task_id):
        db.update_subtask(row.subtask_id, state=S.ABORTED, reason=reason)
    db.update_task(task_id, state=TaskState.ABORTED, error=reason)
    events.emit(TaskAborted(reason), task_id=task_id)
    if task.state is not TaskState.CREATING:
        app = apps.get(app_spec(task.app))
        app.retain()
        try:
            async with asyncio.timeout(30.0):
                await app.call(lambda c: c.abort_task(task_id))
        except (TaskApiError, TimeoutError, OSError) as exc:
            logger.warning("the app of task %s did not take the abort: %s", task_id, exc)
        finally:
            await app.release()
    return db.get_task(task_id)


__all__ = ["TaskManager", "abort_offline", "new_task_id"]
