"""Child processes that leave nothing behind: one process group per run.

A run's process is started in a new session (its own process group), so
whatever it spawns (a renderer, a shell pipeline) can be stopped with it: on
cancellation the group gets SIGTERM, then SIGKILL after a grace period, and
the function returns only after the leader has been reaped. Stragglers left
in the group after a normal exit are killed too.

A group outlives a node that crashes (it is in a session of its own), so a
run can record its group in a file (`group_file`), with the leader's start
time; the node's restart recovery kills what such a file names, after
checking that the id was not reused by an unrelated process since.
"""

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import psutil  # type: ignore[import-untyped, unused-ignore]

from golem_task_api.node.compute.runner import ProgressReporter, RunJob, RunResult
from golem_task_api.process_group import signal_group, stop_process_group

logger = logging.getLogger(__name__)

DEFAULT_TERM_GRACE = 2.0
# Where a run's process group is recorded, in the execution's workdir.
GROUP_FILE = ".process-group"

_Stream = int | IO[Any] | None


async def run_in_process_group(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    stdin: _Stream = asyncio.subprocess.DEVNULL,
    stdout: _Stream = asyncio.subprocess.DEVNULL,
    stderr: _Stream = asyncio.subprocess.DEVNULL,
    term_grace: float = DEFAULT_TERM_GRACE,
    started: Callable[[asyncio.subprocess.Process], None] | None = None,
    group_file: Path | None = None,
) -> int:
    """Run `argv` in its own process group; its exit code.

    `started` is called with the process once it exists (to feed its stdin,
    say). Cancelling the caller stops the whole group before re-raising.
    With `group_file`, the group is recorded there while it runs.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )
    try:
        if group_file is not None:
            record_process_group(group_file, proc.pid)
        if started is not None:
            started(proc)
        return await proc.wait()
    except BaseException:
        await stop_process_group(proc, term_grace)
        raise
    finally:
        signal_group(proc.pid, signal.SIGKILL)
        if group_file is not None:
            _forget_group(group_file)


def record_process_group(path: Path, pgid: int) -> None:
    """Write `pgid` and its leader's start time to `path`."""
    try:
        created = psutil.Process(pgid).create_time()
    except psutil.Error:
        return  # already gone: nothing to record
    path.write_text(json.dumps({"pgid": pgid, "created": created}))


def _forget_group(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def kill_recorded_group(path: Path) -> bool:
    """SIGKILL the group recorded in `path` if its leader is still the same process.

    Returns whether a group was killed. Quick and synchronous: used by the
    node's restart recovery, before it removes a dead run's workdir.
    """
    try:
        record = json.loads(path.read_text())
        pgid, created = int(record["pgid"]), float(record["created"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    try:
        if psutil.Process(pgid).create_time() != created:
            return False  # the id now belongs to another process
    except psutil.Error:
        # The leader is gone; members may live on, but without the leader
        # the id cannot be checked against reuse, so they are left alone.
        return False
    signal_group(pgid, signal.SIGKILL)
    logger.warning("killed process group %d left running by a previous node process", pgid)
    return True


class CommandRunner:
    """An `ExecutionRunner` that runs a command in the execution's workdir.

    `command(job)` gives the argv; the run succeeds when the command exits
    with 0 and leaves `output_name` in the workdir. Its stdout and stderr go
    to `stdout.log` and `stderr.log` there, the tail of which explains a
    failure.
    """

    def __init__(
        self,
        command: Callable[[RunJob], Sequence[str]],
        *,
        output_name: str = "result",
        env: Mapping[str, str] | None = None,
        term_grace: float = DEFAULT_TERM_GRACE,
    ) -> None:
        self._command = command
        self._output_name = output_name
        self._env = env
        self._term_grace = term_grace

    async def run(self, job: RunJob, report_progress: ProgressReporter) -> RunResult:
        env = dict(os.environ if self._env is None else self._env)
        if job.allocation.gpu_ids:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, job.allocation.gpu_ids))
        with (
            open(job.workdir / "stdout.log", "wb") as out,  # noqa: ASYNC230 - opening is instant
            open(job.workdir / "stderr.log", "wb") as err,  # noqa: ASYNC230
        ):
            code = await run_in_process_group(
                self._command(job),
                cwd=job.workdir,
                env=env,
                stdout=out,
                stderr=err,
                term_grace=self._term_grace,
                group_file=job.workdir / GROUP_FILE,
            )
        if code != 0:
            return RunResult.failed(f"the command exited with {code}: {self._stderr_tail(job)}")
        output = job.workdir / self._output_name
        if not output.exists():
            return RunResult.failed(f"the command did not write {self._output_name}")
        return RunResult.succeeded(output)

    @staticmethod
    def _stderr_tail(job: RunJob, limit: int = 400) -> str:
        try:
            data = (job.workdir / "stderr.log").read_bytes()[-limit:]
        except OSError:
            return "(no stderr)"
        return data.decode("utf-8", "replace").strip() or "(no stderr)"


__all__ = [
    "DEFAULT_TERM_GRACE",
    "GROUP_FILE",
    "CommandRunner",
    "kill_recorded_group",
    "record_process_group",
    "run_in_process_group",
]
