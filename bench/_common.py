"""Helpers shared by the benchmarks: child processes, statistics, tables.

Not a benchmark itself (its name starts with `_`, so `python -m bench`
skips it).
"""

import asyncio
import contextlib
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from golem_task_api.entrypoint import parse_announce_line

if TYPE_CHECKING:
    import grpc

REPO_ROOT = Path(__file__).resolve().parent.parent
# The line our entrypoint prints when it listens; the bench's own servers
# print the same, so one launcher serves both.
START_TIMEOUT = 30.0


def child_env(*, cached_bytecode: bool = True) -> dict[str, str]:
    """The environment of every process a benchmark starts.

    With `cached_bytecode`, children read and write .pyc files in a
    bench-owned cache outside the checkout (PYTHONPYCACHEPREFIX) even where
    PYTHONDONTWRITEBYTECODE is set, as in this sandbox and some CI: without
    it every start compiles our modules from source (grpc's come compiled
    from the wheel), a cost no installed app pays. The first, unmeasured
    round of each benchmark fills the cache.
    """
    env = dict(os.environ)
    if cached_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "golem-task-api-bench-pyc")
    return env


def parse_announce(line: str) -> int | None:
    """The port of an announce line, or None for any other line."""
    info = parse_announce_line(line)
    port = info.get("port") if info is not None else None
    return port if isinstance(port, int) else None


@dataclass
class Child:
    """A server process started by a benchmark, in a session of its own."""

    process: asyncio.subprocess.Process
    port: int
    log: IO[bytes]

    async def stop(self, grace: float = 5.0) -> int:
        """SIGTERM the group, SIGKILL it after `grace`; the exit code."""
        if self.process.returncode is None:
            kill_group(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), grace)
        kill_group(self.process.pid, signal.SIGKILL)
        code = await self.process.wait()
        self.log.close()
        return code

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")


def kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def spawn_announced(
    argv: Sequence[str], log: IO[bytes], *, cwd: Path = REPO_ROOT,
    env: dict[str, str] | None = None,
) -> tuple[asyncio.subprocess.Process, int]:
    """Start `argv` (new session, stderr into `log`); wait for its announce line.

    On any failure (timeout, early exit, Ctrl-C) the process group is killed.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        cwd=cwd,
        env=child_env() if env is None else env,
        start_new_session=True,
    )
    try:
        port = await asyncio.wait_for(_read_announce(process), START_TIMEOUT)
    except BaseException:
        kill_group(process.pid, signal.SIGKILL)
        await process.wait()
        raise
    return process, port


async def _read_announce(process: asyncio.subprocess.Process) -> int:
    assert process.stdout is not None
    async for raw in process.stdout:
        port = parse_announce(raw.decode("utf-8", "replace").rstrip("\n"))
        if port is not None:
            return port
    code = await process.wait()
    raise RuntimeError(f"server exited with code {code} before it announced a port")


@contextlib.asynccontextmanager
async def running_server(argv: Sequence[str], log: IO[bytes]) -> AsyncIterator[Child]:
    """A long-running server process for the length of the block."""
    process, port = await spawn_announced(argv, log)
    child = Child(process, port, log)
    try:
        yield child
    finally:
        await asyncio.shield(child.stop())


def children_cpu() -> float:
    """CPU seconds (user + system) of every reaped child of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class OneShot:
    """A one-shot server started by `one_shot_server`; times from its spawn."""

    process: asyncio.subprocess.Process
    channel: "grpc.aio.Channel"
    log: IO[bytes]
    t0: float  # perf_counter() at the spawn
    cpu0: float  # children_cpu() before the spawn
    announced: float  # seconds from the spawn to the announced port
    serving: float  # seconds from the spawn to SERVING


@contextlib.asynccontextmanager
async def one_shot_server(
    argv: Sequence[str], env: dict[str, str], work_dir: Path
) -> AsyncIterator[OneShot]:
    """Spawn a one-shot server, wait for SERVING, give a channel to it. After
    the block the process is killed if it still runs; on an error the tail of
    its log (work_dir/server.log) goes to stderr."""
    import grpc  # noqa: PLC0415 (grpc on use only)

    log = (work_dir / "server.log").open("w+b")
    try:
        cpu0 = children_cpu()
        t0 = time.perf_counter()
        process, port = await spawn_announced(argv, log, env=env)
        announced = time.perf_counter() - t0
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await wait_serving(channel)
                yield OneShot(process, channel, log, t0, cpu0, announced,
                              time.perf_counter() - t0)
        finally:
            if process.returncode is None:
                kill_group(process.pid, signal.SIGKILL)
                await process.wait()
    except BaseException:
        log.seek(0)
        sys.stderr.write(log.read().decode("utf-8", "replace")[-3000:])
        raise
    finally:
        log.close()


async def wait_serving(channel: "grpc.aio.Channel", timeout: float = 10.0) -> None:
    """Health checks on `channel` until the server answers SERVING for \"\"."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415 (grpc on use only)

    health = health_pb2_grpc.HealthStub(channel)
    while True:
        reply = await health.Check(
            health_pb2.HealthCheckRequest(service=""), timeout=timeout, wait_for_ready=True
        )
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            return
        await asyncio.sleep(0.001)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


# --- statistics -------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    data = sorted(values)
    if not data:
        raise ValueError("no values")
    pos = (len(data) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


@dataclass
class Summary:
    median: float
    p10: float
    p90: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Summary":
        return cls(
            statistics.median(values), percentile(values, 10), percentile(values, 90),
            min(values), max(values), len(values),
        )

    def spread_pct(self) -> float:
        """(p90 - p10) / median, in percent."""
        return 100.0 * (self.p90 - self.p10) / self.median if self.median else 0.0


def paired_ratios(ours: Sequence[float], base: Sequence[float]) -> list[float]:
    """ours[i] / base[i]: each pair was measured back to back (ABAB...)."""
    return [a / b for a, b in zip(ours, base, strict=True)]


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = str(cells[0]).ljust(widths[0])
        rest = (str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
    sys.stdout.flush()
