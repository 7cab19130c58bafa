"""The executor buffer, deterministically: order, backfill, starvation, stopping.

Runs are real child processes (`GateRunner`) that end when the test says so;
the hooks record what the buffer tells the node.
"""

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from golem_task_api.node.compute.buffer import (
    ExecutorBuffer,
    QueuedExecution,
    RunOutcome,
    StopReason,
    StopResult,
)
from golem_task_api.node.compute.capacity import Allocation, CapacityTracker, Resources
from golem_task_api.node.compute.runner import ProgressReporter, ProgressUpdate, RunJob, RunResult
from tests.node.compute.helpers import BOUND, GateRunner, execution, pid_alive, until


class Hooks:
    """Records what the buffer reports; workdirs under `root`."""

    def __init__(self, root: Path, tracker: CapacityTracker) -> None:
        self.root = root
        self.tracker = tracker
        self.outcomes: dict[str, RunOutcome] = {}
        self.finished_events: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.used_at_finish: dict[str, Resources] = {}
        self.timeouts: list[str] = []
        self.expired: list[str] = []
        self.expired_event = asyncio.Event()
        self.progress_seen: list[tuple[str, ProgressUpdate]] = []
        self.refuse: set[str] = set()
        self.allow_timeout = True
        self.on_finish: Any = None

    def started(self, item: QueuedExecution, allocation: Allocation) -> RunJob | None:
        if item.execution_id in self.refuse:
            return None
        workdir = self.root / item.execution_id
        workdir.mkdir()
        return RunJob(item.execution, workdir, allocation, item.timeout)

    def timed_out(self, item: QueuedExecution) -> bool:
        self.timeouts.append(item.execution_id)
        return self.allow_timeout

    def queue_expired(self, item: QueuedExecution) -> None:
        self.expired.append(item.execution_id)
        self.expired_event.set()

    def progress(self, item: QueuedExecution, update: ProgressUpdate) -> None:
        self.progress_seen.append((item.execution_id, update))

    def finished(self, item: QueuedExecution, outcome: RunOutcome) -> None:
        self.outcomes[item.execution_id] = outcome
        self.used_at_finish[item.execution_id] = self.tracker.used
        if self.on_finish is not None:
            self.on_finish(item)
        self.finished_events[item.execution_id].set()

    async def wait_finished(self, execution_id: str) -> RunOutcome:
        async with asyncio.timeout(BOUND):
            await self.finished_events[execution_id].wait()
        return self.outcomes[execution_id]


class Rig:
    def __init__(self, root: Path, total: Resources, runner: Any, **options: Any) -> None:
        self.tracker = CapacityTracker(total)
        self.hooks = Hooks(root, self.tracker)
        self.runner = runner
        self.buffer = ExecutorBuffer(self.tracker, runner, self.hooks, **options)

    def add(self, execution_id: str, cpu: int = 1, **options: Any) -> None:
        self.buffer.enqueue(execution(execution_id, cpu), **options)

    async def finish(self, execution_id: str) -> RunOutcome:
        self.runner.release(execution_id)
        return await self.hooks.wait_finished(execution_id)


@pytest.fixture
async def rig_factory(tmp_path: Path) -> AsyncIterator[Any]:
    rigs: list[Rig] = []

    def make(total: Resources | None = None, runner: Any = None, **options: Any) -> Rig:
        total = total or Resources(4, 4000)
        root = tmp_path / f"rig{len(rigs)}"
        root.mkdir()
        rig = Rig(root, total, runner or GateRunner(total=total), **options)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        await rig.buffer.aclose()


async def test_ties_are_broken_by_arrival(rig_factory: Any) -> None:
    rig = rig_factory(Resources(1, 4000))
    names = [f"e{i}" for i in range(6)]
    for name in names:
        rig.add(name)
    for name in names:
        await rig.runner.wait_started(name)
        assert rig.buffer.running_ids() == [name]
        await rig.finish(name)
    assert rig.runner.order == names


async def test_a_restart_requeue_keeps_arrival_order(rig_factory: Any) -> None:
    rig = rig_factory(Resources(1, 4000))
    rig.buffer.enqueue(execution("blocker", seq=1))
    rig.buffer.enqueue(execution("late", seq=30))
    rig.buffer.enqueue(execution("early", seq=20))  # arrived before "late"
    assert rig.buffer.queued_ids() == ["early", "late"]
    for name in ("blocker", "early", "late"):
        await rig.runner.wait_started(name)
        await rig.finish(name)
    assert rig.runner.order == ["blocker", "early", "late"]


async def test_a_smaller_job_passes_one_that_does_not_fit(rig_factory: Any) -> None:
    rig = rig_factory(Resources(4, 4000))
    rig.add("big-running", cpu=3)
    rig.add("bigger", cpu=4)
    rig.add("small", cpu=1)
    assert rig.buffer.running_ids() == ["big-running", "small"]
    assert rig.buffer.queued_ids() == ["bigger"]
    await rig.runner.wait_started("small")
    await rig.finish("small")
    await rig.finish("big-running")
    await rig.runner.wait_started("bigger")
    assert rig.runner.order == ["big-running", "small", "bigger"]


