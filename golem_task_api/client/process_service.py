"""A `TaskApiService` over any way of starting one app process.

`LocalProcessService` spawns `python -m APP`; the node's environments start
theirs differently (a fork of a template, a sandbox whose outer process is
not the app, an attached `docker run`) but behave the same: the announce
line gives the port, `stop()` is SIGTERM to the app's process group and
SIGKILL after a grace period, and `wait_until_shutdown_complete()` waits for
the exit and then kills whatever is left of the group. A `Launched` hides
the difference; `ProcessService` is the one implementation of the rest.
"""

import abc
import asyncio
import collections
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Self

from golem_task_api.client.service import TaskApiService
from golem_task_api.entrypoint import parse_announce_line, parse_command
from golem_task_api.errors import Unavailable
from golem_task_api.process_group import ExitWatch, signal_group, wait_for_exit

logger = logging.getLogger("golem_task_api.client")

START_TIMEOUT = 30.0
STOP_GRACE = 5.0
# Kept in memory for error messages (the whole output goes to the log file).
_TAIL_LINES = 200
_CHUNK = 65536
# Longer lines are cut (in the tail and the log), never a reason to stop reading.
_MAX_LINE = 16384
# Bound on reading the rest of the output once the app has exited: a
# grandchild that escaped the group could hold the pipe open for ever.
_DRAIN_TIMEOUT = 5.0
# Bound on the transport's own wait once the output is read (or given up).
_REAP_TIMEOUT = 1.0


class Launched(abc.ABC):
    """One started app process, whatever started it."""

    pid: int
    output: asyncio.StreamReader

    @abc.abstractmethod
    def exited(self) -> bool:
        """Whether the process the service waits for has exited."""

    @abc.abstractmethod
    async def wait(self) -> None:
        """Until that process has exited."""

    @property
    @abc.abstractmethod
    def returncode(self) -> int | None:
        """Its exit code (negative: killed by that signal), once known."""

    @abc.abstractmethod
    def terminate(self) -> None:
        """SIGTERM the app's process group."""

    @abc.abstractmethod
    def kill(self) -> None:
        """SIGKILL everything the app started that is still in reach."""

    async def final_returncode(self) -> int | None:
        """The exit code once it has exited (bounded wait for it to be known)."""
        await self.wait()
        return self.returncode

    def close(self) -> None:  # noqa: B027 - most launches hold nothing to release
        """Release file descriptors; called once the process has exited."""

    async def release(self) -> None:
        """Release everything, also what takes a command (e.g. a container)."""
        self.close()


class SubprocessLaunch(Launched):
    """A child of ours in a session of its own, stdout+stderr on a pipe.

    `term_pgid` is the group that gets SIGTERM: the child's own, or (in a
    sandbox) the app's inside it, when the child is only a wrapper that
    would die at once instead of passing the signal on.
    """

    def __init__(self, process: asyncio.subprocess.Process, term_pgid: int | None = None) -> None:
        assert process.stdout is not None
        self.process = process
        self.pid = process.pid
        self.output = process.stdout
        self.term_pgid = process.pid if term_pgid is None else term_pgid
        try:
            self._watch: ExitWatch | None = ExitWatch.of_pid(process.pid)
        except (AttributeError, OSError):
            self._watch = None  # no pidfds (not Linux): wait() polls the return code

    @classmethod
    async def spawn(
        cls,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        pass_fds: Sequence[int] = (),
    ) -> Self:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            pass_fds=tuple(pass_fds),
        )
        return cls(process)

    def exited(self) -> bool:
        watch = self._watch
        return self.process.returncode is not None or (watch is not None and watch.exited.done())

    async def wait(self) -> None:
        # Not process.wait(): on 3.11 it also waits for the pipes, which a
        # child of the app may hold open for ever.
        watch = self._watch
        if watch is not None and (watch.pidfd is not None or watch.exited.done()):
            await asyncio.shield(watch.exited)
        elif watch is not None:
            # Reaped before we could look: its return code is recorded.
            await self.process.wait()
        else:
            await wait_for_exit(self.pid, lambda: self.process.returncode is not None)

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def terminate(self) -> None:
        signal_group(self.term_pgid, signal.SIGTERM)

    def kill(self) -> None:
        signal_group(self.term_pgid, signal.SIGKILL)
        if self.term_pgid != self.pid:
            signal_group(self.pid, signal.SIGKILL)

    async def final_returncode(self) -> int | None:
        await self.wait()
        if self.process.returncode is None:
            # The exit is seen (pidfd) a moment before the child watcher
            # records the code; Process.wait() has it once the pipe closes.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.process.wait()), _DRAIN_TIMEOUT)
        return self.process.returncode

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()

    async def release(self) -> None:
        self.close()
        await self.wait()
        # Lets the transport close; quick once the output is read, and
        # bounded when a process that left the group holds the pipe.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.process.wait()), _REAP_TIMEOUT)


