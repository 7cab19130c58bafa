"""`DaskRunner` and `DaskBenchmark`: a compute node's runs on one Dask worker.

The run is the same as a local one (`worker_side` uses the node's own
`TaskApiRunner` on the worker); what differs is the way there and back:
the resources are packed and sent with the job, progress comes back as
Dask events, the result comes back packed and is unpacked into the
execution's workdir, where the node and the work generator read results of
local runs too.

A cancelled run sets the job's Dask `Event`; the worker kills the app's
process group and answers, and only then does `run` raise `CancelledError`
(the `ExecutionRunner` contract: capacity is freed once the work stopped).
A worker that does not answer within `cancel_grace` (lost, or stuck) is
given up on: the task is cancelled in Dask and the run ends.
"""

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from typing import Any

from golem_task_api.errors import InvalidArgument
from golem_task_api.node.app_registry import AppRegistry
from golem_task_api.node.cluster.cluster import DaskCluster
from golem_task_api.node.cluster.packing import pack, unpack
from golem_task_api.node.cluster.worker_side import (
    WorkerJob,
    WorkerOutcome,
    run_benchmark,
    run_subtask,
)
from golem_task_api.node.compute.runner import ProgressReporter, RunJob, RunResult
from golem_task_api.node.compute.taskapi_benchmark import DEFAULT_BENCHMARK_TIMEOUT
from golem_task_api.node.compute.taskapi_layout import ExecutionLayout
from golem_task_api.node.compute.taskapi_runner import DEFAULT_UPDATE_INTERVAL, subtask_of
from golem_task_api.node.compute.taskapi_services import uninterrupted
from golem_task_api.validation import resolve_inside

logger = logging.getLogger(__name__)

CANCEL_GRACE = 30.0


