"""Publishing an accepted result: keep it on this node, or hand it over."""

import asyncio
import shutil
from pathlib import Path
from typing import Protocol

from golem_task_api.node.compute.execution import Execution


class Publisher(Protocol):
    """Takes an accepted result out of the execution's workdir before it is removed.

    Returns where the result went (a path, a URL) for `PublishComplete`.
    Cancellation (the execution was cancelled, the node stops) must stop it.
    """

    async def publish(self, execution: Execution, result_path: Path) -> str: ...


class KeepResult:
    """Moves the result to `results_dir/<execution_id>/<name>`."""

    def __init__(self, results_dir: Path) -> None:
        self.results_dir = results_dir

    async def publish(self, execution: Execution, result_path: Path) -> str:
        target_dir = self.results_dir / execution.execution_id
        target = target_dir / result_path.name

        def move() -> None:
            target_dir.mkdir(parents=True, exist_ok=True)
            shutil.move(result_path, target)

        await asyncio.to_thread(move)
        return str(target)


__all__ = ["KeepResult", "Publisher"]
