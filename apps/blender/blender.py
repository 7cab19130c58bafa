"""Running Blender: one `blender -b` process per job, a child of the handler.

Every job goes through `run_job`: the job is written as JSON next to where
its result will be, Blender runs `blender_job.py` on it (through
`golem_task_api.apputils.process`, so cancelling the awaiting call ends
Blender and anything it started), and the result JSON is read back.
"""

import collections
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from golem_task_api.apputils.process import STDOUT, Usage, run_cmd

# The Blender executable: $GOLEM_BLENDER, else `blender` on PATH.
BLENDER_ENV = "GOLEM_BLENDER"
# Render threads: $GOLEM_BLENDER_THREADS (e.g. a node's cores per slot),
# else as many as the machine has.
THREADS_ENV = "GOLEM_BLENDER_THREADS"
JOB_SCRIPT = Path(__file__).with_name("blender_job.py")
# Lines of Blender's output kept for error messages.
TAIL_LINES = 30

Job = dict[str, Any]
logger = logging.getLogger(__name__)


class BlenderError(RuntimeError):
    """Blender failed to run a job; the message says why, with its last output."""

    def __init__(self, message: str, *, input_error: bool = False) -> None:
        super().__init__(message)
        # True when the job's inputs (a scene, an image) were at fault.
        self.input_error = input_error


def blender_executable() -> str:
    configured = os.environ.get(BLENDER_ENV)
    found = configured or shutil.which("blender")
    if not found:
        raise BlenderError(
            "Blender is not installed: put `blender` on PATH"
            f" (Debian: apt-get install blender) or set {BLENDER_ENV}"
        )
    return found


def command(job_file: Path) -> list[str]:
    """The command line of a job: headless, factory settings (no user
    add-ons or preferences), no audio, the scene's own Python disabled, and
    an exit code of 1 when the job script fails."""
    return [
        blender_executable(), "-b", "--factory-startup", "-noaudio", "-Y",
        "--python-exit-code", "1", "--python", str(JOB_SCRIPT), "--", str(job_file),
    ]


@contextmanager
def scratch_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A fresh directory under `parent` for the block, removed after it."""
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def run_job(
    job: Job,
    job_dir: Path,
    *,
    on_line: Callable[[str], None] | None = None,
    usage: Usage | None = None,
) -> Job:
    """Run `job` with Blender; its files go to `job_dir`. Returns the result.

    `on_line` gets every line Blender prints (stdout and stderr, in order).
    Raises BlenderError when Blender or the job fails.
    """
    job_file = job_dir / "job.json"
    result_file = job_dir / "result.json"
    result_file.unlink(missing_ok=True)
    threads = os.environ.get(THREADS_ENV, "").strip()
    if threads and "threads" not in job:
        if not threads.isdigit() or not 1 <= int(threads) <= 1024:
            raise BlenderError(f"{THREADS_ENV} must be a number of threads, got {threads!r}")
        job = {**job, "threads": int(threads)}
    job_file.write_text(json.dumps({**job, "result": str(result_file)}), encoding="utf-8")
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

    def line(text: str) -> None:
        logger.debug("blender: %s", text)
        if text.strip():
            tail.append(text)
        if on_line is not None:
            on_line(text)

    result = await run_cmd(
        command(job_file), cwd=job_dir, stdout=line, stderr=STDOUT,
        env_update={"PYTHONNOUSERSITE": "1"}, monitor=usage is not None, usage=usage,
    )
    try:
        reply: Job = json.loads(result_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        reply = {}
    if "error" in reply:
        raise BlenderError(str(reply["error"]), input_error=reply.get("kind") == "input")
    if result.returncode != 0 or not reply:
        how = (
            f"was killed by signal {-result.returncode}" if result.returncode < 0
            else f"exited with code {result.returncode}"
        )
        last = " | ".join(list(tail)[-8:])
        raise BlenderError(f"Blender {how} while running {job['command']!r}: {last}")
    return reply
