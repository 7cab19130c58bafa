"""The commands a script can hold; each is awaitable for its own result.

A command's result exists once the script that holds it has run: awaiting
it before then waits, awaiting it after gives the value, or raises what
stopped the command (`CommandExecutionError`, `BatchTimeoutError`, or
`CommandNotExecutedError` for the commands after a failed one), or
`CancelledError` when the job was shut down. The engine settles every
command of every script it was given, so no await hangs.
"""

import asyncio
import json
import os
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from golem_task_api.node.workgen.errors import ProcessFailedError
from golem_task_api.node.workgen.progress import ProgressArgs, ProgressCallback
from golem_task_api.node.workgen.provider import Provider, RunResult

T = TypeVar("T")

# download_bytes/download_json read into memory: a bound keeps a provider
# from filling the requestor's memory (yapapi's default was 1 MiB).
DOWNLOAD_LIMIT = 64 * 1024 * 1024


class Command(Generic[T]):
    """One step of a script."""

    name: ClassVar[str]

    def __init__(self, progress: ProgressArgs | None) -> None:
        self.progress = progress
        self.index: int | None = None
        self._future: asyncio.Future[T] | None = None

    def describe(self) -> str:
        """For events and error messages, e.g. `run('make', 'all')`."""
        return f"{self.name}()"

    def __repr__(self) -> str:
        return f"<{self.describe()} #{self.index}>"

    async def execute(self, provider: Provider, on_progress: ProgressCallback) -> T:
        raise NotImplementedError

    def return_code(self, value: T) -> int:
        return 0

    # --- the awaitable result ------------------------------------------------

    def __await__(self) -> Generator[Any, None, T]:
        return self._get_future().__await__()

    def done(self) -> bool:
        return self._future is not None and self._future.done()

    def result(self) -> T:
        """The value, or raises; `asyncio.InvalidStateError` if the command has not ended."""
        if self._future is None:
            raise asyncio.InvalidStateError(f"{self.describe()} has not run yet")
        return self._future.result()

    def exception(self) -> BaseException | None:
        if self._future is None:
            raise asyncio.InvalidStateError(f"{self.describe()} has not run yet")
        return self._future.exception()

    def _get_future(self) -> "asyncio.Future[T]":
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
        return self._future

    def _set_result(self, value: T) -> None:
        future = self._get_future()
        if not future.done():
            future.set_result(value)

    def _set_exception(self, error: BaseException) -> None:
        future = self._get_future()
        if not future.done():
            future.set_exception(error)
            # The same error reaches the worker at its yield, so one that is
            # never awaited here is not lost: no "never retrieved" warning.
            future.exception()

    def _cancel(self) -> None:
        self._get_future().cancel()


class SendFile(Command[int]):
    """Copy a local file to the provider's work dir; the result is the number of bytes."""

    name = "send_file"

    def __init__(self, src: str | os.PathLike[str], dst: str, progress: ProgressArgs | None):
        super().__init__(progress)
        self.src = Path(src)
        self.dst = dst

    def describe(self) -> str:
        return f"send_file({str(self.src)!r}, {self.dst!r})"

    async def execute(self, provider: Provider, on_progress: ProgressCallback) -> int:
        return await provider.upload_file(self.src, self.dst, on_progress)


class SendBytes(Command[int]):
    name = "send_bytes"

    def __init__(self, data: bytes, dst: str, progress: ProgressArgs | None):
        super().__init__(progress)
        self.data = bytes(data)
        self.dst = dst

    def describe(self) -> str:
        return f"{self.name}({len(self.data)} bytes, {self.dst!r})"

    async def execute(self, provider: Provider, on_progress: ProgressCallback) -> int:
        return await provider.upload_bytes(self.data, self.dst, on_progress)


class SendJson(SendBytes):
    name = "send_json"

    def __init__(self, obj: Any, dst: str, progress: ProgressArgs | None):
        # Encoded now, so an object that is not JSON fails where it was
        # added, not later inside the engine.
        super().__init__(json.dumps(obj, allow_nan=False).encode(), dst, progress)


class Run(Command[RunResult]):
    """A command in the provider's environment; with `check`, a non-zero exit fails it."""

    name = "run"

    def __init__(
        self,
        args: tuple[str, ...],
        env: Mapping[str, str] | None,
        check: bool,
        progress: ProgressArgs | None,
    ):
        if not args:
            raise ValueError("run needs a program to run")
        super().__init__(progress)
        self.args = tuple(str(arg) for arg in args)
        self.env = dict(env) if env is not None else None
        self.check = check

    def describe(self) -> str:
        return f"run({', '.join(map(repr, self.args))})"

    async def execute(self, provider: Provider, on_progress: ProgressCallback) -> RunResult:
        result = await provider.run(self.args, self.env, on_progress)
        if self.check and result.returncode != 0:
            raise ProcessFailedError(self.args, result.returncode, result.stderr)
        return result

    def return_code(self, value: RunResult) -> int:
        return value.returncode


class Compute(Command[str]):
    """One Task API Compute; the result is the output's path in the provider's work dir."""

    name = "compute"

    def __init__(self, subtask_id: str, params: Mapping[str, Any], progress: ProgressArgs | None):
        super().__init__(progress)
        self.subtask_id = subtask_id
        self.params = dict(params)

    def describe(self) -> str:
        return f"compute({self.subtask_id!r})"

    async def execute(self, provider: Provider, on_progress: ProgressCallback) -> str:
        return await provider.compute(self.subtask_id, self.params, on_progress)


class DownloadFile(Command[Path]):
    """Copy a file from the provider's work dir; the result is the local path."""

    name = "download_file"

    def __init__(self, src: str, dst: str | os.PathLike[str], progress: ProgressArgs | None):
        super().__init__(progress)
        self.src = src
        self.dst = Path(dst)

    def describe(self) -> str:
        return f"download_file({self.src!r}, {str(self.dst)!r})"

    async def execute(self, provider: Provider, on_progress: ProgressCallback) -> Path:
        await provider.download_file(self.src, self.dst, on_progress)
        return self.dst


class DownloadBytes(Command[bytes]):
    name = "download_bytes"

    def __init__(self, src: str, limit: int, progress: ProgressArgs | None):
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        super().__init__(progress)
        self.src = src
        self.limit = limit

    def describe(self) -> str:
        return f"{self.name}({self.src!r})"

    async def execute(self, provider: Provider, on_progress: ProgressCallback) -> bytes:
        return await provider.download_bytes(self.src, self.limit, on_progress)


class DownloadJson(Command[Any]):
    name = "download_json"

    def __init__(self, src: str, limit: int, progress: ProgressArgs | None):
        super().__init__(progress)
        self._bytes = DownloadBytes(src, limit, progress)
        self.src = src

    def describe(self) -> str:
        return f"{self.name}({self.src!r})"

    async def execute(self, provider: Provider, on_progress: ProgressCallback) -> Any:
        return json.loads(await self._bytes.execute(provider, on_progress))


__all__ = [
    "DOWNLOAD_LIMIT",
    "Command",
    "Compute",
    "DownloadBytes",
    "DownloadFile",
    "DownloadJson",
    "Run",
    "SendBytes",
    "SendFile",
    "SendJson",
]
