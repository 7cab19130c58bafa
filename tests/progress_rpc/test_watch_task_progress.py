"""WatchTaskProgress at the gRPC level, on the tutorial app: the progress
its requestor reports (ranges verified of all ranges) for one task."""

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from apps.tutorial.provider import TutorialProviderHandler
from apps.tutorial.requestor import TutorialRequestorHandler
from golem_task_api import errors
from golem_task_api.client import LocalProcessService, RequestorAppClient
from golem_task_api.client.channel import make_channel, wait_for_health
from golem_task_api.progress import ProgressValue, State
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto import golem_task_api_pb2_grpc as pb_grpc
from golem_task_api.testutils import InlineTaskApiService, TaskLifecycleUtil
from tests.progress_rpc.conftest import (
    NEVER,
    OK,
    REPO_ROOT,
    Outcome,
    Watch,
    assert_seq,
    assert_terminal_once_last,
    kill_and_reap_later,
)
from tests.waiting import BOUND, bounded, poll

TASK = "t1"
RANGES = 4
PARAMS = {"difficulty": 7, "search_space": 8_000, "resources": ["data.bin"]}


def ranges(done: float, state: State = State.RUNNING) -> ProgressValue:
    return ProgressValue(done, RANGES, "Ranges", state=state)


def without_repeats(values: list[ProgressValue]) -> list[ProgressValue]:
    """Heartbeats repeat the last value after 10 s of silence (a slow machine)."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


def inline_requestor(work_dir: Path) -> InlineTaskApiService:
    # Seeded: which nonces Verify recomputes is the same in every run.
    return InlineTaskApiService(
        work_dir, requestor_handler=TutorialRequestorHandler(random.Random(7))
    )


def inline_provider(work_dir: Path) -> InlineTaskApiService:
    return InlineTaskApiService(work_dir, provider_handler=TutorialProviderHandler())


class Tutorial:
    """One tutorial task driven step by step, and raw stubs on its requestor."""

    def __init__(self, tmp_path: Path, service_factory: Any = inline_requestor) -> None:
        self.util = TaskLifecycleUtil(tmp_path / "work")
        self.data = tmp_path / "data.bin"
        self.data.write_bytes(b"watch this task")
        self._factory = service_factory
        self._stack = contextlib.AsyncExitStack()
        self.stub: pb_grpc.RequestorAppStub
        self.client: RequestorAppClient
        self.port = 0
        self.subtasks: list[str] = []

    async def start_requestor(self) -> None:
        """Start the requestor app (again), with our client and a raw stub on it."""
        self._stack = contextlib.AsyncExitStack()
        service = self._factory(self.util.req_dir)
        if isinstance(service, LocalProcessService):
            self._stack.push_async_callback(kill_and_reap_later([service]))
        host, self.port = await service.start("requestor 0", 0)
        channel = make_channel(host, self.port)
        await wait_for_health(channel)
        self.client = self.util.requestor_client = RequestorAppClient(service, channel)
        self._stack.push_async_callback(self.client.shutdown)
        raw = grpc.aio.insecure_channel(f"127.0.0.1:{self.port}")
        self._stack.push_async_callback(raw.close)
        self.stub = pb_grpc.RequestorAppStub(raw)

    async def stop_requestor(self) -> None:
        await self._stack.aclose()

    async def create(self) -> None:
        await self.util.create_task(TASK, RANGES, [self.data], PARAMS)
        self.util.init_provider(inline_provider, TASK)

    async def compute_one(self) -> str:
        subtask_id, verdict = await self.util.compute_next_subtask(TASK, "node")
        assert verdict.name == "SUCCESS"
        self.subtasks.append(subtask_id)
        return subtask_id

    def watch(self, task_id: str = TASK, **throttle: Any) -> Watch:
        return Watch(self.stub, task_id, **throttle)


@pytest.fixture
async def tutorial(tmp_path: Path) -> AsyncIterator[Tutorial]:
    """A tutorial task of 4 ranges, created on an inline requestor."""
    task = Tutorial(tmp_path)
    await task.start_requestor()
    try:
        await task.create()
        yield task
    finally:
        await task.stop_requestor()


async def test_an_unknown_task_is_not_found(tutorial: Tutorial) -> None:
    watch = tutorial.watch("no-such-task")
    outcome = await watch.end()
    assert outcome.code == grpc.StatusCode.NOT_FOUND and "no-such-task" in outcome.details
    assert outcome.progress == []
    watch = tutorial.watch("../escape")
    assert (await watch.end()).code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(errors.NotFound):
        async for _ in tutorial.client.watch_task_progress("no-such-task"):
            pass


async def test_the_first_event_is_the_current_value_at_once(tutorial: Tutorial) -> None:
    # An interval no test lasts: the snapshot is not throttled.
    watch = tutorial.watch(update_interval=NEVER)
    assert await watch.first() == ranges(0)
    assert watch.outcome.progress[0].seq == 0
    watch.cancel()


async def test_a_late_watcher_gets_the_current_value(tutorial: Tutorial) -> None:
    await tutorial.compute_one()
    await tutorial.compute_one()
    watch = tutorial.watch(update_interval=NEVER)
    assert await watch.first() == ranges(2)
    watch.cancel()


async def test_several_watchers_with_their_own_throttles(tutorial: Tutorial) -> None:
    every = tutorial.watch(update_interval=0.01)
    quiet = tutorial.watch(update_interval=NEVER)
    stepped = tutorial.watch(update_interval=NEVER, update_step=2)
    for watch in (every, quiet, stepped):
        assert await watch.first() == ranges(0)
    for done in range(1, RANGES + 1):
        await tutorial.compute_one()
        await every.until(lambda v, d=done: v.done == d, f"{done} ranges")
    # Completion is noticed when the node asks, as it does after each verdict.
    assert not await tutorial.client.has_pending_subtasks(TASK)
    outcomes = [await watch.end() for watch in (every, quiet, stepped)]
    for outcome in outcomes:
        assert outcome.code is OK, (outcome.code, outcome.details)
        assert_seq(outcome)
        assert_terminal_once_last(outcome)
    done = ranges(RANGES, State.SUCCEEDED)
    assert without_repeats(outcomes[0].values) == [*map(ranges, range(RANGES + 1)), done]
    # Only the snapshot, the flush of the last value and the end.
    assert without_repeats(outcomes[1].values) == [ranges(0), ranges(RANGES), done]
    # Whenever done moved by 2.
    assert without_repeats(outcomes[2].values) == [ranges(0), ranges(2), ranges(4), done]


async def test_watchers_come_and_go_without_affecting_the_task(tutorial: Tutorial) -> None:
    steady = tutorial.watch(update_interval=0.01)
    await steady.first()
    for done in range(1, RANGES + 1):
        passing = [tutorial.watch(update_interval=0.01) for _ in range(3)]
        assert [await w.first() for w in passing] == [ranges(done - 1)] * 3
        for watch in passing:
            watch.cancel()
        for watch in passing:
            outcome = await watch.end()
            assert outcome.code == grpc.StatusCode.CANCELLED
        await tutorial.compute_one()
        await steady.until(lambda v, d=done: v.done == d, f"{done} ranges")
    assert not await tutorial.client.has_pending_subtasks(TASK)
    outcome = await steady.end()
    assert outcome.code is OK
    assert without_repeats(outcome.values)[-1] == ranges(RANGES, State.SUCCEEDED)


async def test_wait_for_task_follows_the_task_to_succeeded(tutorial: Tutorial) -> None:
    seen: list[ProgressValue] = []
    waiting = asyncio.ensure_future(tutorial.client.wait_for_task(
        TASK, lambda update: seen.append(update.value), update_interval=0.01
    ))
    await poll(lambda: seen, "the first update")
    await tutorial.util.compute_remaining_subtasks(TASK, "node")
    last = await bounded(waiting, "wait_for_task")
    assert last.state is State.SUCCEEDED
    assert (last.value.done, last.value.total, last.fraction) == (RANGES, RANGES, 1.0)
    assert seen[0] == ranges(0) and seen[-1] == last.value
    # A watcher that comes after the end gets the end at once.
    outcome = await tutorial.watch(update_interval=NEVER).end()
    assert outcome.values == [ranges(RANGES, State.SUCCEEDED)]


async def test_abort_task_ends_the_watch_with_cancelled(tutorial: Tutorial) -> None:
    watch = tutorial.watch(update_interval=0.01)
    await tutorial.compute_one()
    await watch.until(lambda v: v.done == 1, "1 range")
    await tutorial.stub.AbortTask(pb.AbortTaskRequest(task_id=TASK), timeout=BOUND)
    outcome = await watch.end()
    assert outcome.code is OK
    terminal = outcome.values[-1]
    # The last real value, not 100 %.
    assert terminal == ranges(1)._replace(state=State.CANCELLED, message="the task was aborted")
    assert_terminal_once_last(outcome)
    late = await tutorial.watch(update_interval=NEVER).end()
    assert late.values == [terminal]


async def test_a_watch_ends_promptly_when_the_server_stops(tutorial: Tutorial) -> None:
    watch = tutorial.watch(update_interval=NEVER)
    await watch.first()
    service = tutorial.client.service
    started = time.monotonic()
    await tutorial.stub.Shutdown(pb.ShutdownRequest(), timeout=BOUND)
    outcome = await watch.end()
    ended = time.monotonic() - started
    await bounded(service.wait_until_shutdown_complete(), "the requestor's stop")
    stopped = time.monotonic() - started
    # Not held up until the 5 s grace runs out.
    assert ended < 2.5 and stopped < 2.5, (
        f"the watch ended after {ended:.1f} s, the server after {stopped:.1f} s"
    )
    assert outcome.code in (OK, grpc.StatusCode.UNAVAILABLE)


# -- across restarts and reopening ---------------------------------------------------


def process_requestor(work_dir: Path) -> LocalProcessService:
    return LocalProcessService("apps.tutorial", work_dir, cwd=REPO_ROOT)


@pytest.fixture
async def tutorial_process(tmp_path: Path) -> AsyncIterator[Tutorial]:
    """A tutorial task of 4 ranges, created on a requestor app process."""
    task = Tutorial(tmp_path, process_requestor)
    await task.start_requestor()
    try:
        await task.create()
        yield task
    finally:
        await task.stop_requestor()


async def completed_and_restarted(task: Tutorial) -> Outcome:
    """Complete the task, restart the requestor app; a new watch's outcome."""
    await task.util.compute_remaining_subtasks(TASK, "node")
    before = await task.watch(update_interval=NEVER).end()
    assert before.values == [ranges(RANGES, State.SUCCEEDED)]
    await task.stop_requestor()
    await task.start_requestor()
    return await task.watch(update_interval=NEVER).end()