async def test_backfill_is_bounded_then_capacity_is_held(rig_factory: Any) -> None:
    rig = rig_factory(Resources(4, 4000), max_passes=2)
    rig.add("A", cpu=3)
    rig.add("B", cpu=4)
    for name in ("C1", "C2", "C3", "C4"):
        rig.add(name)
    assert rig.buffer.running_ids() == ["A", "C1"]  # C1 passes B (1st pass)
    await rig.runner.wait_started("C1")
    await rig.finish("C1")
    assert rig.buffer.running_ids() == ["A", "C2"]  # 2nd pass
    await rig.runner.wait_started("C2")
    await rig.finish("C2")
    # B was passed twice: a slot is free, yet C3 may not pass it any more.
    assert rig.buffer.running_ids() == ["A"]
    assert rig.buffer.held_for == "B"
    assert rig.tracker.free.cpu == 1
    await rig.runner.wait_started("A")
    await rig.finish("A")
    assert rig.buffer.running_ids() == ["B"]
    assert rig.buffer.held_for is None
    await rig.runner.wait_started("B")
    await rig.finish("B")
    assert rig.buffer.running_ids() == ["C3", "C4"]
    await rig.runner.wait_started("C3")
    await rig.runner.wait_started("C4")
    assert rig.runner.order == ["A", "C1", "C2", "B", "C3", "C4"]


@pytest.mark.parametrize(
    "options", [{"max_passes": 0}, {"max_passes": 100, "max_head_wait": 0.0}], ids=["fifo", "wait"]
)
async def test_strict_fifo_and_the_wait_bound_hold_at_once(rig_factory: Any, options: Any) -> None:
    rig = rig_factory(Resources(4, 4000), **options)
    rig.add("A", cpu=3)
    rig.add("B", cpu=4)
    rig.add("C", cpu=1)
    assert rig.buffer.running_ids() == ["A"]
    assert rig.buffer.held_for == "B"
    await rig.runner.wait_started("A")
    await rig.finish("A")
    assert rig.buffer.running_ids() == ["B"]


@pytest.mark.parametrize(("max_passes", "starts_in_round"), [(3, 4), (1000, None)])
async def test_the_head_is_not_starved_by_a_stream_of_small_jobs(
    rig_factory: Any, max_passes: int, starts_in_round: int | None
) -> None:
    rig = rig_factory(Resources(2, 4000), max_passes=max_passes)
    rig.add("S0")
    rig.add("B", cpu=2)
    started_in = None
    for round_ in range(1, 11):
        rig.add(f"S{round_}")  # a new small job always arrives...
        oldest = next(i for i in rig.buffer.running_ids() if i != "B")
        await rig.runner.wait_started(oldest)
        await rig.finish(oldest)  # ...while one of the running ones ends
        if rig.buffer.is_running("B"):
            started_in = round_
            break
    assert started_in == starts_in_round
    if starts_in_round is not None:
        assert not rig.buffer.running_ids()[1:]  # B holds both slots alone


async def test_cancelling_a_queued_execution_frees_its_place_at_once(rig_factory: Any) -> None:
    rig = rig_factory(Resources(4, 4000), max_passes=0)
    rig.add("A", cpu=3)
    rig.add("B", cpu=4)  # the head; strict FIFO, so C waits behind it
    rig.add("C", cpu=1)
    assert rig.buffer.queued_usage == Resources(5, 200)
    assert rig.buffer.stop("B") is StopResult.DEQUEUED
    # Synchronously: B is gone, its queued usage too, and C started at once.
    assert rig.buffer.queued_ids() == []
    assert rig.buffer.queued_usage == Resources()
    assert rig.buffer.running_ids() == ["A", "C"]
    assert "B" not in rig.hooks.outcomes
    assert rig.buffer.stop("B") is StopResult.UNKNOWN


async def test_cancelling_a_running_execution_frees_capacity_only_once_it_stopped(
    rig_factory: Any,
) -> None:
    grace = 0.4
    runner = GateRunner(stubborn=True, term_grace=grace)
    rig = rig_factory(Resources(2, 4000), runner=runner)
    rig.add("A", cpu=2)
    rig.add("B", cpu=2)
    await runner.wait_started("A")  # the child now ignores SIGTERM
    pid = runner.procs["A"].pid
    alive_when_finished: list[bool] = []
    rig.hooks.on_finish = lambda item: alive_when_finished.append(pid_alive(pid))

    began = time.monotonic()
    assert rig.buffer.stop("A") is StopResult.STOPPING
    assert rig.tracker.used == Resources(2, 100)  # still held: the child lives
    assert rig.buffer.running_ids() == ["A"] and rig.buffer.queued_ids() == ["B"]
    assert pid_alive(pid)

    outcome = await rig.hooks.wait_finished("A")
    assert time.monotonic() - began >= grace  # it took the SIGKILL after the grace
    assert outcome.stopped is StopReason.CANCEL and outcome.result is None
    assert alive_when_finished == [False]
    assert rig.hooks.used_at_finish["A"] == Resources()  # freed before B started
    await runner.wait_started("B")


