"""execute_tasks: retries elsewhere, bounded attempts, crashes, lazy input, one outcome per task."""

import asyncio
import contextlib
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from golem_task_api.node.workgen import (
    EventBus,
    EventStream,
    InvalidTaskStateError,
    JobTimeoutError,
    LocalDirProvider,
    NoProviderAvailableError,
    Provider,
    ProviderPool,
    RetryPolicy,
    Script,
    Task,
    TaskFailedError,
    TaskNotSettledError,
    TaskRejectedError,
    TaskState,
    WorkContext,
    execute_tasks,
)
from golem_task_api.node.workgen.events import (
    TaskFailed,
    TaskRejected,
    TaskRetried,
    WorkerFinished,
)
from tests.node.workgen.conftest import (
    drain,
    kinds,
    make_providers,
    no_leaked_leases,
    of_kind,
    outcomes,
)
from tests.waiting import BOUND, poll

NO_WAIT = RetryPolicy(max_attempts=3, backoff=0)

Worker = AsyncGenerator[Script, list[Any]]


def echo_script(ctx: WorkContext, data: Any) -> tuple[Script, Any]:
    script = ctx.new_script()
    script.send_json(data, "data.json")
    return script, script.download_json("data.json")


async def accept_all(ctx: WorkContext, tasks: AsyncIterator[Task[Any, Any]]) -> Worker:
    async for task in tasks:
        script, echoed = echo_script(ctx, task.data)
        yield script
        task.accept_result(await echoed)


async def test_every_task_is_computed_once(pool: ProviderPool) -> None:
    tasks: list[Task[int, int]] = [Task(i) for i in range(10)]
    with no_leaked_leases(pool):
        done = await outcomes(execute_tasks(accept_all, tasks, pool, max_workers=3))
    assert sorted(t.result for t in done) == list(range(10))
    assert {t.id for t in done} == {t.id for t in tasks}
    assert all(len(t.attempts) == 1 and t.attempts[0].error is None for t in done)


async def test_a_rejected_task_is_retried_on_another_provider(
    pool: ProviderPool, bus: EventBus, events: EventStream
) -> None:
    async def worker(ctx: WorkContext, tasks: AsyncIterator[Task[int, str]]) -> Worker:
        async for task in tasks:
            script, _ = echo_script(ctx, task.data)
            yield script
            if not task.attempts:
                task.reject_result("first tries are never good enough")
            else:
                task.accept_result(ctx.provider_id)

    with no_leaked_leases(pool):
        (task,) = await outcomes(
            execute_tasks(worker, [Task(1)], pool, max_workers=1, retry=NO_WAIT, events=bus)
        )
    first, second = task.attempts
    assert isinstance(first.error, TaskRejectedError)
    assert second.error is None
    assert first.provider_id != second.provider_id == task.result
    seen = drain(events)
    (rejected,) = of_kind(seen, TaskRejected)
    assert rejected.kind == TaskRejected(1, "first tries are never good enough", True)
    (retried,) = of_kind(seen, TaskRetried)
    assert retried.kind == TaskRetried(2, 0.0, (first.provider_id,))


async def test_retries_are_bounded_and_end_in_a_failure(
    pool: ProviderPool, bus: EventBus, events: EventStream
) -> None:
    async def worker(ctx: WorkContext, tasks: AsyncIterator[Task[int, int]]) -> Worker:
        async for task in tasks:
            script, _ = echo_script(ctx, task.data)
            yield script
            task.reject_result(f"bad on {ctx.provider_id}")

    retry = RetryPolicy(max_attempts=3, backoff=0.01, backoff_factor=2)
    with no_leaked_leases(pool):
        (task,) = await outcomes(
            execute_tasks(worker, [Task(1)], pool, max_workers=2, retry=retry, events=bus)
        )
    assert task.state is TaskState.FAILED
    assert len({a.provider_id for a in task.attempts}) == 3
    with pytest.raises(TaskFailedError, match="failed after 3 attempt") as failed:
        _ = task.result
    assert failed.value is task.error
    assert isinstance(failed.value.__cause__, TaskRejectedError)
    assert failed.value.__cause__.reason == f"bad on {task.attempts[-1].provider_id}"
    seen = drain(events)
    assert [e.kind.retry for e in of_kind(seen, TaskRejected)] == [True, True, False]  # type: ignore[union-attr]
    assert [e.kind.delay for e in of_kind(seen, TaskRetried)] == [0.01, 0.02]  # type: ignore[union-attr]
    assert len(of_kind(seen, TaskFailed)) == 1


