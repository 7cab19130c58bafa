"""Runners, listeners and builders shared by the compute node tests.

Every runner here runs real child processes through the package's
`run_in_process_group`, so cancellation and timeouts kill real process
groups. Waits are on events (or polls with a deadline), never plain sleeps.
"""

import asyncio
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from golem_task_api.node.compute.callbacks import Callback, ComputeEvent
from golem_task_api.node.compute.capacity import CapacityConfig, Resources
from golem_task_api.node.compute.config import ComputeNodeConfig
from golem_task_api.node.compute.execution import Execution
from golem_task_api.node.compute.offers import Offer, SubtaskWork
from golem_task_api.node.compute.process import run_in_process_group
from golem_task_api.node.compute.runner import ProgressReporter, RunJob, RunResult
from golem_task_api.node.compute.states import ExecutionState

# Bound of every wait that should end much sooner: a test fails, never hangs.
BOUND = 15.0
TEST_ENV = "test_env"

# Copies stdin to stdout; ignores SIGTERM once it said "ready" on stderr.
_STUBBORN_CAT = (
    "import signal, sys\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "sys.stderr.write('ready\\n'); sys.stderr.flush()\n"
    "sys.stdout.write(sys.stdin.read())\n"
)


def pid_alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def live_groups() -> set[int]:
    """The process groups that have a live (non-zombie) member, from one /proc scan."""
    groups = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] != "Z":
            groups.add(int(fields[2]))
    return groups


def group_alive(pgid: int) -> bool:
    return pgid in live_groups()


async def until(predicate: Callable[[], bool], timeout: float = BOUND) -> None:
    """Poll `predicate` until true, failing after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.005)


class GateRunner:
    """Each run is a real child that blocks until the test releases it.

    The child copies its stdin to the result file: `release(id)` closes its
    stdin, so it writes the result and exits. With `stubborn`, the child
    ignores SIGTERM, so stopping it takes the SIGKILL after `term_grace`.
    Tracks how much capacity is in use by live runs, to check the buffer
    against an independent count.
    """

    def __init__(
        self,
        *,
        stubborn: bool = False,
        term_grace: float = 2.0,
        total: Resources | None = None,
    ) -> None:
        self.stubborn = stubborn
        self.term_grace = term_grace
        self.total = total
        self.started: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.ended: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.order: list[str] = []
        self.in_use = Resources()
        self.peak = Resources()
        self.jobs: dict[str, RunJob] = {}

    async def run(self, job: RunJob, report_progress: ProgressReporter) -> RunResult:
        execution_id = job.execution.execution_id
        self.jobs[execution_id] = job
        self._enter(job)
        argv = [sys.executable, "-c", _STUBBORN_CAT] if self.stubborn else ["cat"]
        ready: list[asyncio.Task[Any]] = []

        def started(proc: asyncio.subprocess.Process) -> None:
            self.procs[execution_id] = proc
            self.order.append(execution_id)
            if self.stubborn:
                ready.append(asyncio.get_running_loop().create_task(self._ready(execution_id)))
            else:
                self.started[execution_id].set()

        try:
            with open(job.workdir / "result", "wb") as out:
                code = await run_in_process_group(
                    argv,
                    cwd=job.workdir,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=out,
                    stderr=asyncio.subprocess.PIPE if self.stubborn else asyncio.subprocess.DEVNULL,
                    started=started,
                    term_grace=self.term_grace,
                )
        finally:
            for task in ready:
                task.cancel()
            self._exit(job)
            self.ended[execution_id].set()
        if code != 0:
            return RunResult.failed(f"the child exited with {code}", retryable=True)
        return RunResult.succeeded("result")

    async def _ready(self, execution_id: str) -> None:
        proc = self.procs[execution_id]
        assert proc.stderr is not None
        await proc.stderr.readline()
        self.started[execution_id].set()

    def _enter(self, job: RunJob) -> None:
        self.in_use = self.in_use + job.allocation.resources
        self.peak = Resources(
            max(self.peak.cpu, self.in_use.cpu),
            max(self.peak.memory_mib, self.in_use.memory_mib),
            max(self.peak.gpu, self.in_use.gpu),
        )
        if self.total is not None:
            assert self.in_use.fits_in(self.total), f"{self.in_use} exceeds {self.total}"

    def _exit(self, job: RunJob) -> None:
        self.in_use = self.in_use - job.allocation.resources

    async def wait_started(self, execution_id: str) -> None:
        async with asyncio.timeout(BOUND):
            await self.started[execution_id].wait()

    async def wait_ended(self, execution_id: str) -> None:
        async with asyncio.timeout(BOUND):
            await self.ended[execution_id].wait()

    def release(self, execution_id: str, data: bytes = b"ok") -> None:
        stdin = self.procs[execution_id].stdin
        assert stdin is not None
        stdin.write(data)
        stdin.close()

    def running(self) -> list[str]:
        return [i for i in self.order if i in self.started and not self.ended[i].is_set()]


class Recorder(Callback):
    """Records every event, in order, and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[ComputeEvent] = []
        self._changed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _record(self, event: ComputeEvent) -> None:
        self.events.append(event)
        async with self._condition():
            self._condition().notify_all()

    on_run_complete = on_compute_failure = on_cancel_complete = _record
    on_publish_complete = on_progress = _record

    async def wait_for(self, predicate: Callable[[Any], bool], timeout: float = BOUND) -> Any:
        async with asyncio.timeout(timeout), self._condition():
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                await self._condition().wait()

    def of(self, execution_id: str, kind: type[Any] | None = None) -> list[Any]:
        return [
            e
            for e in self.events
            if _execution_id(e) == execution_id and (kind is None or isinstance(e, kind))
        ]


def _execution_id(event: ComputeEvent) -> str:
    return getattr(event, "execution_id", None) or event.execution.execution_id  # type: ignore[union-attr]


def make_config(
    work_dir: Path, total: Resources | None = None, **options: Any
) -> ComputeNodeConfig:
    capacity = CapacityConfig.of(total or Resources(cpu=4, memory_mib=4096))
    options.setdefault("environments", frozenset({TEST_ENV}))
    return ComputeNodeConfig(work_dir=work_dir, capacity=capacity, **options)


def make_offer(
    task_id: str = "task",
    *,
    cpu: int = 1,
    memory_mib: int = 256,
    gpu: int = 0,
    env_id: str = TEST_ENV,
    requestor_id: str = "requestor",
    **options: Any,
) -> Offer:
    return Offer(
        task_id=task_id,
        app_id="app",
        env_id=env_id,
        requestor_id=requestor_id,
        requirements=Resources(cpu, memory_mib, gpu),
        **options,
    )


def work(subtask_id: str = "subtask", **params: Any) -> SubtaskWork:
    return SubtaskWork(subtask_id, params)


def ids(events: Iterable[ComputeEvent]) -> list[str]:
    return [_execution_id(e) for e in events]


_seq = iter(range(1, 10**9))


def execution(
    execution_id: str, cpu: int = 1, memory_mib: int = 100, seq: int | None = None
) -> Execution:
    """A BidAccepted execution for the buffer alone (no store), in call order."""
    return Execution(
        execution_id=execution_id,
        offer=make_offer(cpu=cpu, memory_mib=memory_mib),
        usage=Resources(cpu, memory_mib),
        state=ExecutionState.BID_ACCEPTED,
        version=2,
        created_at=0.0,
        updated_at=0.0,
        seq=next(_seq) if seq is None else seq,
    )