async def test_a_timeout_and_a_cancel_are_told_apart(rig_factory: Any) -> None:
    rig = rig_factory(Resources(4, 4000))
    rig.add("slow", timeout=0.2)
    rig.add("cancelled", timeout=60.0)
    await rig.runner.wait_started("slow")
    await rig.runner.wait_started("cancelled")
    rig.buffer.stop("cancelled")
    slow = await rig.hooks.wait_finished("slow")
    cancelled = await rig.hooks.wait_finished("cancelled")
    assert slow.stopped is StopReason.TIMEOUT
    assert cancelled.stopped is StopReason.CANCEL
    assert rig.hooks.timeouts == ["slow"]
    assert slow.duration >= 0.2
    assert not pid_alive(rig.runner.procs["slow"].pid)
    assert rig.tracker.used == Resources()


async def test_a_timeout_the_node_refuses_to_record_does_not_stop_the_run(
    rig_factory: Any,
) -> None:
    rig = rig_factory(Resources(4, 4000))
    rig.hooks.allow_timeout = False  # e.g. the execution was cancelled meanwhile
    rig.add("e", timeout=0.05)
    await rig.runner.wait_started("e")
    await until(lambda: "e" in rig.hooks.timeouts)
    assert rig.buffer.is_running("e")
    outcome = await rig.finish("e")
    assert outcome.stopped is None and outcome.result is not None and outcome.result.ok


async def test_a_queue_deadline_drops_the_execution(rig_factory: Any) -> None:
    rig = rig_factory(Resources(1, 4000))
    rig.add("A")
    rig.add("B", queue_timeout=0.05)
    async with asyncio.timeout(BOUND):
        await rig.hooks.expired_event.wait()
    assert rig.hooks.expired == ["B"]
    assert rig.buffer.queued_ids() == []
    await rig.runner.wait_started("A")
    await rig.finish("A")
    assert rig.runner.order == ["A"]


class RaisingRunner:
    async def run(self, job: RunJob, report_progress: ProgressReporter) -> RunResult:
        report_progress(ProgressUpdate(1, 2, unit="Frames"))
        raise RuntimeError("docker daemon not reachable")


async def test_a_runner_that_raises_is_a_retryable_failure(rig_factory: Any) -> None:
    rig = rig_factory(Resources(1, 4000), runner=RaisingRunner())
    rig.add("e")
    outcome = await rig.hooks.wait_finished("e")
    assert outcome.result is not None and not outcome.result.ok
    assert outcome.result.retryable
    assert "docker daemon not reachable" in outcome.result.error
    assert rig.hooks.progress_seen == [("e", ProgressUpdate(1, 2, unit="Frames"))]
    assert rig.tracker.used == Resources()


async def test_what_cannot_run_is_refused_and_what_the_node_refuses_is_skipped(
    rig_factory: Any,
) -> None:
    rig = rig_factory(Resources(2, 4000))
    with pytest.raises(ValueError, match="can never run here"):
        rig.add("huge", cpu=3)
    rig.hooks.refuse.add("refused")
    rig.add("refused")
    rig.add("next")
    assert rig.buffer.running_ids() == ["next"]
    assert rig.tracker.used == Resources(1, 100)
    with pytest.raises(ValueError, match="already queued or running"):
        rig.add("next")


async def test_closing_stops_runs_and_forgets_the_queue(rig_factory: Any) -> None:
    rig = rig_factory(Resources(1, 4000))
    rig.add("running")
    rig.add("queued")
    await rig.runner.wait_started("running")
    pid = rig.runner.procs["running"].pid
    await rig.buffer.aclose()
    assert rig.hooks.outcomes["running"].stopped is StopReason.SHUTDOWN
    assert "queued" not in rig.hooks.outcomes
    assert not pid_alive(pid)
    assert rig.buffer.queued_ids() == [] and rig.tracker.used == Resources()
    with pytest.raises(RuntimeError, match="closed"):
        rig.add("later")


@pytest.mark.parametrize(("depth", "small_starts"), [(2, False), (3, True)])
async def test_a_pass_looks_only_backfill_depth_deep(
    rig_factory: Any, depth: int, small_starts: bool
) -> None:
    rig = rig_factory(Resources(4, 4000), backfill_depth=depth)
    rig.add("A", cpu=3)
    rig.add("B", cpu=4)
    rig.add("C", cpu=4)
    rig.add("D", cpu=1)  # third in the queue
    assert rig.buffer.is_running("D") is small_starts
    assert rig.buffer.queued_count == (2 if small_starts else 3)
    assert rig.buffer.running_count == (2 if small_starts else 1)


async def test_a_run_stopped_before_its_first_step_still_frees_its_capacity(
    rig_factory: Any,
) -> None:
    rig = rig_factory(Resources(1, 4000))
    rig.add("e")  # started synchronously: its task has not run a step yet
    assert rig.buffer.is_running("e")
    assert rig.buffer.stop("e") is StopResult.STOPPING
    outcome = await rig.hooks.wait_finished("e")
    assert outcome.stopped is StopReason.CANCEL
    assert rig.tracker.used == Resources() and rig.buffer.running_count == 0
    assert rig.runner.order == []  # no child was ever started