async def test_a_task_fails_when_no_other_provider_is_left(tmp_path: Path) -> None:
    pool = ProviderPool(make_providers(tmp_path, 2))

    async def worker(ctx: WorkContext, tasks: AsyncIterator[Task[int, int]]) -> Worker:
        async for task in tasks:
            script, _ = echo_script(ctx, task.data)
            yield script
            task.reject_result("no")

    retry = RetryPolicy(max_attempts=10, backoff=0)
    with no_leaked_leases(pool):
        (task,) = await outcomes(execute_tasks(worker, [Task(1)], pool, retry=retry))
    assert len(task.attempts) == 2
    assert task.error is not None
    assert "no other provider is available" in str(task.error)
    assert isinstance(task.error.__cause__, TaskRejectedError)


async def test_reject_without_retry_fails_at_once(pool: ProviderPool) -> None:
    async def worker(ctx: WorkContext, tasks: AsyncIterator[Task[int, int]]) -> Worker:
        async for task in tasks:
            yield ctx.new_script()
            task.reject_result("hopeless", retry=False)

    (task,) = await outcomes(execute_tasks(worker, [Task(1)], pool, retry=NO_WAIT))
    assert len(task.attempts) == 1
    assert str(task.error) == f"task {task.id} was rejected: hopeless"


async def test_a_crashed_worker_returns_its_task_to_the_queue(
    pool: ProviderPool, bus: EventBus, events: EventStream
) -> None:
    crashed_on: list[str] = []

    async def worker(ctx: WorkContext, tasks: AsyncIterator[Task[int, str]]) -> Worker:
        async for task in tasks:
            script, _ = echo_script(ctx, task.data)
            yield script
            if not crashed_on:
                crashed_on.append(ctx.provider_id)
                raise RuntimeError("worker bug")
            task.accept_result(ctx.provider_id)

    with no_leaked_leases(pool):
        (task,) = await outcomes(
            execute_tasks(worker, [Task(1)], pool, max_workers=1, retry=NO_WAIT, events=bus)
        )
    assert task.accepted and task.result != crashed_on[0]
    first = task.attempts[0]
    assert first.provider_id == crashed_on[0]
    assert isinstance(first.error, RuntimeError)
    finished = [e for e in of_kind(drain(events), WorkerFinished)]
    assert [e.kind.error for e in finished] == ["RuntimeError: worker bug", None]  # type: ignore[union-attr]


async def test_an_uncaught_batch_error_is_a_crash_too(pool: ProviderPool) -> None:
    async def worker(ctx: WorkContext, tasks: AsyncIterator[Task[int, str]]) -> Worker:
        async for task in tasks:
            script = ctx.new_script()
            script.run("false")
            yield script
            task.accept_result("never")

    (task,) = await outcomes(execute_tasks(worker, [Task(1)], pool, retry=NO_WAIT))
    assert task.state is TaskState.FAILED
    assert len(task.attempts) == 3
    assert "run('false')" in str(task.error)


async def test_a_worker_that_forgets_a_task_returns_it(pool: ProviderPool) -> None:
    async def worker(ctx: WorkContext, tasks: AsyncIterator[Task[int, int]]) -> Worker:
        async for task in tasks:
            yield ctx.new_script()
            if not task.attempts:
                return
            task.accept_result(task.data)

    (task,) = await outcomes(execute_tasks(worker, [Task(5)], pool, retry=NO_WAIT))
    assert task.result == 5
    assert isinstance(task.attempts[0].error, TaskNotSettledError)


async def test_a_task_is_settled_once(pool: ProviderPool) -> None:
    problems: list[str] = []

    async def worker(ctx: WorkContext, tasks: AsyncIterator[Task[int, int]]) -> Worker:
        async for task in tasks:
            yield ctx.new_script()
            task.accept_result(1)
            try:
                task.accept_result(2)
            except InvalidTaskStateError as exc:
                problems.append(str(exc))
            try:
                task.reject_result("x")
            except InvalidTaskStateError as exc:
                problems.append(str(exc))

    (task,) = await outcomes(execute_tasks(worker, [Task(0)], pool))
    assert task.result == 1
    assert problems == [
        f"cannot accept task {task.id}: it is accepted, not running",
        f"cannot reject task {task.id}: it is accepted, not running",
    ]
    with pytest.raises(InvalidTaskStateError, match="waiting: no result yet"):
        _ = Task(0).result


