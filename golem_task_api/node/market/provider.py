"""`ComputeNodeProvider`: a work-generator `Provider` backed by one compute node.

A provider is a lease, handed out by `ComputeMarket`, on one node for one
task's offer. It starts with the bid the market won (an execution in state
Created on the node) and has a staging dir laid out like a provider task dir:

- `upload_*` put files into the staging dir's `subtask_inputs/` (the only
  place a compute node takes files from: they become the subtask's
  resources);
- `compute` hands the subtask to the node with `bid_accepted` (the won bid
  first, a fresh bid for each later subtask), forwards the app's progress,
  and returns once the run has ended: the result's path relative to the
  task dir, as Compute gives it;
- `download_*` read the results of this lease's executions (each stays in
  its execution's workdir until its verdict) and, failing that, the staging
  dir;
- `report_verdict` tells the node whether the result passed verification;
- cancelling `compute` cancels the execution and returns once the node says
  its work has stopped.

`run` is not supported: a compute node runs Task API subtasks, not commands.
"""

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from golem_task_api.constants import SUBTASK_INPUTS_DIR
from golem_task_api.errors import InvalidArgument
from golem_task_api.node.compute.execution import Execution
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.offers import Bid, Offer, SubtaskWork
from golem_task_api.node.compute.states import (
    ExecutionNotFound,
    ExecutionState,
    StateConflict,
)
from golem_task_api.node.compute.taskapi_layout import ExecutionLayout
from golem_task_api.node.market.errors import (
    BidRefusedError,
    ExecutionFailedError,
    NodeStoppedError,
)
from golem_task_api.node.market.tracking import ExecutionTracker, ExecutionWatch
from golem_task_api.node.workgen.local_provider import LocalDirProvider
from golem_task_api.node.workgen.progress import ProgressCallback
from golem_task_api.node.workgen.provider import RunResult

logger = logging.getLogger(__name__)

# A terminal state is in the store before its event is delivered (after the
# run has stopped and the workdir is gone); this bounds the wait for it.
EVENT_GRACE = 30.0

S = ExecutionState