class ProcessService(TaskApiService):
    """The app's server as a process from `_launch()`, its output captured.

    The output goes into `log_path` if given, and its last lines stay in
    memory (`output_tail()`) for error messages. A start that fails, times
    out or is cancelled leaves no process behind.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        host: str,
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
        start_timeout: float = START_TIMEOUT,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        self._launched: Launched | None = None
        self._released: Launched | None = None
        self._on_launch: Callable[[int], None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._log_file: IO[str] | None = None
        self._work_dir = Path(work_dir)
        self._host = host
        self._log_path = log_path
        self._extra_args = list(extra_args)
        self._start_timeout = start_timeout
        self._stop_grace = stop_grace

    @abc.abstractmethod
    async def _launch(self, args: list[str]) -> Launched:
        """Start the app with these arguments (after `python -m APP`)."""

    def _address(self, port: int) -> tuple[str, int]:
        return self._host, port

    def _describe(self, args: list[str]) -> str:
        """The command line, for error messages."""
        return " ".join(args)

    @property
    def pid(self) -> int | None:
        return self._launched.pid if self._launched is not None else None

    @property
    def returncode(self) -> int | None:
        return self._launched.returncode if self._launched is not None else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def output_tail(self) -> str:
        return "".join(self._tail)

    def running(self) -> bool:
        return self._launched is not None and not self._launched.exited()

    def app_args(self, command: str | Sequence[str]) -> list[str]:
        """`--work-dir DIR --host HOST [extra args] ROLE PORT`, checked."""
        words = command.split() if isinstance(command, str) else [str(w) for w in command]
        parse_command(words)
        return [
            "--work-dir", str(self._work_dir), "--host", self._host, *self._extra_args,
            *self._app_words(words),
        ]

    def _app_words(self, words: list[str]) -> list[str]:
        """`ROLE PORT ...` as the app gets them."""
        return words

    def on_launch(self, callback: Callable[[int], None] | None) -> None:
        """Call `callback(pid)` as soon as the app's process exists, before it
        serves: a node records the process group then, so that a crash during
        the app's start-up cannot leave an app behind that nobody knows of."""
        self._on_launch = callback

    async def start(self, command: str, port: int) -> tuple[str, int]:
        if self.running():
            raise RuntimeError("this service already runs an app process")
        args = self.app_args(command)
        self._tail.clear()
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self._log_path.open("a", encoding="utf-8", errors="replace")
        try:
            launched = self._launched = await self._launch(args)
        except BaseException:
            self._close_log()
            raise
        announced: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        # A start given up (timed out, cancelled) no longer reads what the
        # reader sets later: that is expected, not a lost error.
        announced.add_done_callback(_retrieve)
        self._reader = asyncio.ensure_future(self._read_output(launched, announced))
        try:
            if self._on_launch is not None:
                self._on_launch(launched.pid)
            port = await asyncio.wait_for(asyncio.shield(announced), self._start_timeout)
            return self._address(port)
        except TimeoutError:
            await self._kill_group()
            raise Unavailable(
                f"{self._describe(args)} did not start listening within"
                f" {self._start_timeout:g} s; its output:\n{self.output_tail()}"
            ) from None
        except BaseException:
            # Also a cancelled start: the process must not outlive it.
            await self._kill_group()
            raise

    async def _read_output(self, launched: Launched, announced: "asyncio.Future[int]") -> None:
        # In chunks, not lines: an app may write a very long line (a progress
        # bar redrawn with \r) and must never block on a pipe nobody reads.
        try:
            pending = b""
            while chunk := await launched.output.read(_CHUNK):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._take_line(raw.decode("utf-8", "replace") + "\n", announced)
                if len(pending) > _MAX_LINE:
                    cut = pending[:_MAX_LINE].decode("utf-8", "replace") + " [...]\n"
                    self._take_line(cut, announced)
                    pending = b""
            if pending:
                self._take_line(pending.decode("utf-8", "replace") + "\n", announced)
            await launched.wait()
        finally:
            if not announced.done():
                code = await launched.final_returncode()
                how = "exited" if code is None else f"exited with code {code}"
                announced.set_exception(Unavailable(
                    f"the app {how} before it served; its output:\n{self.output_tail()}"
                ))

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
        launched = self._launched
        if launched is None:
            return
        if not launched.exited():
            launched.terminate()
            try:
                await asyncio.wait_for(asyncio.shield(launched.wait()), self._stop_grace)
            except TimeoutError:
                logger.warning("app pid %d ignored SIGTERM for %.1f s: killing it",
                               launched.pid, self._stop_grace)
        await self._kill_group()

    async def wait_until_shutdown_complete(self) -> None:
        launched = self._launched
        if launched is None:
            return
        await launched.wait()
        await self._kill_group()

    async def _kill_group(self) -> None:
        """Kill whatever is left of the group, wait for the app, close the log."""
        launched = self._launched
        if launched is None or launched is self._released:
            return  # shutdown() after the app's own exit comes here twice
        launched.kill()
        await launched.wait()
        reader = self._reader
        if reader is not None:
            # The pipe closes once every holder of it in the group is dead;
            # one that left the group may keep it open: stop reading then.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(reader), _DRAIN_TIMEOUT)
            if not reader.done():
                logger.warning("the output of app pid %d stays open: not read further",
                               launched.pid)
                reader.cancel()
        await launched.release()
        self._released = launched
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _retrieve(future: "asyncio.Future[int]") -> None:
    if not future.cancelled():
        future.exception()


__all__ = [
    "START_TIMEOUT",
    "STOP_GRACE",
    "Launched",
    "ProcessService",
    "SubprocessLaunch",
]
