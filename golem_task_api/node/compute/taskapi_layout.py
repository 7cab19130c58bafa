"""Where a Task API subtask's files are in an execution's workdir.

    executions/<execution_id>/        the workdir the node gives the run
        .process-group                the provider app's group, while it runs
        provider.log                  the provider app's output
        <task_id>/                    the ProviderTaskDir: the app's --work-dir
            subtask_inputs/           the subtask's resources
            <subtask_id>/             the subtask dir
            ...                       the result, where the app put it

The same layout is read by whoever fetches the result (the work generator's
compute-node provider), so it is defined once, here.
"""

import shutil
from collections.abc import Iterable
from pathlib import Path

from golem_task_api.dirutils import ProviderDir, ProviderTaskDir
from golem_task_api.errors import InvalidArgument
from golem_task_api.node.compute.process import GROUP_FILE

PROVIDER_LOG = "provider.log"


class ExecutionLayout:
    def __init__(self, workdir: Path, task_id: str) -> None:
        self.workdir = Path(workdir)
        self.task_dir: ProviderTaskDir = ProviderDir(self.workdir).task_dir(task_id)

    @property
    def group_file(self) -> Path:
        return self.workdir / GROUP_FILE

    @property
    def log_path(self) -> Path:
        return self.workdir / PROVIDER_LOG

    def prepare(self, subtask_id: str, resources: Iterable[Path]) -> None:
        """Create the task dir and the subtask dir, and copy the resources in.

        A resource is a file or a directory on this machine; each lands in
        `subtask_inputs/` under its own name (a directory with its tree).
        Copied, not linked: an app that writes to its inputs must not change
        the files of the next subtask. Blocking: run it in a thread.
        """
        self.task_dir.prepare(exist_ok=True)
        self.task_dir.subtask_dir(subtask_id).mkdir(exist_ok=True)
        inputs = self.task_dir.subtask_inputs_dir
        seen: set[str] = set()
        for resource in resources:
            name = resource.name
            if name in seen:
                raise InvalidArgument(f"two resources are named {name!r}")
            seen.add(name)
            if resource.is_dir():
                shutil.copytree(resource, inputs / name, dirs_exist_ok=True)
            elif resource.is_file():
                shutil.copy2(resource, inputs / name)
            else:
                raise InvalidArgument(f"resource {resource} is not a file or a directory")


__all__ = ["PROVIDER_LOG", "ExecutionLayout"]
