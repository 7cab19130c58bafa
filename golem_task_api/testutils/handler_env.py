"""Call one handler method directly, with its dirs and progress prepared.

Like temporal's `ActivityEnvironment`: no server, no process, no gRPC; the
handler runs on the test's event loop with `report()` bound and
`GOLEM_PROGRESS_FILE` set, and every value it reports is kept::

    env = HandlerEnvironment(tmp_path)
    task_dir = env.provider_task_dir("t1", resources={"data.bin": b"..."})
    output = await env.run(handler.compute(task_dir, "s1", params))
    assert env.progress[-1].done == env.progress[-1].total
"""

import shutil
from collections.abc import Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from golem_task_api.dirutils import ProviderDir, ProviderTaskDir, RequestorDir, RequestorTaskDir
from golem_task_api.progress import ComputationProgress, ProgressTracker, ProgressValue

T = TypeVar("T")


class _RecordingTracker(ProgressTracker):
    """A tracker that also keeps every value reported to it, unthrottled."""

    def __init__(self, sink: list[ProgressValue]) -> None:
        super().__init__()
        self._sink = sink

    def report(
        self,
        done: float,
        total: float | None = None,
        unit: str = "",
        message: str = "",
        step: int = 0,
        step_count: int = 0,
    ) -> None:
        super().report(done, total, unit, message, step, step_count)
        self._sink.append(self.value)

    def update(self, value: ProgressValue) -> None:
        super().update(value)
        self._sink.append(self.value)


class HandlerEnvironment:
    def __init__(self, work_dir: Path) -> None:
        self.work_dir = Path(work_dir)
        self.requestor_dir = RequestorDir(self.work_dir / "requestor")
        self.provider_dir = ProviderDir(self.work_dir / "provider")
        self.requestor_dir.mkdir(parents=True, exist_ok=True)
        self.provider_dir.mkdir(parents=True, exist_ok=True)
        # Every progress value the handler reported, in order, through
        # report() or the progress file.
        self.progress: list[ProgressValue] = []

    def requestor_task_dir(
        self, task_id: str, inputs: Iterable[Path] = ()
    ) -> RequestorTaskDir:
        """A prepared requestor task dir with `inputs` copied into task_inputs/."""
        task_dir = self.requestor_dir.task_dir(task_id)
        task_dir.prepare(exist_ok=True)
        for path in inputs:
            shutil.copy2(path, task_dir.task_inputs_dir)
        return task_dir

    def provider_task_dir(
        self, task_id: str, resources: Mapping[str, Path | bytes] | None = None
    ) -> ProviderTaskDir:
        """A prepared provider task dir with `resources` (name → file or bytes)
        placed in subtask_inputs/, as a node places them."""
        task_dir = self.provider_dir.task_dir(task_id)
        task_dir.prepare(exist_ok=True)
        for name, content in (resources or {}).items():
            target = task_dir.subtask_inputs_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                shutil.copy2(content, target)
        return task_dir

    async def run(self, call: Coroutine[Any, Any, T], *, progress_file: bool = True) -> T:
        """Await one handler call with progress bound (and the progress file set)."""
        computation = ComputationProgress(
            _RecordingTracker(self.progress), progress_file=progress_file
        )
        return await computation.start(call)


__all__ = ["HandlerEnvironment"]
