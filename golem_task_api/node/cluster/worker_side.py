"""What runs on a Dask worker: one subtask, or one benchmark, of a Task API app.

The worker computes with the node's own `TaskApiRunner` (a local provider
process, ComputeWithProgress, the whole process group killed on cancel), in
a scratch dir of its own that is removed afterwards. Files travel as bytes
(`packing`): the subtask's resources in, the result out.

Progress goes back as Dask structured events on `PROGRESS_TOPIC` (the node
subscribes once and routes by execution id); a cancel comes as the Dask
`Event` named in the job being set (looked at every `CANCEL_POLL`). These
functions are called by Dask in a worker thread, so each runs its own event
loop.
"""

import asyncio
import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from golem_task_api.node.app_registry import AppRegistry
from golem_task_api.node.cluster.packing import pack, unpack
from golem_task_api.node.compute.capacity import Allocation
from golem_task_api.node.compute.execution import Execution
from golem_task_api.node.compute.runner import ProgressUpdate, RunJob
from golem_task_api.node.compute.taskapi_benchmark import TaskApiBenchmark
from golem_task_api.node.compute.taskapi_layout import ExecutionLayout
from golem_task_api.node.compute.taskapi_runner import TaskApiRunner
from golem_task_api.node.envs.base import AppSpec

PROGRESS_TOPIC = "golem-task-api-progress"
# How often a running subtask looks whether the node cancelled it.
CANCEL_POLL = 0.5


@dataclass(frozen=True)
class WorkerJob:
    """One execution as a worker gets it; `resources` is a `pack` of its files."""

    execution: Execution
    app: AppSpec
    resources: bytes
    allocation: Allocation
    timeout: float | None
    cancel_event: str
    update_interval: float


@dataclass(frozen=True)
class WorkerOutcome:
    """How the run ended on the worker.

    On success `output` is the result's path relative to the task dir and
    `result` a `pack` of it under that name.
    """

    worker: str
    output: str | None = None
    result: bytes = b""
    error: str = ""
    retryable: bool = False
    cancelled: bool = False


def run_subtask(job: WorkerJob) -> WorkerOutcome:
    return asyncio.run(_run_subtask(job))


def run_benchmark(app: AppSpec, env_id: str, timeout: float | None) -> float:
    async def measure() -> float:
        with _scratch() as scratch:
            benchmark = TaskApiBenchmark(_registry(app), scratch, timeout=timeout)
            return await benchmark.run_benchmark(app.name, env_id, {})

    return asyncio.run(measure())


async def _run_subtask(job: WorkerJob) -> WorkerOutcome:
    from distributed import Event, get_worker  # noqa: PLC0415 - only on a worker

    worker = get_worker()
    execution_id = job.execution.execution_id

    def report(update: ProgressUpdate) -> None:
        # Thread-safe and non-blocking: batched to the scheduler by the worker.
        worker.log_event(PROGRESS_TOPIC, {"execution": execution_id, **dataclasses.asdict(update)})

    with _scratch() as scratch:
        work = job.execution.work
        assert work is not None, "the node sends only executions with work"
        names = unpack(job.resources, scratch / "resources")
        local_work = dataclasses.replace(
            work, resources=tuple(scratch / "resources" / name for name in names)
        )
        execution = dataclasses.replace(job.execution, work=local_work)
        run_job = RunJob(execution, scratch / "run", job.allocation, job.timeout)
        run_job.workdir.mkdir()
        runner = TaskApiRunner(_registry(job.app), update_interval=job.update_interval)
        run = asyncio.ensure_future(runner.run(run_job, report))
        cancel = Event(job.cancel_event)
        while True:
            # Not a blocking Event.wait in a thread: the run's end would wait
            # for that thread's timeout. One small scheduler call per poll.
            done, _ = await asyncio.wait([run], timeout=CANCEL_POLL)
            if done:
                break
            if await asyncio.to_thread(cancel.is_set):
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run  # the runner returns once the app's group is dead
                return WorkerOutcome(worker.address, cancelled=True)
        result = run.result()
        if not result.ok or result.output_path is None:
            return WorkerOutcome(worker.address, error=result.error, retryable=result.retryable)
        task_dir = ExecutionLayout(run_job.workdir, execution.task_id).task_dir
        output = result.output_path if result.output_path.is_absolute() else (
            task_dir / result.output_path
        )
        relative = output.relative_to(task_dir).as_posix()
        data = await asyncio.to_thread(pack, [(relative, output)])
        return WorkerOutcome(worker.address, output=relative, result=data)


def _registry(app: AppSpec) -> AppRegistry:
    return AppRegistry({app.name: app})


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="golem-task-api-worker-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


__all__ = ["PROGRESS_TOPIC", "WorkerJob", "WorkerOutcome", "run_benchmark", "run_subtask"]