async def test_exactly_one_outcome_per_task_whatever_happens(tmp_path: Path) -> None:
    pool = ProviderPool(make_providers(tmp_path, 4))
    # Deterministic trouble: by task number and attempt.
    tasks: list[Task[int, int]] = [Task(i, task_id=f"t{i}") for i in range(40)]

    async def worker(ctx: WorkContext, tasks: AsyncIterator[Task[int, int]]) -> Worker:
        async for task in tasks:
            script, echoed = echo_script(ctx, task.data)
            attempt = len(task.attempts) + 1
            if task.data % 7 == 0 and attempt == 1:
                script.run("false")
            yield script
            if task.data % 5 == 0:
                task.reject_result("never good", retry=task.data % 10 == 0)
            elif task.data % 3 == 0 and attempt < 3:
                task.reject_result("not yet")
            else:
                task.accept_result(await echoed)

    with no_leaked_leases(pool):
        done = await outcomes(
            execute_tasks(worker, tasks, pool, max_workers=3, retry=NO_WAIT)
        )
    assert sorted(t.id for t in done) == sorted(t.id for t in tasks)
    for task in done:
        assert task.done
        if task.data % 5 == 0:
            assert task.state is TaskState.FAILED
        else:
            assert task.result == task.data
        providers = [a.provider_id for a in task.attempts]
        assert len(providers) == len(set(providers)), f"{task.id} retried on the same provider"


async def test_an_infinite_source_is_read_lazily(tmp_path: Path) -> None:
    pool = ProviderPool(make_providers(tmp_path, 5))
    pulled = 0
    running = 0
    most = 0

    async def source() -> AsyncIterator[Task[int, int]]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield Task(i)

    async def worker(ctx: WorkContext, tasks: AsyncIterator[Task[int, int]]) -> Worker:
        nonlocal running, most
        async for task in tasks:
            running += 1
            most = max(most, running)
            script, echoed = echo_script(ctx, task.data)
            yield script
            running -= 1
            task.accept_result(await echoed)

    got: list[int] = []
    with no_leaked_leases(pool):
        async with asyncio.timeout(BOUND), execute_tasks(
            worker, source(), pool, max_workers=2
        ) as job:
            async for task in job:
                got.append(task.result)
                if len(got) == 20:
                    break
    assert len(got) == 20
    assert most <= 2
    # Read no further than the tasks in flight (2 workers), the outcomes
    # the consumer has not read yet (< max_workers) and one being pulled.
    assert pulled <= 20 + 2 + 2 + 1, pulled


async def test_a_sync_source_and_a_source_that_raises(pool: ProviderPool) -> None:
    def source() -> Iterator[Task[int, int]]:
        yield Task(1)
        yield Task(2)
        raise OSError("the source broke")

    got: list[int] = []
    with pytest.raises(OSError, match="the source broke"):
        async with asyncio.timeout(BOUND), execute_tasks(accept_all, source(), pool) as job:
            async for task in job:
                got.append(task.result)
    assert sorted(got) == [1, 2]


async def test_a_source_of_something_else_than_tasks(pool: ProviderPool) -> None:
    with pytest.raises(TypeError, match="takes Task objects, the source gave int"):
        await outcomes(execute_tasks(accept_all, [1, 2], pool))  # type: ignore[list-item]
    task: Task[int, int] = Task(1)
    with pytest.raises(ValueError, match="was given twice"):
        await outcomes(execute_tasks(accept_all, [task, task], pool))


async def test_the_job_timeout_fails_what_is_left_and_raises(
    pool: ProviderPool,
) -> None:
    never = asyncio.Event()

    async def worker(ctx: WorkContext, tasks: AsyncIterator[Task[int, int]]) -> Worker:
        async for task in tasks:
            if task.data == 0:
                yield ctx.new_script()
                task.accept_result(0)
            else:
                await never.wait()

    got: list[Task[int, int]] = []
    tasks: list[Task[int, int]] = [Task(i) for i in range(3)]
    with no_leaked_leases(pool), pytest.raises(JobTimeoutError, match=r"0\.5 s"):
        async with asyncio.timeout(BOUND), execute_tasks(
            worker, tasks, pool, max_workers=3, timeout=0.5
        ) as job:
            async for task in job:
                got.append(task)
    assert sorted(t.id for t in got) == sorted(t.id for t in tasks)
    for task in got:
        if task.data == 0:
            assert task.result == 0
        else:
            assert task.error is not None
            assert isinstance(task.error.__cause__, JobTimeoutError)


async def test_no_provider_at_all(tmp_path: Path) -> None:
    tasks: list[Task[int, int]] = [Task(1), Task(2)]
    with pytest.raises(NoProviderAvailableError, match="empty"):
        await outcomes(execute_tasks(accept_all, tasks, ProviderPool([])))
    # What was read from the source failed; the rest was never read.
    assert tasks[0].state is TaskState.FAILED
    assert isinstance(tasks[0].error.__cause__, NoProviderAvailableError)  # type: ignore[union-attr]
    assert tasks[1].state in (TaskState.FAILED, TaskState.WAITING)


