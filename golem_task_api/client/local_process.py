"""Run an app server as a local subprocess: the node's default environment."""

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from golem_task_api.client.process_service import (
    START_TIMEOUT,
    STOP_GRACE,
    Launched,
    ProcessService,
    SubprocessLaunch,
)


class LocalProcessService(ProcessService):
    """`python -m APP [--work-dir DIR] [--host HOST] requestor|provider PORT`.

    It listens on a free port (the one in the command only with
    `use_requested_port`). The process runs in a session of its own; `stop()` and the end of
    `wait_until_shutdown_complete()` kill its whole process group, so the
    app's own children (Blender, ffmpeg...) never outlive it. Its output is
    captured: into `log_path` if given, and the last lines in memory.
    """

    def __init__(
        self,
        app: str | Sequence[str],
        work_dir: Path,
        *,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        cwd: Path | None = None,
        extra_args: Sequence[str] = (),
        start_timeout: float = START_TIMEOUT,
        stop_grace: float = STOP_GRACE,
        use_requested_port: bool = False,
    ) -> None:
        super().__init__(
            work_dir, host=host, log_path=log_path, extra_args=extra_args,
            start_timeout=start_timeout, stop_grace=stop_grace,
        )
        self._argv_prefix = [sys.executable, "-m", app] if isinstance(app, str) else list(app)
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._use_requested_port = use_requested_port

    def command_line(self, command: str | Sequence[str]) -> list[str]:
        return [*self._argv_prefix, *self.app_args(command)]

    def _app_words(self, words: list[str]) -> list[str]:
        if not self._use_requested_port and not self._host.startswith("unix:"):
            # A local process needs no fixed port (a container does): a free
            # one, so that apps started side by side never collide on 50006.
            words[1] = "0"
        return words

    def _describe(self, args: list[str]) -> str:
        return " ".join([*self._argv_prefix, *args])

    async def _launch(self, args: list[str]) -> Launched:
        return await SubprocessLaunch.spawn(
            [*self._argv_prefix, *args], env=self._env, cwd=self._cwd
        )


__all__ = ["START_TIMEOUT", "STOP_GRACE", "LocalProcessService"]
