"""What the engine needs from a provider, and from the market that hands them out.

A provider is one place where scripts run: a local compute node with its own
work dir for the task, a sandbox, a remote node. Paths on the provider's side
(`dst` of an upload, `src` of a download, the result of `compute`) are
relative to its work dir; paths on the requestor's side are ordinary local
paths.

The contract every implementation keeps:

- Each method is a coroutine that does its work before it returns, and raises
  an exception (any kind; the engine wraps it) when it cannot.
- **Cancellation** is asyncio's: cancelling the task that awaits a method
  must stop the work it started (kill the process group, abort the transfer,
  cancel the compute on the node) and must let `CancelledError` propagate
  only once the work has really stopped. Batch timeouts, job timeouts and
  job shutdown all arrive this way. A partly written destination file must
  not be left under its final name.
- `on_progress` is cheap, never blocks and never raises; call it as often as
  is useful (every chunk, every line): the engine throttles.
- Transfers report `Progress(done, total, unit="Bytes")`: 0/total first,
  total/total last.
"""

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from golem_task_api.node.workgen.progress import ProgressCallback


@dataclass(frozen=True)
class RunResult:
    """How a process ended; `stdout`/`stderr` are the output's last bytes, up to a limit."""

    args: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes


class Provider(Protocol):
    """One provider, as the engine sees it. `id` is what retries exclude."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    async def upload_file(self, src: Path, dst: str, on_progress: ProgressCallback) -> int:
        """Copy the local file `src` to `dst` in the work dir; the number of bytes."""
        ...

    async def upload_bytes(self, data: bytes, dst: str, on_progress: ProgressCallback) -> int:
        ...

    async def download_file(self, src: str, dst: Path, on_progress: ProgressCallback) -> int:
        """Copy `src` from the work dir to the local path `dst`; the number of bytes."""
        ...

    async def download_bytes(self, src: str, limit: int, on_progress: ProgressCallback) -> bytes:
        """The content of `src`; raises if it is longer than `limit` bytes."""
        ...

    async def run(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None,
        on_progress: ProgressCallback,
    ) -> RunResult:
        """Run a command in the provider's environment, in its work dir.

        A non-zero exit is a result, not an exception (the `run` command
        decides). Cancellation kills it and whatever it started.
        """
        ...

    async def compute(
        self, subtask_id: str, params: Mapping[str, Any], on_progress: ProgressCallback
    ) -> str:
        """Run one Task API Compute for the provider's task; the result's path in the work dir.

        Forward the app's progress unchanged (`Progress` has the fields of
        progress.md's ProgressEvent).
        """
        ...


class Market(Protocol):
    """Where `execute_tasks` gets its providers.

    - `acquire` returns a provider whose id is not in `exclude`, waiting
      while every such provider is busy. It raises `NoProviderAvailableError`
      when none can ever be had (all excluded, all known bad, market closed),
      so that a task which failed everywhere ends instead of waiting forever.
      Cancelling a waiting `acquire` must leave nothing leased.
    - `release` gives a provider back when its worker ended; `error` is why
      the worker crashed (None if it ended by itself), for the market to
      remember bad providers. It must return promptly.
    """

    async def acquire(self, exclude: Set[str]) -> Provider: ...

    async def release(self, provider: Provider, error: BaseException | None) -> None: ...


__all__ = ["Market", "Provider", "RunResult"]
