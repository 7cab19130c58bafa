"""One subtask from the app's answer to its verdict.

On the leased node: send its resources, compute (progress on), download the
result into `subtask_outputs/{subtask_id}/`, all within the subtask timeout;
then the lease is released and the result verified outside it, with the
node's other verifications limited by a semaphore. Every step is recorded
before (or as) it happens, so a node that dies anywhere finds enough in the
database to finish the subtask or to hand its part back to the app.

What each outcome does:

- compute failed, timed out, or lost with the node: AbortSubtask (the app
  hands the part out again), the node is avoided for this task while others
  are usable;
- SUCCESS: `result_accepted` on the node;
- FAILURE, INCONCLUSIVE: `result_rejected`, and the node gets no more
  subtasks of this task;
- AWAITING_DATA: Verify again after a backoff, or at the task's next verdict;
- the app's Verify raised: FAILURE without blaming the node (AbortSubtask).
"""

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Awaitable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from golem_task_api.constants import SUBTASK_INPUTS_DIR
from golem_task_api.dirutils import RequestorTaskDir
from golem_task_api.errors import TaskApiError
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.states import ExecutionNotFound, ExecutionState, StateConflict
from golem_task_api.node.market.market import ComputeMarket
from golem_task_api.node.market.provider import ComputeNodeProvider, settle
from golem_task_api.node.requestor.apps import AppKeepsDying, RequestorApp
from golem_task_api.node.requestor.context import NodeContext, RunState, params_key
from golem_task_api.node.requestor.events import (
    NodeExcluded,
    NodeKind,
    ScriptEvents,
    SubtaskAwaitingData,
    SubtaskComputing,
    SubtaskDownloaded,
    SubtaskFailed,
    SubtaskRejected,
    SubtaskVerified,
    SubtaskVerifying,
)
from golem_task_api.node.requestor.verification import Verdict, VerifyOutcome, verify_once
from golem_task_api.node.state import SubtaskRow, SubtaskState
from golem_task_api.node.workgen.batch import run_script
from golem_task_api.node.workgen.context import WorkContext
from golem_task_api.node.workgen.errors import BatchError
from golem_task_api.node.workgen.progress import ProgressArgs
from golem_task_api.node.workgen.script import Script

logger = logging.getLogger(__name__)

S = SubtaskState
ES = ExecutionState
# The shortest wait before asking Verify again after AWAITING_DATA, even when
# verdicts of other subtasks keep coming.
MIN_REVERIFY_DELAY = 0.05


