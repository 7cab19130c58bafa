"""Running a command from a handler: `run_cmd`, and the original `exec_cmd` and
`exec_and_monitor_cmd` built on it.

The command runs in a session of its own. When the awaiting call is cancelled
(AbortSubtask, a client's Shutdown, Ctrl-C) or its timeout passes, the whole
tree gets SIGTERM, then SIGKILL after `terminate_timeout` seconds, and the
call returns only when nothing of it runs. When the command exits by itself,
whatever it left running in its process group is ended the same way.
"""

import os
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, Unpack

from golem_task_api.apputils.process.child import Child
from golem_task_api.apputils.process.output import (
    DEVNULL,
    STDOUT,
    Input,
    Output,
    PipeReader,
    plan_input,
    plan_output,
    same_file,
)
from golem_task_api.apputils.process.usage import Usage

DEFAULT_SAMPLE_INTERVAL = 0.5
DEFAULT_TERMINATE_TIMEOUT = 5.0

Command = Sequence["str | os.PathLike[str]"]


class RunOptions(TypedDict, total=False):
    """The keyword arguments of `run_cmd`, for `exec_cmd` and `exec_and_monitor_cmd`."""

    cwd: "str | os.PathLike[str] | None"
    env: Mapping[str, str] | None
    env_update: Mapping[str, str] | None
    stdin: Input
    stdout: Output
    stderr: Output
    timeout: float | None
    check: bool
    monitor: bool
    usage: Usage | None
    sample_interval: float
    terminate_timeout: float


@dataclass(frozen=True)
class CmdResult:
    args: tuple[str, ...]
    returncode: int  # negative: killed by that signal
    usage: Usage
    stdout: bytes | None = None  # only with stdout=CAPTURE
    stderr: bytes | None = None  # only with stderr=CAPTURE

    def check_returncode(self) -> None:
        """Raise subprocess.CalledProcessError if the command failed."""
        if self.returncode:
            raise subprocess.CalledProcessError(
                self.returncode, list(self.args), self.stdout, self.stderr
            )


class CmdTimeoutError(TimeoutError):
    """The command ran past its timeout and was stopped; `result` says how it ended."""

    def __init__(self, result: CmdResult, timeout: float) -> None:
        super().__init__(
            f"{shlex.join(result.args)} did not finish within {timeout:g} s and was stopped"
        )
        self.result = result
        self.timeout = timeout


def _arguments(cmd: Command) -> tuple[str, ...]:
    if isinstance(cmd, str | bytes):
        raise TypeError(f"give the command as a list of arguments, not one string: {cmd!r}")
    args = tuple(os.fspath(arg) for arg in cmd)
    if not args or not all(isinstance(arg, str) for arg in args):
        raise TypeError(f"a command is a non-empty list of str or paths, got {cmd!r}")
    return args


def _environment(
    env: Mapping[str, str] | None, env_update: Mapping[str, str] | None
) -> dict[str, str] | None:
    if env is None and env_update is None:
        return None
    merged = dict(os.environ if env is None else env)
    merged.update(env_update or {})
    return merged


async def run_cmd(
    cmd: Command,
    *,
    cwd: "str | os.PathLike[str] | None" = None,
    env: Mapping[str, str] | None = None,
    env_update: Mapping[str, str] | None = None,
    stdin: Input = DEVNULL,
    stdout: Output = None,
    stderr: Output = None,
    timeout: float | None = None,
    check: bool = False,
    monitor: bool = True,
    usage: Usage | None = None,
    sample_interval: float = DEFAULT_SAMPLE_INTERVAL,
    terminate_timeout: float = DEFAULT_TERMINATE_TIMEOUT,
) -> CmdResult:
    """Run `cmd` (a list of arguments) to its end and say how it went.

    - `env` replaces the environment; `env_update` is merged on top of it
      (or of the app's own environment).
    - `stdin` defaults to DEVNULL: a command waiting for input that never
      comes would hang the app. `stdout`/`stderr`: see
      `apputils.process.output` (inherit, DEVNULL, CAPTURE, STDOUT, a path, a
      file, a logger, a function called per line).
    - `timeout`: seconds; past it the tree is stopped and CmdTimeoutError
      raised, with the result attached.
    - `check`: raise subprocess.CalledProcessError on a non-zero exit.
    - `monitor`: sample the whole tree's memory and CPU every
      `sample_interval` s (faster at first) into `usage`, which is updated
      live when given; without it, usage holds what the kernel reports for
      the command and the children it waited for.
    """
    args = _arguments(cmd)
    program = Path(args[0]).name
    usage = Usage() if usage is None else usage
    if stderr is not None and same_file(stdout, stderr):
        stderr = STDOUT
    with ExitStack() as files:
        stdin_arg = plan_input(stdin, files)
        out_arg, out_reader = plan_output(stdout, stream="stdout", program=program, files=files)
        err_arg, err_reader = plan_output(stderr, stream="stderr", program=program, files=files)
        started = time.monotonic()
        # Popen, not asyncio's subprocess: the process must be reaped by us
        # (see Child). Starting it does not wait for the program.
        proc = subprocess.Popen(  # noqa: ASYNC220
            args,
            stdin=stdin_arg,
            stdout=out_arg,
            stderr=err_arg,
            cwd=cwd,
            env=_environment(env, env_update),
            start_new_session=True,
        )
        try:
            child = Child(proc, sample_interval if monitor else None, usage)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        try:
            for pipe, reader in ((proc.stdout, out_reader), (proc.stderr, err_reader)):
                if reader is not None:
                    await child.attach(pipe, reader)
            exited = await child.wait(timeout)
            if not exited:
                await child.terminate(terminate_timeout)
            returncode, rusage = await child.finish(terminate_timeout)
        except BaseException:
            await child.abort(terminate_timeout)
            raise
    usage.real_time = time.monotonic() - started
    usage.add_rusage(rusage)
    result = CmdResult(args, returncode, usage, _captured(out_reader), _captured(err_reader))
    if not exited:
        assert timeout is not None
        raise CmdTimeoutError(result, timeout)
    if check:
        result.check_returncode()
    return result


def _captured(reader: PipeReader | None) -> bytes | None:
    return None if reader is None else reader.captured()


async def exec_cmd(cmd: Command, **options: Unpack[RunOptions]) -> int:
    """Run `cmd` and return its exit code (options: those of `run_cmd`; no sampling)."""
    options.setdefault("monitor", False)
    result = await run_cmd(cmd, **options)
    return result.returncode


async def exec_and_monitor_cmd(
    cmd: Command, **options: Unpack[RunOptions]
) -> tuple[int, Usage]:
    """Run `cmd`; return its exit code and the usage of its whole process tree."""
    result = await run_cmd(cmd, **options)
    return result.returncode, result.usage


__all__ = [
    "DEFAULT_SAMPLE_INTERVAL",
    "DEFAULT_TERMINATE_TIMEOUT",
    "CmdResult",
    "CmdTimeoutError",
    "RunOptions",
    "exec_and_monitor_cmd",
    "exec_cmd",
    "run_cmd",
]