async def test_after_a_restart_a_completed_task_is_succeeded_at_once(
    tutorial_process: Tutorial,
) -> None:
    outcome = await completed_and_restarted(tutorial_process)
    assert outcome.code is OK
    assert outcome.states == ["SUCCEEDED"]
    assert outcome.progress[0].seq == 0


@pytest.mark.parametrize("when", ["completed", "mid-task", "aborted"])
async def test_after_a_restart_a_watch_gets_the_value_the_task_had(
    tutorial: Tutorial, when: str
) -> None:
    task = tutorial  # restarted in-process: a new server and handler on the same dir
    if when == "completed":
        await task.util.compute_remaining_subtasks(TASK, "node")
        expected = ranges(RANGES, State.SUCCEEDED)
    else:
        await task.compute_one()
        await task.compute_one()
        expected = ranges(2)
        if when == "aborted":
            await task.client.abort_task(TASK)
            expected = expected._replace(state=State.CANCELLED, message="the task was aborted")
    watch = task.watch(update_interval=NEVER)
    assert await watch.first() == expected  # before the restart: fine
    watch.cancel()
    await task.stop_requestor()
    await task.start_requestor()
    watch = task.watch(update_interval=NEVER)
    assert await watch.first() == expected
    watch.cancel()


async def test_after_a_restart_an_aborted_task_is_cancelled_at_once(
    tutorial_process: Tutorial,
) -> None:
    await tutorial_process.compute_one()
    await tutorial_process.client.abort_task(TASK)
    await tutorial_process.stop_requestor()
    await tutorial_process.start_requestor()
    outcome = await tutorial_process.watch(update_interval=NEVER).end()
    assert outcome.code is OK
    assert outcome.states == ["CANCELLED"]


