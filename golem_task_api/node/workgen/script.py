"""A script: the commands a worker wants run on its provider, in order, as one batch."""

import math
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from golem_task_api.node.workgen.commands import (
    DOWNLOAD_LIMIT,
    Command,
    Compute,
    DownloadBytes,
    DownloadFile,
    DownloadJson,
    Run,
    SendBytes,
    SendFile,
    SendJson,
)
from golem_task_api.node.workgen.errors import ScriptUsageError
from golem_task_api.node.workgen.progress import DEFAULT_PROGRESS, ProgressArgs
from golem_task_api.node.workgen.provider import RunResult

if TYPE_CHECKING:
    from golem_task_api.node.workgen.context import WorkContext

C = TypeVar("C", bound=Command[Any])


class Script:
    """Made by `WorkContext.new_script()`; yield it from the worker to run it.

    Each add-method returns the command, awaitable for its result once the
    script ran. The worker's `yield` returns the list of every command's
    result, in order, or raises the error that stopped the script.

    `progress` on each command: how often its progress becomes an event
    (`ProgressArgs`), None for no progress events.
    """

    def __init__(self, ctx: "WorkContext", *, timeout: float | None, task_id: str | None) -> None:
        if timeout is not None and not timeout > 0:
            raise ValueError(f"a script timeout must be > 0 seconds, got {timeout!r}")
        self.id = uuid.uuid4().hex
        self.ctx = ctx
        self.timeout = None if timeout is None or math.isinf(timeout) else timeout
        self.task_id = task_id
        self._commands: list[Command[Any]] = []
        self._sent = False

    def __repr__(self) -> str:
        return f"<Script {self.id} on {self.ctx.provider_id}: {len(self._commands)} command(s)>"

    @property
    def commands(self) -> tuple[Command[Any], ...]:
        return tuple(self._commands)

    @property
    def sent(self) -> bool:
        """Whether the script was yielded (it cannot be changed or yielded again)."""
        return self._sent

    @property
    def results(self) -> list[Any]:
        """Every command's result, once all have ended; raises the first error."""
        return [command.result() for command in self._commands]

    def send_file(
        self,
        src: str | os.PathLike[str],
        dst: str,
        *,
        progress: ProgressArgs | None = DEFAULT_PROGRESS,
    ) -> Command[int]:
        """Copy the local file `src` to `dst` in the provider's work dir."""
        return self._add(SendFile(src, dst, progress))

    def send_bytes(
        self, data: bytes, dst: str, *, progress: ProgressArgs | None = DEFAULT_PROGRESS
    ) -> Command[int]:
        return self._add(SendBytes(data, dst, progress))

    def send_json(
        self, obj: Any, dst: str, *, progress: ProgressArgs | None = DEFAULT_PROGRESS
    ) -> Command[int]:
        return self._add(SendJson(obj, dst, progress))

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        progress: ProgressArgs | None = DEFAULT_PROGRESS,
    ) -> Command[RunResult]:
        """Run a program in the provider's work dir; with `check`, a non-zero exit is an error."""
        return self._add(Run(args, env, check, progress))

    def compute(
        self,
        subtask_id: str,
        params: Mapping[str, Any],
        *,
        progress: ProgressArgs | None = DEFAULT_PROGRESS,
    ) -> Command[str]:
        """One Task API Compute; the result is the output's path in the work dir."""
        return self._add(Compute(subtask_id, params, progress))

    def download_file(
        self,
        src: str,
        dst: str | os.PathLike[str],
        *,
        progress: ProgressArgs | None = DEFAULT_PROGRESS,
    ) -> Command[Path]:
        return self._add(DownloadFile(src, dst, progress))

    def download_bytes(
        self,
        src: str,
        *,
        limit: int = DOWNLOAD_LIMIT,
        progress: ProgressArgs | None = DEFAULT_PROGRESS,
    ) -> Command[bytes]:
        return self._add(DownloadBytes(src, limit, progress))

    def download_json(
        self,
        src: str,
        *,
        limit: int = DOWNLOAD_LIMIT,
        progress: ProgressArgs | None = DEFAULT_PROGRESS,
    ) -> Command[Any]:
        return self._add(DownloadJson(src, limit, progress))

    def _add(self, command: C) -> C:
        if self._sent:
            raise ScriptUsageError(f"script {self.id} was already yielded: make a new one")
        command.index = len(self._commands)
        self._commands.append(command)
        return command

    def _mark_sent(self) -> None:
        self._sent = True


__all__ = ["Script"]