async def test_max_workers_bounds_the_providers_in_use(tmp_path: Path) -> None:
    providers = make_providers(tmp_path, 6)
    pool = ProviderPool(providers)
    most = 0
    gate = asyncio.Event()

    async def worker(ctx: WorkContext, tasks: AsyncIterator[Task[int, int]]) -> Worker:
        nonlocal most
        async for task in tasks:
            most = max(most, len(pool.leased()))
            await gate.wait()
            yield ctx.new_script()
            task.accept_result(task.data)

    job = execute_tasks(worker, [Task(i) for i in range(12)], pool, max_workers=4)
    async with asyncio.timeout(BOUND), job:
        iterator = aiter(job)
        first = asyncio.ensure_future(anext(iterator))
        await poll(lambda: len(pool.leased()) == 4, "four workers")
        gate.set()
        results = [(await first).result] + [t.result async for t in iterator]
    assert sorted(results) == list(range(12))
    assert most == 4
    assert pool.leased() == frozenset()


async def test_a_retry_waits_for_its_backoff(pool: ProviderPool) -> None:
    loop = asyncio.get_running_loop()
    started: list[float] = []

    async def worker(ctx: WorkContext, tasks: AsyncIterator[Task[int, int]]) -> Worker:
        async for task in tasks:
            started.append(loop.time())
            yield ctx.new_script()
            if len(started) == 1:
                task.reject_result("again")
            else:
                task.accept_result(1)

    retry = RetryPolicy(max_attempts=2, backoff=0.2)
    await outcomes(execute_tasks(worker, [Task(0)], pool, retry=retry))
    assert started[1] - started[0] >= 0.2


async def test_a_worker_may_take_several_tasks_for_one_script(pool: ProviderPool) -> None:
    async def worker(ctx: WorkContext, tasks: AsyncIterator[Task[int, int]]) -> Worker:
        with contextlib.suppress(StopAsyncIteration):
            while True:
                batch = [await anext(tasks), await anext(tasks)]
                assert ctx.tasks == tuple(batch)
                script = ctx.new_script()
                echoed = script.send_json([t.data for t in batch], "batch.json")
                yield script
                await echoed
                for task in batch:
                    task.accept_result(task.data * 10)

    done = await outcomes(execute_tasks(worker, [Task(i) for i in range(4)], pool, max_workers=1))
    assert sorted(t.result for t in done) == [0, 10, 20, 30]


def test_arguments_are_checked(pool: ProviderPool) -> None:
    with pytest.raises(ValueError, match="max_workers"):
        execute_tasks(accept_all, [], pool, max_workers=0)
    with pytest.raises(ValueError, match="timeout"):
        execute_tasks(accept_all, [], pool, timeout=0)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    assert RetryPolicy(backoff=1, backoff_factor=3, max_backoff=5).delay(3) == 5


async def test_a_job_is_iterated_once(pool: ProviderPool) -> None:
    job = execute_tasks(accept_all, [], pool)
    async with job:
        assert [t async for t in job] == []
        with pytest.raises(RuntimeError, match="only once"):
            aiter(job)


async def test_the_job_emits_to_its_own_bus_when_given_none(pool: ProviderPool) -> None:
    job = execute_tasks(accept_all, [Task(1)], pool)
    stream = job.events.subscribe()
    await outcomes(job)
    seen = [event async for event in stream]  # ends: the job closed its own bus
    assert kinds(seen)[0] == "worker_started" and "task_accepted" in kinds(seen)


def test_local_dir_provider_satisfies_the_protocol(tmp_path: Path) -> None:
    provider: Provider = LocalDirProvider("p", tmp_path)
    assert provider.id == provider.name == "p"


async def test_a_busy_idle_worker_makes_room_for_a_retry_elsewhere(tmp_path: Path) -> None:
    # One worker slot, more input waiting: the retry of t0 may not go back to
    # the only running worker, so that worker is ended for a new one.
    pool = ProviderPool(make_providers(tmp_path, 2))

    async def worker(ctx: WorkContext, tasks: AsyncIterator[Task[int, str]]) -> Worker:
        async for task in tasks:
            yield ctx.new_script()
            if task.data == 0 and not task.attempts:
                task.reject_result("again")
            else:
                task.accept_result(ctx.provider_id)

    tasks: list[Task[int, str]] = [Task(i) for i in range(6)]
    with no_leaked_leases(pool):
        done = await outcomes(execute_tasks(worker, tasks, pool, max_workers=1, retry=NO_WAIT))
    assert all(t.accepted for t in done) and len(done) == 6
    first, second = tasks[0].attempts
    assert first.provider_id != second.provider_id == tasks[0].result