async def test_discard_subtasks_reopens_a_completed_task(tutorial: Tutorial) -> None:
    subtask_ids = await tutorial.util.compute_remaining_subtasks(TASK, "node")
    assert (await tutorial.watch().end()).states == ["SUCCEEDED"]
    discarded = await tutorial.client.discard_subtasks(TASK, subtask_ids[:1])
    assert len(discarded) == 1
    assert await tutorial.client.has_pending_subtasks(TASK)
    watch = tutorial.watch(update_interval=0.01)
    first = await watch.first()
    assert first.state is State.RUNNING
    await tutorial.compute_one()
    assert not await tutorial.client.has_pending_subtasks(TASK)
    outcome = await watch.end()
    assert outcome.code is OK
    assert outcome.values[-1] == ranges(RANGES, State.SUCCEEDED)
    assert_seq(outcome)
    assert_terminal_once_last(outcome)


async def test_discard_subtasks_the_reopened_task_shows_what_the_app_reported(
    tutorial: Tutorial,
) -> None:
    subtask_ids = await tutorial.util.compute_remaining_subtasks(TASK, "node")
    await tutorial.client.discard_subtasks(TASK, subtask_ids[:1])
    watch = tutorial.watch(update_interval=NEVER)
    assert await watch.first() == ranges(RANGES - 1)
    watch.cancel()


