"""A `Provider` that is a directory on this machine.

Files move by copying (in a thread, a chunk at a time, reporting Bytes), `run`
is a subprocess in the directory, `compute` is whatever async callable the
node injects (the task manager's compute node; tests pass a coroutine).
"""

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from golem_task_api.node.workgen.progress import Progress, ProgressCallback
from golem_task_api.node.workgen.provider import RunResult
from golem_task_api.process_group import signal_group, stop_process_group
from golem_task_api.validation import resolve_inside

logger = logging.getLogger(__name__)

T = TypeVar("T")

ComputeFunction = Callable[[str, Mapping[str, Any], ProgressCallback], Awaitable[str]]

CHUNK_SIZE = 256 * 1024
OUTPUT_LIMIT = 1024 * 1024
KILL_GRACE = 3.0

_Reporter = Callable[[Progress], None]


class _Stopped(Exception):
    """Raised in a copy thread when its coroutine was cancelled."""


class LocalDirProvider:
    """A provider whose work dir is `work_dir` (created if missing).

    `env` is added to the environment of every `run`. `output_limit` bounds
    how much of a process's stdout and stderr is kept (the last bytes).
    `kill_grace` is how long a cancelled process gets between SIGTERM and
    SIGKILL; its whole process group gets both.
    """

    def __init__(
        self,
        provider_id: str,
        work_dir: str | os.PathLike[str],
        *,
        name: str | None = None,
        compute: ComputeFunction | None = None,
        env: Mapping[str, str] | None = None,
        chunk_size: int = CHUNK_SIZE,
        output_limit: int = OUTPUT_LIMIT,
        kill_grace: float = KILL_GRACE,
    ) -> None:
        if chunk_size < 1 or output_limit < 0 or kill_grace < 0:
            raise ValueError("chunk_size must be >= 1, output_limit and kill_grace >= 0")
        self._id = provider_id
        self._name = name if name is not None else provider_id
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._compute = compute
        self._env = dict(env or {})
        self._chunk_size = chunk_size
        self._output_limit = output_limit
        self._kill_grace = kill_grace

    @property
    def id(self) -> str:
        return self._id

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"LocalDirProvider({self._id!r}, {str(self.work_dir)!r})"

    def path(self, relative: str) -> Path:
        """`relative` inside the work dir; refuses a path that leaves it."""
        return resolve_inside(self.work_dir, relative, "provider path")

    # --- transfers -----------------------------------------------------------

    async def upload_file(self, src: Path, dst: str, on_progress: ProgressCallback) -> int:
        target = self.path(dst)
        return await self._in_thread(
            lambda stop, report: _copy_file(Path(src), target, self._chunk_size, stop, report),
            on_progress,
        )

    async def upload_bytes(self, data: bytes, dst: str, on_progress: ProgressCallback) -> int:
        target = self.path(dst)
        return await self._in_thread(
            lambda stop, report: _write_bytes(data, target, self._chunk_size, stop, report),
            on_progress,
        )

    async def download_file(self, src: str, dst: Path, on_progress: ProgressCallback) -> int:
        source = self.path(src)
        return await self._in_thread(
            lambda stop, report: _copy_file(source, Path(dst), self._chunk_size, stop, report),
            on_progress,
        )

    async def download_bytes(self, src: str, limit: int, on_progress: ProgressCallback) -> bytes:
        source = self.path(src)
        return await self._in_thread(
            lambda stop, report: _read_bytes(source, limit, self._chunk_size, stop, report),
            on_progress,
        )

    async def _in_thread(
        self, work: Callable[[threading.Event, _Reporter], T], on_progress: ProgressCallback
    ) -> T:
        """`work` in a thread, its reports delivered on the loop.

        On cancellation the thread is told to stop at its next chunk and
        awaited, so the CancelledError propagates only once the copy has
        stopped and its temporary file is gone.
        """
        loop = asyncio.get_running_loop()
        stop = threading.Event()

        def report(value: Progress) -> None:
            loop.call_soon_threadsafe(on_progress, value)

        future = loop.run_in_executor(None, work, stop, report)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            stop.set()
            await asyncio.wait([future])
            if not future.cancelled():
                future.exception()  # the cancellation is what gets reported
            raise

    # --- processes -----------------------------------------------------------

    async def run(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None,
        on_progress: ProgressCallback,
    ) -> RunResult:
        argv = tuple(str(arg) for arg in args)
        if not argv:
            raise ValueError("run needs a program to run")
        # Output goes to anonymous files, not pipes: asyncio's wait() returns
        # only once every pipe is closed, so a background child holding one
        # would make a finished command look as if it still ran.
        with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=self.work_dir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env={**os.environ, **self._env, **(env or {})},
                start_new_session=True,
            )
            try:
                returncode = await process.wait()
            except BaseException:
                await stop_process_group(process, self._kill_grace)
                raise
            finally:
                # Whatever the command left running in its group goes with it.
                signal_group(process.pid, signal.SIGKILL)
            out, err = await asyncio.to_thread(
                lambda: (_tail(stdout, self._output_limit), _tail(stderr, self._output_limit))
            )
        return RunResult(argv, returncode, out, err)

    # --- compute -------------------------------------------------------------

    async def compute(
        self, subtask_id: str, params: Mapping[str, Any], on_progress: ProgressCallback
    ) -> str:
        if self._compute is None:
            raise NotImplementedError(f"provider {self._id!r} was given no compute function")
        return await self._compute(subtask_id, params, on_progress)