class ComputeNodeProvider:
    """See the module doc. Made by `ComputeMarket.acquire`."""

    def __init__(
        self,
        node_id: str,
        node: ComputeNode,
        offer: Offer,
        bid: Bid,
        staging_dir: Path,
    ) -> None:
        if not bid.accepted or bid.execution_id is None or bid.usage is None:
            raise ValueError(f"a provider needs a won bid, got {bid}")
        self._id = node_id
        self.node = node
        self.offer = offer
        self.usage = bid.usage
        self.benchmark_score = bid.benchmark_score
        self._bid: str | None = bid.execution_id
        self._staging = LocalDirProvider(node_id, staging_dir)
        self._tracker = ExecutionTracker.of(node)
        # Results awaiting their verdict, by subtask id, oldest first.
        self._results: dict[str, Execution] = {}
        self.execution_ids: list[str] = []
        self._closed = False

    @property
    def id(self) -> str:
        return self._id

    @property
    def name(self) -> str:
        return self._id

    @property
    def staging_dir(self) -> Path:
        return self._staging.work_dir

    @property
    def bid_execution_id(self) -> str | None:
        """The execution of the bid the lease won, until a compute uses it: a
        requestor can record it before the compute starts."""
        return self._bid

    def __repr__(self) -> str:
        return f"<ComputeNodeProvider {self._id} for task {self.offer.task_id}>"

    # --- transfers -------------------------------------------------------------

    async def upload_file(self, src: Path, dst: str, on_progress: ProgressCallback) -> int:
        self._check_input(dst)
        return await self._staging.upload_file(src, dst, on_progress)

    async def upload_bytes(self, data: bytes, dst: str, on_progress: ProgressCallback) -> int:
        self._check_input(dst)
        return await self._staging.upload_bytes(data, dst, on_progress)

    async def download_file(self, src: str, dst: Path, on_progress: ProgressCallback) -> int:
        return await self._holder_of(src).download_file(src, dst, on_progress)

    async def download_bytes(self, src: str, limit: int, on_progress: ProgressCallback) -> bytes:
        return await self._holder_of(src).download_bytes(src, limit, on_progress)

    def _check_input(self, dst: str) -> None:
        self._check_open()
        inputs = self._staging.path(SUBTASK_INPUTS_DIR)
        target = self._staging.path(dst)
        if target == inputs or not target.is_relative_to(inputs):
            raise InvalidArgument(
                f"a compute node takes files into {SUBTASK_INPUTS_DIR}/ only (they become"
                f" the subtask's resources), not {dst!r}"
            )

    def _holder_of(self, src: str) -> LocalDirProvider:
        """The dir that has `src`: the newest result's task dir that does, else staging."""
        for execution in reversed(self._results.values()):
            task_dir = self._layout(execution.execution_id).task_dir
            with contextlib.suppress(InvalidArgument):
                if LocalDirProvider(self._id, task_dir).path(src).exists():
                    return LocalDirProvider(self._id, task_dir)
        return self._staging

    def _layout(self, execution_id: str) -> ExecutionLayout:
        return ExecutionLayout(self.node.config.executions_dir / execution_id, self.offer.task_id)

    # --- processes -------------------------------------------------------------

    async def run(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None,
        on_progress: ProgressCallback,
    ) -> RunResult:
        raise NotImplementedError(
            f"node {self._id} runs Task API subtasks (compute), not commands like {args[:1]}"
        )

    # --- compute ---------------------------------------------------------------

    async def compute(
        self, subtask_id: str, params: Mapping[str, Any], on_progress: ProgressCallback
    ) -> str:
        self._check_open()
        resources = await asyncio.to_thread(self._staged_resources)
        work = SubtaskWork(subtask_id, dict(params), resources)
        execution_id = self._take_bid() or await self._new_bid()
        self.execution_ids.append(execution_id)
        watch = self._tracker.watch(execution_id, on_progress)
        try:
            await self.node.bid_accepted(execution_id, work)
        except BaseException:
            self._tracker.forget(execution_id)
            raise
        try:
            execution = await self._wait(watch.run_ended, execution_id)
        except asyncio.CancelledError:
            await self._cancel(execution_id, watch, "the requestor cancelled the compute")
            raise
        if execution.state is not S.AWAITING_VERIFICATION or execution.result_path is None:
            raise ExecutionFailedError(self._id, execution)
        stale = self._results.pop(subtask_id, None)
        if stale is not None:
            await self._drop(stale.execution_id, "computed again")
        self._results[subtask_id] = execution
        task_dir = self._layout(execution_id).task_dir.resolve()
        return execution.result_path.relative_to(task_dir).as_posix()

    def execution_id(self, subtask_id: str) -> str | None:
        """The execution whose result of `subtask_id` awaits its verdict."""
        execution = self._results.get(subtask_id)
        return None if execution is None else execution.execution_id

    async def report_verdict(self, subtask_id: str, accepted: bool, reason: str = "") -> None:
        """Tell the node whether the result of `subtask_id` passed verification."""
        execution = self._results.pop(subtask_id, None)
        if execution is None:
            raise ValueError(f"no result of subtask {subtask_id!r} awaits a verdict here")
        await settle(self.node, execution.execution_id, accepted, reason)

    def forget_result(self, execution_id: str) -> None:
        """A verdict on it went to the node another way (the market)."""
        for subtask_id, execution in list(self._results.items()):
            if execution.execution_id == execution_id:
                del self._results[subtask_id]

    def _staged_resources(self) -> tuple[Path, ...]:
        inputs = self._staging.work_dir / SUBTASK_INPUTS_DIR
        if not inputs.is_dir():
            return ()
        # Transfers in progress write hidden `.NAME.part` files.
        return tuple(sorted(p for p in inputs.iterdir() if not p.name.startswith(".")))

    def _take_bid(self) -> str | None:
        """The bid the lease started with, unless used or expired."""
        execution_id, self._bid = self._bid, None
        if execution_id is None:
            return None
        execution = self.node.store.find(execution_id)
        return execution_id if execution is not None and execution.state is S.CREATED else None

    async def _new_bid(self) -> str:
        bid = await self.node.ask_for_bid(self.offer)
        if not bid.accepted or bid.execution_id is None:
            raise BidRefusedError(self._id, bid.reason)
        return bid.execution_id

    async def _wait(self, future: "asyncio.Future[Execution]", execution_id: str) -> Execution:
        """`future`'s execution; NodeStoppedError if the node stops first."""
        if future.done():
            return future.result()
        stopped = asyncio.ensure_future(self.node.wait_for(execution_id))
        try:
            await asyncio.wait([future, stopped], return_when=asyncio.FIRST_COMPLETED)
            if future.done():
                return future.result()
            if stopped.exception() is not None:
                raise NodeStoppedError(self._id, execution_id) from stopped.exception()
            # Terminal in the store: the event follows once the work has stopped.
            try:
                return await asyncio.wait_for(asyncio.shield(future), EVENT_GRACE)
            except TimeoutError:
                logger.warning("no end event of execution %s on %s", execution_id, self._id)
                return stopped.result()
        finally:
            stopped.cancel()
            if stopped.done() and not stopped.cancelled():
                stopped.exception()

    async def _cancel(self, execution_id: str, watch: ExecutionWatch, reason: str) -> None:
        """Cancel the execution and wait, through further cancels, for its work to stop."""
        try:
            await self.node.cancel_execution(execution_id, reason)
        except StateConflict:
            pass  # it ended meanwhile: its end event comes all the same
        except (ExecutionNotFound, RuntimeError):
            return  # the node stopped: nothing runs any more
        waiting = asyncio.ensure_future(self._wait(watch.ended, execution_id))
        while not waiting.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(waiting)
        if not waiting.cancelled() and waiting.exception() is not None:
            logger.debug("after cancelling %s: %r", execution_id, waiting.exception())

    async def _drop(self, execution_id: str, reason: str) -> None:
        with contextlib.suppress(StateConflict, ExecutionNotFound, RuntimeError):
            await self.node.cancel_execution(execution_id, reason)

    # --- the lease -------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the lease of node {self._id} has ended")

    async def close(self) -> None:
        """End the lease: withdraw an unused bid, remove the staging dir.

        Results awaiting their verdict stay on the node (the market can
        still report it); downloads from them are over.
        """
        if self._closed:
            return
        self._closed = True
        # RuntimeError: the node has stopped, and its bids with it.
        with contextlib.suppress(StateConflict, ExecutionNotFound, RuntimeError):
            execution_id = self._take_bid()
            if execution_id is not None:
                await self.node.bid_rejected(execution_id, "the requestor did not use the bid")
        self._results.clear()
        await asyncio.to_thread(shutil.rmtree, self.staging_dir, ignore_errors=True)


async def settle(node: ComputeNode, execution_id: str, accepted: bool, reason: str = "") -> None:
    """Report a verdict on a result awaiting it."""
    if accepted:
        await node.result_accepted(execution_id)
    else:
        await node.result_rejected(execution_id, reason or "the result failed verification")


__all__ = ["EVENT_GRACE", "ComputeNodeProvider", "settle"]