class SubtaskFlow:
    """The subtasks of one task run (see the module doc)."""

    def __init__(
        self,
        ctx: NodeContext,
        app: RequestorApp,
        state: RunState,
        task_dir: RequestorTaskDir,
        market: ComputeMarket,
        *,
        subtask_timeout: float | None,
    ) -> None:
        self._ctx = ctx
        self._app = app
        self._state = state
        self._task_id = state.task_id
        self._task_dir = task_dir
        self._market = market
        self._subtask_timeout = subtask_timeout
        self._progress = ProgressArgs(interval=ctx.config.progress_interval)

    # --- on the node ----------------------------------------------------------------

    async def run(self, lease: ComputeNodeProvider, row: SubtaskRow) -> None:
        """Compute on `lease` (released here, whatever happens), then verify."""
        try:
            try:
                async with asyncio.timeout(self._subtask_timeout):
                    result = await self._compute(lease, row)
            except TimeoutError as exc:
                await _uninterrupted(self._market.release(lease, exc))
                reason = f"no result within the subtask timeout ({self._subtask_timeout:g} s)"
                await self.give_up(row, S.TIMED_OUT, reason)
                return
            except BatchError as exc:
                await _uninterrupted(self._market.release(lease, exc))
                await self.give_up(row, S.FAILED, str(exc.__cause__ or exc))
                return
            except BaseException:
                await _uninterrupted(self._market.release(lease, None))
                raise
            execution_id = lease.execution_id(row.subtask_id) or row.execution_id
            self._ctx.db.update_subtask(
                row.subtask_id, state=S.DOWNLOADED, result_path=str(result),
                execution_id=execution_id,
            )
            row = self._track(row, state=S.DOWNLOADED, execution_id=execution_id)
            self._emit(row, SubtaskDownloaded(str(result)))
            await _uninterrupted(self._market.release(lease, None))
        finally:
            self._state.changed()
        await self.verify(row)

    async def _compute(self, lease: ComputeNodeProvider, row: SubtaskRow) -> Path:
        ctx = WorkContext(lease, worker_id=row.subtask_id)
        bus = ScriptEvents(self._ctx.events, self._task_id, row.subtask_id)
        script = Script(ctx, timeout=None, task_id=row.subtask_id)
        for name in row.resources:
            script.send_file(
                self._task_dir.subtask_inputs_dir / name, f"{SUBTASK_INPUTS_DIR}/{name}",
                progress=self._progress,
            )
        computed = script.compute(row.subtask_id, row.params or {}, progress=self._progress)
        self._ctx.db.update_subtask(row.subtask_id, state=S.COMPUTING)
        self._track(row, state=S.COMPUTING)
        self._emit(row, SubtaskComputing(row.execution_id))
        await run_script(script, lease, bus)
        output = computed.result()
        outputs = self._task_dir.subtask_outputs_dir(row.subtask_id)
        destination = outputs / PurePosixPath(output).name
        fetch = Script(ctx, timeout=None, task_id=row.subtask_id)
        fetch.download_file(output, destination, progress=self._progress)
        await run_script(fetch, lease, bus)
        return destination

    # --- verification -----------------------------------------------------------------

    async def verify(self, row: SubtaskRow) -> None:
        config = self._ctx.config
        delay = config.awaiting_data_delay
        attempt = 0
        while True:
            attempt += 1
            async with self._ctx.verify_slots:
                self._ctx.db.update_subtask(
                    row.subtask_id, state=S.VERIFYING, count_verify_call=True
                )
                row = self._track(row, state=S.VERIFYING)
                self._emit(row, SubtaskVerifying(attempt))
                outcome = await verify_once(
                    self._app, self._task_id, row.subtask_id, config.verify_timeout
                )
            if outcome.verdict is not Verdict.AWAITING_DATA:
                break
            self._ctx.db.update_subtask(
                row.subtask_id, state=S.AWAITING_DATA, reason=outcome.reason or None
            )
            row = self._track(row, state=S.AWAITING_DATA)
            self._emit(row, SubtaskAwaitingData(delay))
            await asyncio.sleep(MIN_REVERIFY_DELAY)
            await self._state.wait_verdict(delay)
            delay = min(delay * 2, config.awaiting_data_max_delay)
        await self.settle(row, outcome)

    async def settle(self, row: SubtaskRow, outcome: VerifyOutcome) -> None:
        """Record the verdict, tell the node, act on it."""
        db, state = self._ctx.db, self._state
        verdict = outcome.verdict
        if verdict is Verdict.ACCEPTED:
            db.update_subtask(row.subtask_id, state=S.VERIFIED, reason=None)
            state.verified += 1
            self._emit(row, SubtaskVerified(row.number))
        elif verdict is Verdict.REJECTED:
            db.update_subtask(row.subtask_id, state=S.REJECTED, reason=outcome.reason)
            self._count_failure(row, outcome.reason)
            self._emit(row, SubtaskRejected(row.number, outcome.result, outcome.reason))
            self.exclude(row.node_id, f"its result of subtask #{row.number} was rejected:"
                                      f" {outcome.reason}")
        elif verdict is Verdict.APP_FAILED:
            await self._abort_in_app(row)
            db.update_subtask(row.subtask_id, state=S.REJECTED, reason=outcome.reason)
            self._count_failure(row, outcome.reason)
            self._emit(row, SubtaskRejected(row.number, outcome.result, outcome.reason))
        else:
            db.update_subtask(row.subtask_id, state=S.ABORTED, reason=outcome.reason)
            self._emit(row, SubtaskFailed(row.number, S.ABORTED.value, outcome.reason, False))
        await self.report(row, verdict is Verdict.ACCEPTED, outcome.reason)
        state.unsettled.pop(row.subtask_id, None)
        state.changed(verdict=True)

    async def report(self, row: SubtaskRow, accepted: bool, reason: str) -> None:
        """Tell the node the verdict on its result (if it still waits for one)."""
        node = self._ctx.nodes.get(row.node_id)
        if node is not None and row.execution_id is not None:
            try:
                await settle(node, row.execution_id, accepted, reason)
            except (StateConflict, ExecutionNotFound, RuntimeError) as exc:
                logger.debug("verdict on %s not reported to %s: %s", row.execution_id,
                             row.node_id, exc)
        self._ctx.db.update_subtask(row.subtask_id, verdict_reported=True)

    # --- failures -----------------------------------------------------------------------

    async def give_up(self, row: SubtaskRow, new_state: SubtaskState, reason: str) -> None:
        """No result from this subtask: the app hands its part out again."""
        await self._abort_in_app(row)
        self._ctx.db.update_subtask(row.subtask_id, state=new_state, reason=reason)
        self._count_failure(row, reason)
        if len(self._ctx.nodes) > 1:
            self._state.avoid.add(row.node_id)
        self._emit(row, SubtaskFailed(row.number, new_state.value, reason, True))
        self._state.unsettled.pop(row.subtask_id, None)
        self._state.changed()

    async def _abort_in_app(self, row: SubtaskRow) -> bool:
        """AbortSubtask; False if the app never knew the subtask."""
        try:
            await self._app.call(lambda c: c.abort_subtask(self._task_id, row.subtask_id))
        except AppKeepsDying:
            raise
        except TaskApiError as exc:
            if exc.status.name == "NOT_FOUND":
                return False
            logger.warning("AbortSubtask %s of task %s: %s", row.subtask_id, self._task_id, exc)
        return True

    def exclude(self, node_id: str, reason: str) -> None:
        if node_id in self._state.excluded:
            return
        self._state.excluded[node_id] = reason
        self._ctx.db.exclude_node(self._task_id, node_id, reason)
        self._ctx.events.emit(NodeExcluded(reason), task_id=self._task_id, node_id=node_id)

    def _count_failure(self, row: SubtaskRow, reason: str) -> None:
        self._state.failures += 1
        self._state.last_failure = f"subtask #{row.number} on {row.node_id}: {reason}"
        self._state.retry_candidates[params_key(row.params)] = (row.subtask_id, row.node_id)

    # --- after a restart ----------------------------------------------------------------

    async def recover(self, row: SubtaskRow) -> bool:
        """A subtask in flight when the node stopped. True: it has a result to verify."""
        if row.state in (S.DOWNLOADED, S.VERIFYING, S.AWAITING_DATA):
            return True
        if await self._take_finished_result(row):
            return True
        await cancel_execution(self._ctx.nodes, row)
        if row.state is S.REQUESTED and not await self._abort_in_app(row):
            # NextSubtask never answered: there was no subtask.
            self._ctx.db.delete_subtask(row.subtask_id)
            self._state.unsettled.pop(row.subtask_id, None)
            return False
        if row.state is not S.REQUESTED:
            await self._abort_in_app(row)
        reason = f"the node stopped while the subtask was {row.state.value}"
        self._ctx.db.update_subtask(row.subtask_id, state=S.LOST, reason=reason)
        self._count_failure(row, reason)
        self._emit(row, SubtaskFailed(row.number, S.LOST.value, reason, True))
        self._state.unsettled.pop(row.subtask_id, None)
        return False

    async def _take_finished_result(self, row: SubtaskRow) -> bool:
        """The node finished the compute before the crash: download its result now."""
        node = self._ctx.nodes.get(row.node_id)
        if node is None or row.execution_id is None or row.state is S.REQUESTED:
            return False
        execution = node.store.find(row.execution_id)
        if execution is None or execution.state is not ES.AWAITING_VERIFICATION:
            return False
        source = execution.result_path
        if source is None or not source.is_file():
            return False
        destination = self._task_dir.subtask_outputs_dir(row.subtask_id) / source.name
        await asyncio.to_thread(_copy_atomically, source, destination)
        self._ctx.db.update_subtask(row.subtask_id, state=S.DOWNLOADED,
                                    result_path=str(destination))
        row = self._track(row, state=S.DOWNLOADED)
        self._emit(row, SubtaskDownloaded(str(destination)))
        return True

    # --- inside ---------------------------------------------------------------------------

    def _track(self, row: SubtaskRow, **changes: Any) -> SubtaskRow:
        row = row._replace(**changes)
        self._state.unsettled[row.subtask_id] = row
        return row

    def _emit(self, row: SubtaskRow, kind: NodeKind) -> None:
        self._ctx.events.emit(
            kind,
            task_id=self._task_id, subtask_id=row.subtask_id, node_id=row.node_id,
        )


