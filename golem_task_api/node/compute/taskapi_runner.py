"""`TaskApiRunner`: the compute node's runner for Task API subtasks.

One run = one short-lived ProviderApp: the offer's app id names the app (the
node's `AppRegistry`), its env id the environment that starts it; the
subtask's resources are copied into the task dir (`ExecutionLayout`), the
app is started on it, asked for ComputeWithProgress (the client falls back
to Compute for older apps), and its progress goes to the node as it comes.
The result must be a file inside the task dir.

A run that is cancelled (the node's timeout, a cancelled execution, the node
stopping) stops the app's whole process group before it returns; while the
app runs its group is recorded in the workdir, so that a node restarted
after a crash kills what the crashed one left.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from golem_task_api import errors
from golem_task_api.client.channel import CONNECTION_TIMEOUT
from golem_task_api.client.provider import ComputeResult, ProviderAppClient
from golem_task_api.client.service import TaskApiService
from golem_task_api.node.app_registry import AppRegistry, UnknownApp
from golem_task_api.node.compute.execution import Execution
from golem_task_api.node.compute.offers import SubtaskWork
from golem_task_api.node.compute.process import record_process_group
from golem_task_api.node.compute.runner import (
    ProgressReporter,
    ProgressUpdate,
    RunJob,
    RunResult,
)
from golem_task_api.node.compute.taskapi_layout import ExecutionLayout
from golem_task_api.node.compute.taskapi_services import ProviderServices, run_on_provider
from golem_task_api.node.envs.base import AppSpec, NoEnvironment
from golem_task_api.progress.events import ProgressUpdate as ClientProgress
from golem_task_api.validation import resolve_inside

logger = logging.getLogger(__name__)

# How often the app sends progress (progress.md's update_interval); the
# node's listeners throttle again for people.
DEFAULT_UPDATE_INTERVAL = 0.25
_OUTPUT_TAIL = 1500

# The app refused the subtask itself: another provider would refuse it too.
_SUBTASK_FAULTS = (
    errors.InvalidArgument,
    errors.NotFound,
    errors.FailedPrecondition,
    errors.AlreadyExists,
    errors.Unimplemented,
)


class TaskApiRunner:
    """An `ExecutionRunner` that computes Task API subtasks with provider apps.

    `services` says how apps are started (default: local processes);
    `update_interval` how often the app reports progress.
    """

    def __init__(
        self,
        registry: AppRegistry,
        services: ProviderServices | None = None,
        *,
        update_interval: float = DEFAULT_UPDATE_INTERVAL,
        connection_timeout: float = CONNECTION_TIMEOUT,
    ) -> None:
        self.registry = registry
        self.services = services or ProviderServices()
        self.update_interval = update_interval
        self.connection_timeout = connection_timeout

    async def run(self, job: RunJob, report_progress: ProgressReporter) -> RunResult:
        execution = job.execution
        found = subtask_of(self.registry, execution)
        if isinstance(found, RunResult):
            return found
        app, work = found
        layout = ExecutionLayout(job.workdir, execution.task_id)
        try:
            await asyncio.to_thread(layout.prepare, work.subtask_id, work.resources)
        except (OSError, errors.InvalidArgument) as exc:
            return RunResult.failed(f"cannot place the subtask's resources: {exc}")
        try:
            service = await self.services.service(
                app, execution.env_id, layout.task_dir, layout.log_path
            )
        except NoEnvironment as exc:
            return RunResult.failed(str(exc))

        async def compute(client: ProviderAppClient) -> Path:
            stream = client.compute_with_progress(
                execution.task_id,
                work.subtask_id,
                dict(work.params),
                update_interval=self.update_interval,
            )
            output: Path | None = None
            async with contextlib.aclosing(stream):
                async for item in stream:
                    if isinstance(item, ComputeResult):
                        output = item.output_filepath
                    elif (update := _update(item)) is not None:
                        report_progress(update)
            if output is None:
                raise errors.Unavailable("the provider app ended its stream without a result")
            return output

        try:
            output = await run_on_provider(
                service,
                compute,
                started=_recorder(layout.group_file),
                connection_timeout=self.connection_timeout,
            )
        except Exception as exc:
            return _failure(app.name, exc, service)
        finally:
            with contextlib.suppress(OSError):
                layout.group_file.unlink()
        try:
            path = resolve_inside(layout.task_dir, output, "the app's output path")
        except errors.InvalidArgument as exc:
            return RunResult.failed(str(exc))
        return RunResult.succeeded(path)


def subtask_of(
    registry: AppRegistry, execution: Execution
) -> tuple[AppSpec, SubtaskWork] | RunResult:
    """The app and the subtask of an execution, or the failed run if there is none."""
    if execution.work is None:
        return RunResult.failed("the execution has no subtask to compute")
    try:
        return registry.get(execution.app_id), execution.work
    except UnknownApp as exc:
        return RunResult.failed(str(exc))


def _recorder(group_file: Path) -> Callable[[TaskApiService], None]:
    def record(service: TaskApiService) -> None:
        # Local, warm and sandboxed apps lead a process group of their own.
        pid = getattr(service, "pid", None)
        if not isinstance(pid, int):
            return
        try:
            record_process_group(group_file, pid)
        except OSError as exc:
            # Only a restart after a crash needs it: the run goes on without.
            logger.warning("cannot record the process group of pid %d: %s", pid, exc)

    return record


def _update(item: ClientProgress) -> ProgressUpdate | None:
    try:
        return ProgressUpdate.of(item.value)
    except ValueError:
        logger.warning("dropped an invalid progress value %r", item.value)
        return None


def _failure(app_name: str, exc: BaseException, service: TaskApiService) -> RunResult:
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    reason = f"the {app_name} provider app failed: {detail}"
    tail = getattr(service, "output_tail", None)
    output = tail().strip() if callable(tail) else ""
    if output:
        reason += f"; its last output:\n{output[-_OUTPUT_TAIL:]}"
    return RunResult.failed(reason, retryable=not isinstance(exc, _SUBTASK_FAULTS))


__all__ = ["DEFAULT_UPDATE_INTERVAL", "TaskApiRunner", "subtask_of"]
