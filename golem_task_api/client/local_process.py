"""Run an app server as a local subprocess: the node's default environment."""

import asyncio
import collections
import contextlib
import logging
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from golem_task_api.client.service import TaskApiService
from golem_task_api.entrypoint import parse_announce_line, parse_command
from golem_task_api.errors import Unavailable
from golem_task_api.process_group import signal_group, wait_for_exit

logger = logging.getLogger("golem_task_api.client")

START_TIMEOUT = 30.0
STOP_GRACE = 5.0
# Kept in memory for error messages when no log file is given.
_TAIL_LINES = 200
_CHUNK = 65536
# Longer lines are cut (in the tail and the log), never a reason to stop reading.
_MAX_LINE = 16384


class LocalProcessService(TaskApiService):
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
        self._argv_prefix = [sys.executable, "-m", app] if isinstance(app, str) else list(app)
        self._work_dir = Path(work_dir)
        self._host = host
        self._env = dict(env) if env is not None else None
        self._log_path = log_path
        self._cwd = cwd
        self._extra_args = list(extra_args)
        self._start_timeout = start_timeout
        self._stop_grace = stop_grace
        self._use_requested_port = use_requested_port
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._log_file: IO[str] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process is not None else None

    def output_tail(self) -> str:
        return "".join(self._tail)

    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def command_line(self, command: str | Sequence[str]) -> list[str]:
        words = command.split() if isinstance(command, str) else [str(w) for w in command]
        parse_command(words)
        if not self._use_requested_port and not self._host.startswith("unix:"):
            # A local process needs no fixed port (a container does): a free
            # one, so that apps started side by side never collide on 50006.
            words[1] = "0"
        return [
            *self._argv_prefix, "--work-dir", str(self._work_dir), "--host", self._host,
            *self._extra_args, *words,
        ]

    async def start(self, command: str, port: int) -> tuple[str, int]:
        if self.running():
            raise RuntimeError("this service already runs an app process")
        argv = self.command_line(command)
        self._tail.clear()
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self._log_path.open("a", encoding="utf-8", errors="replace")
        self._process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            env=self._env,
            cwd=self._cwd,
        )
        announced: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.ensure_future(self._read_output(self._process, announced))
        try:
            port = await asyncio.wait_for(asyncio.shield(announced), self._start_timeout)
        except TimeoutError:
            await self._kill_group()
            raise Unavailable(
                f"{' '.join(argv)} did not start listening within {self._start_timeout:g} s;"
                f" its output:\n{self.output_tail()}"
            ) from None
        except Unavailable:
            await self._kill_group()
            raise
        return self._host, port

    async def _read_output(
        self, process: asyncio.subprocess.Process, announced: "asyncio.Future[int]"
    ) -> None:
        # In chunks, not lines: an app may write a very long line (a progress
        # bar redrawn with \r) and must never block on a pipe nobody reads.
        assert process.stdout is not None
        pending = b""
        while chunk := await process.stdout.read(_CHUNK):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                self._take_line(raw.decode("utf-8", "replace") + "\n", announced)
            if len(pending) > _MAX_LINE:
                self._take_line(pending[:_MAX_LINE].decode("utf-8", "replace") + " [...]\n",
                                announced)
                pending = b""
        if pending:
            self._take_line(pending.decode("utf-8", "replace") + "\n", announced)
        await process.wait()
        if not announced.done():
            announced.set_exception(
                Unavailable(
                    f"the app exited with code {process.returncode} before it served;"
                    f" its output:\n{self.output_tail()}"
                )
            )

    def _take_line(self, line: str, announced: "asyncio.Future[int]") -> None:
        if not announced.done():
            info = parse_announce_line(line.rstrip("\n"))
            if info is not None and isinstance(info.get("port"), int):
                announced.set_result(int(info["port"]))  # type: ignore[call-overload]
                return
        self._tail.append(line)
        if self._log_file is not None:
            self._log_file.write(line)
            self._log_file.flush()

    async def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after the grace period."""
        process = self._process
        if process is None or process.returncode is not None:
            await self._kill_group()
            return
        self._signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(self._exited(process), self._stop_grace)
        except TimeoutError:
            logger.warning("app pid %d ignored SIGTERM for %.1f s: killing it",
                           process.pid, self._stop_grace)
        await self._kill_group()

    async def wait_until_shutdown_complete(self) -> None:
        process = self._process
        if process is None:
            return
        await self._exited(process)
        await self._kill_group()

    @staticmethod
    async def _exited(process: asyncio.subprocess.Process) -> None:
        # Not process.wait(): it also waits for the pipes, which a child of
        # the app may hold open forever.
        await wait_for_exit(process.pid, lambda: process.returncode is not None)

    def _signal_group(self, sig: int) -> None:
        if self._process is not None:
            signal_group(self._process.pid, sig)

    async def _kill_group(self) -> None:
        """Kill whatever is left of the group, reap the app, close the log."""
        process = self._process
        if process is None:
            return
        self._signal_group(signal.SIGKILL)
        await self._exited(process)
        if self._reader is not None:
            # The pipe closes once every holder of it in the group is dead;
            # one that left the group may keep it open: stop reading then.
            try:
                await asyncio.wait_for(self._reader, 5.0)
            except Exception:
                logger.warning("the output of app pid %d stays open: not read further",
                               process.pid)
            self._reader = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(process.wait(), 1.0)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


__all__ = ["LocalProcessService"]