def _tail(file: IO[bytes], limit: int) -> bytes:
    size = file.seek(0, os.SEEK_END)
    file.seek(max(size - limit, 0))
    return file.read(limit)


# --- blocking helpers, run in a thread ----------------------------------------


@contextlib.contextmanager
def _atomic_file(dst: Path, mode_from: Path | None = None) -> Iterator[IO[bytes]]:
    """A file that appears as `dst` only once it is complete."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    temp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:12]}.part")
    try:
        with open(temp, "xb") as file:
            yield file
        if mode_from is not None:
            shutil.copymode(mode_from, temp)
        os.replace(temp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise


def _pump(
    read: Callable[[int], bytes],
    write: Callable[[bytes], object],
    total: int,
    chunk_size: int,
    stop: threading.Event,
    report: _Reporter,
    limit: int | None = None,
) -> int:
    done = 0
    report(Progress(0, total, unit="Bytes"))
    while True:
        data = read(chunk_size)
        if stop.is_set():
            raise _Stopped
        if not data:
            break
        done += len(data)
        if limit is not None and done > limit:
            raise ValueError(f"more than the limit of {limit} bytes")
        write(data)
        report(Progress(done, max(total, done), unit="Bytes"))
    if done != total:
        # The source changed size while it was read: end at what was copied.
        report(Progress(done, done, unit="Bytes"))
    return done


def _copy_file(
    src: Path, dst: Path, chunk_size: int, stop: threading.Event, report: _Reporter
) -> int:
    with open(src, "rb") as source, _atomic_file(dst, mode_from=src) as target:
        size = os.fstat(source.fileno()).st_size
        return _pump(source.read, target.write, size, chunk_size, stop, report)


def _write_bytes(
    data: bytes, dst: Path, chunk_size: int, stop: threading.Event, report: _Reporter
) -> int:
    view = memoryview(data)
    offset = 0

    def read(n: int) -> bytes:
        nonlocal offset
        piece = bytes(view[offset : offset + n])
        offset += len(piece)
        return piece

    with _atomic_file(dst) as target:
        return _pump(read, target.write, len(data), chunk_size, stop, report)


def _read_bytes(
    src: Path, limit: int, chunk_size: int, stop: threading.Event, report: _Reporter
) -> bytes:
    with open(src, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        if size > limit:
            raise ValueError(f"{src.name} is {size} bytes, over the limit of {limit} bytes")
        kept = bytearray()
        _pump(source.read, kept.extend, size, chunk_size, stop, report, limit=limit)
        return bytes(kept)


__all__ = ["CHUNK_SIZE", "KILL_GRACE", "OUTPUT_LIMIT", "ComputeFunction", "LocalDirProvider"]