class DaskRunner:
    """An `ExecutionRunner` that computes on the Dask worker `worker` (its address)."""

    def __init__(
        self,
        cluster: DaskCluster,
        worker: str,
        registry: AppRegistry,
        *,
        update_interval: float = DEFAULT_UPDATE_INTERVAL,
        cancel_grace: float = CANCEL_GRACE,
    ) -> None:
        self.cluster = cluster
        self.worker = worker
        self.registry = registry
        self.update_interval = update_interval
        self.cancel_grace = cancel_grace

    async def run(self, job: RunJob, report_progress: ProgressReporter) -> RunResult:
        prepared = await self._job(job)
        if isinstance(prepared, RunResult):
            return prepared
        if self.cluster.worker_gone(self.worker):
            return RunResult.failed(f"the Dask worker {self.worker} left the cluster",
                                    retryable=True)
        execution_id = job.execution.execution_id
        self.cluster.listen(execution_id, report_progress)
        try:
            outcome = await self._compute(prepared)
        finally:
            self.cluster.unlisten(execution_id)
        if isinstance(outcome, RunResult):
            return outcome
        if outcome.cancelled:
            return RunResult.failed("the worker stopped the run", retryable=True)
        if outcome.output is None:
            return RunResult.failed(outcome.error, retryable=outcome.retryable)
        return await self._take_result(job, outcome)

    async def _job(self, job: RunJob) -> WorkerJob | RunResult:
        """What the worker gets, or why there is nothing to send."""
        execution = job.execution
        found = subtask_of(self.registry, execution)
        if isinstance(found, RunResult):
            return found
        app, work = found
        names = [path.name for path in work.resources]
        if len(set(names)) != len(names):
            return RunResult.failed("cannot place the subtask's resources: two share a name")
        try:
            resources = await asyncio.to_thread(
                pack, [(path.name, path) for path in work.resources]
            )
        except (InvalidArgument, OSError) as exc:
            return RunResult.failed(f"cannot place the subtask's resources: {exc}")
        return WorkerJob(
            # The paths are this machine's: the files travel in `resources`.
            execution=dataclasses.replace(execution, work=dataclasses.replace(work, resources=())),
            app=app,
            resources=resources,
            allocation=job.allocation,
            timeout=job.timeout,
            cancel_event=f"golem-task-api-cancel-{execution.execution_id}-{uuid.uuid4().hex}",
            update_interval=self.update_interval,
        )

    async def _compute(self, job: WorkerJob) -> WorkerOutcome | RunResult:
        from distributed import Event  # noqa: PLC0415 - the optional cluster extra

        client = self.cluster.client
        cancel = Event(job.cancel_event, client=client)
        future = client.submit(
            run_subtask, job, key=f"golem-task-api-run-{job.cancel_event}", pure=False,
            workers=[self.worker], allow_other_workers=False,
        )
        waiting = asyncio.ensure_future(_result(future))
        gone = asyncio.ensure_future(self.cluster.wait_gone(self.worker))
        try:
            try:
                await asyncio.wait([waiting, gone], return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                await uninterrupted(self._cancel(cancel, future, waiting, gone))
                raise
            if not waiting.done():
                waiting.cancel()
                await client.cancel(future, force=True)
                return RunResult.failed(f"the Dask worker {self.worker} left the cluster"
                                        " during the run", retryable=True)
            try:
                outcome: WorkerOutcome = waiting.result()
            except Exception as exc:
                # The worker died (KilledWorker), the connection broke...: this
                # node's trouble, not the subtask's.
                return RunResult.failed(
                    f"the Dask worker {self.worker} failed: {type(exc).__name__}: {exc}",
                    retryable=True,
                )
            return outcome
        finally:
            gone.cancel()
            future.release()

    async def _take_result(self, job: RunJob, outcome: WorkerOutcome) -> RunResult:
        """Unpack the result where a local run leaves it: the execution's task dir."""
        assert outcome.output is not None
        task_dir = ExecutionLayout(job.workdir, job.execution.task_id).task_dir
        try:
            await asyncio.to_thread(task_dir.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(unpack, outcome.result, task_dir)
            path = resolve_inside(task_dir, outcome.output, "the app's output path")
        except (InvalidArgument, OSError) as exc:
            return RunResult.failed(f"the result from {self.worker} is unusable: {exc}")
        if not path.exists():
            return RunResult.failed(f"the result from {self.worker} lacks {outcome.output}")
        return RunResult.succeeded(path)

    async def _cancel(
        self, cancel: Any, future: Any, waiting: "asyncio.Future[Any]",
        gone: "asyncio.Future[None]",
    ) -> None:
        await cancel.set()
        try:
            done, _ = await asyncio.wait(
                [waiting, gone], timeout=self.cancel_grace, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                logger.warning("the Dask worker %s did not stop a cancelled run within %.0f s",
                               self.worker, self.cancel_grace)
            if not waiting.done():
                await self.cluster.client.cancel(future, force=True)
        finally:
            waiting.cancel()
            with contextlib.suppress(Exception):
                await cancel.clear()


class DaskBenchmark:
    """A `BenchmarkSource`: the app's RunBenchmark, run on the worker `worker`."""

    def __init__(
        self,
        cluster: DaskCluster,
        worker: str,
        registry: AppRegistry,
        *,
        timeout: float | None = DEFAULT_BENCHMARK_TIMEOUT,
    ) -> None:
        self.cluster = cluster
        self.worker = worker
        self.registry = registry
        self.timeout = timeout

    async def run_benchmark(self, app_id: str, env_id: str, prerequisites: Any) -> float:
        app = self.registry.get(app_id)
        future = self.cluster.client.submit(
            run_benchmark, app, env_id, self.timeout, pure=False,
            workers=[self.worker], allow_other_workers=False,
        )
        try:
            return float(await _result(future))
        finally:
            future.release()


async def _result(future: Any) -> Any:
    return await future


__all__ = ["CANCEL_GRACE", "DaskBenchmark", "DaskRunner"]