async def cancel_execution(nodes: Mapping[str, ComputeNode], row: SubtaskRow) -> None:
    """Withdraw the node's execution of `row` (its bid, its queued or running work,
    or its result awaiting a verdict), if it has not ended."""
    node = nodes.get(row.node_id)
    if node is None or row.execution_id is None:
        return
    with contextlib.suppress(StateConflict, ExecutionNotFound, RuntimeError):
        execution = node.get_execution(row.execution_id)
        if execution.state is ES.CREATED:
            await node.bid_rejected(row.execution_id, "the requestor withdrew the subtask")
        elif not execution.state.terminal:
            await node.cancel_execution(row.execution_id, "the requestor withdrew the subtask")


def _copy_atomically(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    temp = destination.with_name(f".{destination.name}.recovered.part")
    shutil.copy2(source, temp)
    os.replace(temp, destination)


async def _uninterrupted(awaitable: Awaitable[object]) -> None:
    """Await to the end even if cancelled meanwhile; the cancellation is passed on after."""
    future = asyncio.ensure_future(awaitable)
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.done():
                break
            cancelled = True
    if not future.cancelled() and future.exception() is not None:
        logger.warning("releasing a lease failed: %r", future.exception())
    if cancelled:
        raise asyncio.CancelledError


__all__ = ["SubtaskFlow", "cancel_execution"]