async def test_bad_progress_args_of_a_watch_are_invalid_argument(tutorial: Tutorial) -> None:
    request = pb.WatchTaskProgressRequest(task_id=TASK)
    request.progress.update_interval.seconds = -1
    outcome = await Watch.from_request(tutorial.stub, request).end()
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT and outcome.progress == []
    request = pb.WatchTaskProgressRequest(task_id=TASK)
    request.progress.update_step = float("nan")
    outcome = await Watch.from_request(tutorial.stub, request).end()
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT and outcome.progress == []
    # The task and the server are unaffected.
    assert await tutorial.watch(update_interval=NEVER).first() == ranges(0)


async def test_each_task_has_its_own_progress(tutorial: Tutorial) -> None:
    other = "t2"
    await tutorial.util.create_task(other, 2, [tutorial.data], PARAMS)
    first = tutorial.watch(update_interval=0.01)
    second = tutorial.watch(other, update_interval=0.01)
    assert await second.first() == ProgressValue(0, 2, "Ranges")
    await tutorial.compute_one()  # a range of t1
    await first.until(lambda v: v.done == 1, "1 range of t1")
    tutorial.util.init_provider(inline_provider, other)
    _subtask_id, verdict = await tutorial.util.compute_next_subtask(other, "node")
    assert verdict.name == "SUCCESS"
    await second.until(lambda v: v.done == 1, "1 range of t2")
    assert [v.total for v in first.values] == [RANGES] * len(first.values)
    assert [v.total for v in second.values] == [2] * len(second.values)
    first.cancel()
    second.cancel()
