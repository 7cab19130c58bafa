"""The default worker: one Task API subtask per work-generator task.

For each task it takes: send the subtask's resources into the provider's
`subtask_inputs/`, compute (progress on), download the result into the
subtask's output dir (the requestor's `subtask_outputs/{subtask_id}/`), then,
with a verifier, verify it and tell the provider the verdict. A result
accepted (by the verifier, or at once without one) accepts the task with a
`SubtaskResult`; a failed compute or a rejected result rejects it, retried
elsewhere unless the node said that no other try can work.

Without a verifier the node's execution keeps waiting for its verdict:
report it with `ComputeMarket.report_verdict(result.provider_id,
result.execution_id, ...)`.
"""

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, runtime_checkable

from golem_task_api.constants import SUBTASK_INPUTS_DIR
from golem_task_api.dirutils import RequestorTaskDir
from golem_task_api.node.market.errors import ComputeNodeError
from golem_task_api.node.workgen.context import WorkContext
from golem_task_api.node.workgen.engine import Worker
from golem_task_api.node.workgen.errors import BatchError
from golem_task_api.node.workgen.progress import DEFAULT_PROGRESS, ProgressArgs
from golem_task_api.node.workgen.provider import Provider
from golem_task_api.node.workgen.script import Script
from golem_task_api.node.workgen.tasks import Task
from golem_task_api.structs import Subtask
from golem_task_api.validation import check_id


@dataclass(frozen=True)
class SubtaskSpec:
    """One subtask: its id and params, its resources (name in `subtask_inputs/`
    → local file), and the local dir its result is downloaded into."""

    subtask_id: str
    params: Mapping[str, Any]
    output_dir: Path
    resources: Mapping[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_id("subtask_id", self.subtask_id)

    @classmethod
    def of(cls, task_dir: RequestorTaskDir, subtask_id: str, subtask: Subtask) -> "SubtaskSpec":
        """The spec of a subtask NextSubtask gave, in the requestor's task dir."""
        return cls(
            subtask_id=subtask_id,
            params=dict(subtask.params),
            output_dir=task_dir.subtask_outputs_dir(subtask_id),
            resources={name: task_dir.subtask_inputs_dir / name for name in subtask.resources},
        )


@dataclass(frozen=True)
class SubtaskResult:
    """A downloaded result; `execution_id` is the node's (None if the provider has none)."""

    subtask_id: str
    output_path: Path
    provider_id: str
    execution_id: str | None


Verifier = Callable[[SubtaskSpec, SubtaskResult], Awaitable[tuple[bool, str]]]
"""(spec, result) -> (accepted, reason): e.g. the requestor app's Verify."""


@runtime_checkable
class VerdictSink(Protocol):
    """A provider that wants to know whether its results passed verification."""

    def execution_id(self, subtask_id: str) -> str | None: ...

    async def report_verdict(self, subtask_id: str, accepted: bool, reason: str = "") -> None: ...


def subtask_worker(
    *,
    verify: Verifier | None = None,
    progress: ProgressArgs | None = DEFAULT_PROGRESS,
    timeout: float | None = None,
) -> Worker[SubtaskSpec, SubtaskResult]:
    """The worker for `execute_tasks(worker, tasks_of_SubtaskSpec, market)`.

    `progress`: how often each command's progress becomes an event;
    `timeout`: of each of its two scripts (send+compute, download), None
    for the job's `script_timeout`.
    """

    async def worker(
        ctx: WorkContext, tasks: AsyncIterator[Task[SubtaskSpec, SubtaskResult]]
    ) -> AsyncGenerator[Script, list[Any]]:
        async for task in tasks:
            spec = task.data
            script = ctx.new_script(timeout=timeout, task=task)
            for name, path in spec.resources.items():
                script.send_file(path, f"{SUBTASK_INPUTS_DIR}/{name}", progress=progress)
            computed = script.compute(spec.subtask_id, spec.params, progress=progress)
            try:
                yield script
            except BatchError as error:
                task.reject_result(str(error), retry=_retryable(error))
                continue
            output = computed.result()
            destination = spec.output_dir / PurePosixPath(output).name
            fetch = ctx.new_script(timeout=timeout, task=task)
            fetch.download_file(output, destination, progress=progress)
            try:
                yield fetch
            except BatchError as error:
                task.reject_result(str(error))
                continue
            provider = ctx.provider
            sink = provider if isinstance(provider, VerdictSink) else None
            result = SubtaskResult(
                spec.subtask_id,
                destination,
                ctx.provider_id,
                None if sink is None else sink.execution_id(spec.subtask_id),
            )
            if verify is None:
                task.accept_result(result)
                continue
            accepted, reason = await verify(spec, result)
            await _report(provider, spec.subtask_id, accepted, reason)
            if accepted:
                task.accept_result(result)
            else:
                task.reject_result(reason or "the result failed verification")

    return worker


def _retryable(error: BatchError) -> bool:
    cause = error.__cause__
    return cause.retryable if isinstance(cause, ComputeNodeError) else True


async def _report(provider: Provider, subtask_id: str, accepted: bool, reason: str) -> None:
    if isinstance(provider, VerdictSink):
        await provider.report_verdict(subtask_id, accepted, reason)


__all__ = ["SubtaskResult", "SubtaskSpec", "VerdictSink", "Verifier", "subtask_worker"]
