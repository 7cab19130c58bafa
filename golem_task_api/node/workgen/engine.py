"""`execute_tasks`: hands tasks to workers on providers, runs their scripts, ends every task.

How tasks move (all decisions are made in `_Engine._schedule`, synchronously,
whenever anything changes, so nothing waits on a polling interval):

- Input is pulled one task at a time, only when a worker is waiting for one
  or a worker slot is free and no task is waiting for it, and only while
  the consumer has fewer than `max_workers` outcomes left unread. So an
  infinite source is read as fast as the tasks are done, no faster.
- A waiting task goes to a waiting worker whose provider it has not failed
  on, retried tasks first. A task that no running worker may take gets a
  new worker, with a provider acquired from the market outside the task's
  `excluded` set; when all `max_workers` slots are taken, an idle worker is
  ended to make room.
- An attempt ends by `accept_result`, `reject_result`, a crash of the worker
  (its exception), or the worker ending without settling the task. A failed
  attempt is retried after a backoff on another provider, up to
  `RetryPolicy.max_attempts`; then, or when no other provider exists, the
  task fails. Each task comes out of the job exactly once, accepted or
  failed.
"""

import asyncio
import collections
import itertools
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
)
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar

from golem_task_api.node.closing import AsyncClosing
from golem_task_api.node.workgen.batch import run_script
from golem_task_api.node.workgen.context import WorkContext
from golem_task_api.node.workgen.errors import (
    BatchError,
    JobCancelledError,
    JobTimeoutError,
    NoProviderAvailableError,
    ScriptUsageError,
    TaskFailedError,
    TaskNotSettledError,
    TaskRejectedError,
)
from golem_task_api.node.workgen.events import (
    EventBus,
    TaskAccepted,
    TaskFailed,
    TaskRejected,
    TaskRetried,
    TaskStarted,
    WorkerFinished,
    WorkerStarted,
)
from golem_task_api.node.workgen.provider import Market, Provider
from golem_task_api.node.workgen.script import Script
from golem_task_api.node.workgen.tasks import RetryPolicy, Task, TaskState

logger = logging.getLogger(__name__)

D = TypeVar("D")
R = TypeVar("R")

Worker: TypeAlias = Callable[
    [WorkContext, AsyncIterator[Task[D, R]]], AsyncGenerator[Script, list[Any]]
]
TaskSource: TypeAlias = Iterable[Task[D, R]] | AsyncIterable[Task[D, R]]

DEFAULT_RETRY = RetryPolicy()


def execute_tasks(
    worker: Worker[D, R],
    tasks: TaskSource[D, R],
    market: Market,
    *,
    max_workers: int = 5,
    timeout: float | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    script_timeout: float | None = None,
    events: EventBus | None = None,
) -> "Job[D, R]":
    """Run `worker` on providers from `market` until every task of `tasks` has ended.

    Iterate the result for the tasks as they end (accepted or failed, in
    the order they end); use it as `async with` (or `contextlib.aclosing`)
    so that leaving the loop early stops every worker at once.

    `worker(ctx, tasks)` is an async generator: it takes tasks from `tasks`,
    yields scripts made with `ctx.new_script()`, gets each script's results
    back from the `yield` (or its `BatchError` raised there) and settles every
    task it took. `timeout` bounds the whole job: when it is up, every task
    not ended fails with `JobTimeoutError`, which the iteration then raises.
    `script_timeout` is the default timeout of each script.

    Example::

        async def worker(ctx, tasks):
            async for task in tasks:
                script = ctx.new_script(timeout=60)
                script.send_json(task.data, "params.json")
                script.run("python3", "render.py", "params.json")
                frame = script.download_file("out.png", f"frames/{task.id}.png")
                try:
                    yield script
                except BatchError as error:
                    task.reject_result(str(error))  # retried on another provider
                else:
                    task.accept_result(await frame)

        async with execute_tasks(worker, (Task(p) for p in params), pool) as job:
            async for task in job:
                print(task.id, task.result if task.accepted else task.error)
    """
    bus = EventBus() if events is None else events
    engine = _Engine(
        worker,
        tasks,
        market,
        max_workers=max_workers,
        timeout=timeout,
        retry=retry,
        script_timeout=script_timeout,
        events=bus,
    )
    return Job(engine, bus, owns_events=events is None)


class Job(AsyncClosing, Generic[D, R]):
    """One run of `execute_tasks`. Nothing starts until it is iterated.

    `events`: the bus this job emits to (its own one unless one was given;
    its own one is closed when the job ends, so its streams end too).
    """

    def __init__(self, engine: "_Engine[D, R]", events: EventBus, *, owns_events: bool) -> None:
        self._engine = engine
        self.events = events
        self._owns_events = owns_events
        self._outcomes: AsyncGenerator[Task[D, R], None] | None = None

    def __aiter__(self) -> AsyncIterator[Task[D, R]]:
        if self._outcomes is not None:
            raise RuntimeError("a job can be iterated only once")
        self._outcomes = self._run()
        return self._outcomes

    async def aclose(self) -> None:
        """Stop every worker and release every provider; tasks not ended fail."""
        if self._outcomes is not None:
            await self._outcomes.aclose()
        if self._owns_events:
            self.events.close()

    async def _run(self) -> AsyncGenerator[Task[D, R], None]:
        engine = self._engine
        engine.start()
        try:
            while (task := await engine.next_outcome()) is not None:
                yield task
            engine.raise_fatal()
        finally:
            await engine.shutdown()
            if self._owns_events:
                self.events.close()


@dataclass(eq=False)
class _Slot:
    """One worker: acquiring its provider, then running."""

    number: int
    exclude: frozenset[str]
    # The waiting task this worker was started for; it is handed that task
    # first, and no second worker is started for it meanwhile.
    intended: Task[Any, Any] | None
    driver: "asyncio.Task[None] | None" = None
    provider: Provider | None = None
    held: list[Task[Any, Any]] = field(default_factory=list)
    waiter: "asyncio.Future[Task[Any, Any] | None] | None" = None
    retiring: bool = False

    @property
    def id(self) -> str:
        return f"worker-{self.number}"


class _TaskIterator(AsyncIterator[Task[D, R]]):
    """The `tasks` argument of a worker: the tasks given to it, one per `__anext__`."""

    def __init__(self, engine: "_Engine[D, R]", slot: _Slot) -> None:
        self._engine = engine
        self._slot = slot

    async def __anext__(self) -> Task[D, R]:
        task = await self._engine._next_task(self._slot)
        if task is None:
            raise StopAsyncIteration
        return task

    async def aclose(self) -> None:
        """The worker wants no more tasks."""
        self._slot.retiring = True


class _Engine(Generic[D, R]):
    def __init__(
        self,
        worker: Worker[D, R],
        tasks: TaskSource[D, R],
        market: Market,
        *,
        max_workers: int,
        timeout: float | None,
        retry: RetryPolicy,
        script_timeout: float | None,
        events: EventBus,
    ) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        for name, value in (("timeout", timeout), ("script_timeout", script_timeout)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
        self._worker = worker
        self._source = tasks
        self._market = market
        self._max_workers = max_workers
        self._timeout = timeout
        self._retry = retry
        self._script_timeout = script_timeout
        self._events = events

        self._pending: collections.deque[Task[D, R]] = collections.deque()
        self._active_ids: set[str] = set()
        self._holders: dict[Task[D, R], _Slot] = {}
        self._slots: dict[int, _Slot] = {}
        self._waiting: list[_Slot] = []
        self._numbers = itertools.count(1)
        self._outcomes: collections.deque[Task[D, R]] = collections.deque()
        self._consumer: asyncio.Future[None] | None = None

        self._sync_input: Iterator[Task[D, R]] | None = None
        self._async_input: AsyncIterator[Task[D, R]] | None = None
        self._input_done = False
        self._pull: asyncio.Task[None] | None = None

        self._fatal: BaseException | None = None
        self._closing: BaseException | None = None
        self._finished = False
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._backoff_timer: asyncio.TimerHandle | None = None
        self._backoff_at = 0.0
        self._scheduling = False
        self._again = False

    # --- the job's outside ----------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if isinstance(self._source, AsyncIterable):
            self._async_input = aiter(self._source)
        else:
            self._sync_input = iter(self._source)
        if self._timeout is not None:
            self._deadline_timer = self._loop.call_later(self._timeout, self._on_deadline)
        self._schedule()

    async def next_outcome(self) -> Task[D, R] | None:
        while not self._outcomes:
            if self._finished:
                return None
            self._consumer = self._loop.create_future()
            try:
                await self._consumer
            finally:
                self._consumer = None
        task = self._outcomes.popleft()
        # An outcome read makes room for more input.
        self._schedule()
        return task

    def raise_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    async def shutdown(self) -> None:
        if not self._finished:
            self._close(JobCancelledError("the job was closed before this task ended"))
        running = [s.driver for s in self._slots.values() if s.driver is not None]
        if self._pull is not None:
            running.append(self._pull)
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        self._cancel_timers()

    def _on_deadline(self) -> None:
        self._deadline_timer = None
        error = JobTimeoutError(f"the job did not end within its timeout of {self._timeout:g} s")
        self._fatal = error
        self._close(error)

    def _close(self, error: BaseException) -> None:
        """Stop now: waiting tasks fail with `error`, workers are cancelled (theirs fail too)."""
        if self._closing is not None or self._finished:
            return
        self._closing = error
        self._input_done = True
        if self._pull is not None:
            self._pull.cancel()
        while self._pending:
            self._fail(self._pending.popleft(), error)
        for slot in list(self._slots.values()):
            if slot.driver is not None:
                slot.driver.cancel()
        self._schedule()

    def _cancel_timers(self) -> None:
        for timer in (self._deadline_timer, self._backoff_timer):
            if timer is not None:
                timer.cancel()
        self._deadline_timer = self._backoff_timer = None

    # --- scheduling -------------------------------------------------------------

    def _schedule(self) -> None:
        # Re-entrant calls (a task failing while pending tasks are handed
        # out...) only ask for one more pass, so every decision is made on
        # consistent state.
        if self._scheduling:
            self._again = True
            return
        self._scheduling = True
        try:
            self._again = True
            while self._again:
                self._again = False
                self._schedule_once()
        finally:
            self._scheduling = False

    def _schedule_once(self) -> None:
        if self._finished:
            return
        if self._closing is None:
            now = self._loop.time()
            self._serve_waiting(now)
            self._end_idle(now)
            self._maybe_pull(now)
            self._start_workers(now)
            self._drop_unneeded()
            self._arm_backoff(now)
        if (
            self._input_done
            and self._pull is None
            and not self._pending
            and not self._slots
        ):
            self._finished = True
            self._cancel_timers()
            self._wake_consumer()

    def _serve_waiting(self, now: float) -> None:
        for slot in list(self._waiting):
            assert slot.provider is not None
            task = self._first_ready(now, slot.provider.id)
            if task is not None:
                self._hand(slot, task)

    def _end_idle(self, now: float) -> None:
        """End waiting workers that block a needed slot, or that can never get a task."""
        live = [s for s in self._slots.values() if s.provider is not None and not s.retiring]
        orphans = sum(
            1
            for task in self._pending
            if task._ready_at <= now
            and not self._claimed(task)
            and not any(_eligible(task, s) for s in live)
        )
        budget = orphans - sum(1 for s in self._slots.values() if s.retiring)
        for slot in list(self._waiting):
            assert slot.provider is not None
            if budget > 0 and self._at_capacity():
                budget -= 1
                self._end_iteration(slot)
            elif (
                self._input_done
                and self._pull is None
                and not any(slot.provider.id not in t._excluded for t in self._pending)
            ):
                self._end_iteration(slot)

    def _maybe_pull(self, now: float) -> None:
        if self._input_done or self._pull is not None:
            return
        if len(self._outcomes) >= self._max_workers:
            return
        if self._waiting or (not self._at_capacity() and self._unclaimed_ready(now) is None):
            self._pull = asyncio.create_task(self._pull_one(), name="workgen input")
            # A callback, not a `finally`: a task cancelled before it first
            # ran never runs its body.
            self._pull.add_done_callback(self._pull_ended)

    def _start_workers(self, now: float) -> None:
        while (task := self._unclaimed_ready(now)) is not None:
            idle = next(
                (
                    s
                    for s in self._slots.values()
                    if s.provider is None and s.intended is None and s.exclude <= task._excluded
                ),
                None,
            )
            if idle is not None:
                idle.intended = task
            elif self._at_capacity():
                return
            else:
                self._start_worker(task)

    def _drop_unneeded(self) -> None:
        """Stop acquiring providers that no task will need."""
        if not self._input_done or self._pull is not None:
            return
        for slot in self._slots.values():
            if slot.provider is None and slot.intended is None and not slot.retiring:
                slot.retiring = True
                if slot.driver is not None:
                    slot.driver.cancel()

    def _arm_backoff(self, now: float) -> None:
        later = [t._ready_at for t in self._pending if t._ready_at > now]
        if not later:
            return
        at = min(later)
        if self._backoff_timer is not None and self._backoff_at <= at:
            return
        if self._backoff_timer is not None:
            self._backoff_timer.cancel()
        self._backoff_at = at
        self._backoff_timer = self._loop.call_at(at, self._on_backoff)

    def _on_backoff(self) -> None:
        self._backoff_timer = None
        self._schedule()

    def _at_capacity(self) -> bool:
        return len(self._slots) >= self._max_workers

    def _first_ready(self, now: float, provider_id: str) -> Task[D, R] | None:
        for task in self._pending:
            if task._ready_at <= now and provider_id not in task._excluded:
                return task
        return None

    def _claimed(self, task: Task[D, R]) -> bool:
        return any(s.intended is task for s in self._slots.values())

    def _unclaimed_ready(self, now: float) -> Task[D, R] | None:
        for task in self._pending:
            if task._ready_at <= now and not self._claimed(task):
                return task
        return None

    def _hand(self, slot: _Slot, task: Task[D, R]) -> None:
        assert slot.provider is not None and slot.waiter is not None
        self._pending.remove(task)
        self._unclaim(task)
        attempt = task._start(self, slot.provider.id)
        slot.held.append(task)
        self._holders[task] = slot
        self._events.emit(TaskStarted(attempt), task_id=task.id, provider_id=slot.provider.id)
        self._waiting.remove(slot)
        waiter, slot.waiter = slot.waiter, None
        waiter.set_result(task)

    def _unclaim(self, task: Task[D, R]) -> None:
        for slot in self._slots.values():
            if slot.intended is task:
                slot.intended = None
                # A provider sought outside this task's exclusions may never
                # come; a worker for any task may still be useful.
                if slot.provider is None and slot.exclude and slot.driver is not None:
                    slot.driver.cancel()

    def _end_iteration(self, slot: _Slot) -> None:
        slot.retiring = True
        self._waiting.remove(slot)
        waiter, slot.waiter = slot.waiter, None
        if waiter is not None:
            waiter.set_result(None)

    # --- input -------------------------------------------------------------------

    async def _pull_one(self) -> None:
        try:
            if self._async_input is not None:
                item: object = await anext(self._async_input)
            else:
                assert self._sync_input is not None
                item = next(self._sync_input)
        except (StopIteration, StopAsyncIteration):
            self._input_done = True
        except Exception as exc:
            logger.warning("the task source raised; no more tasks are read: %r", exc)
            self._input_done = True
            self._fatal = self._fatal or exc
        else:
            self._admit(item)

    def _pull_ended(self, pull: "asyncio.Task[None]") -> None:
        if self._pull is pull:
            self._pull = None
        self._schedule()

    def _admit(self, item: object) -> None:
        if not isinstance(item, Task):
            self._input_done = True
            self._fatal = self._fatal or TypeError(
                f"execute_tasks takes Task objects, the source gave {type(item).__name__}"
            )
            return
        task: Task[D, R] = item
        if task.state is not TaskState.WAITING or task.attempts or task.id in self._active_ids:
            self._input_done = True
            self._fatal = self._fatal or ValueError(
                f"task {task.id} was given twice, or has run before: make a new Task"
            )
            return
        self._active_ids.add(task.id)
        self._pending.append(task)

    # --- workers -----------------------------------------------------------------

    def _start_worker(self, task: Task[D, R]) -> None:
        slot = _Slot(next(self._numbers), exclude=task.excluded, intended=task)
        self._slots[slot.number] = slot
        slot.driver = asyncio.create_task(self._run_slot(slot), name=f"workgen {slot.id}")
        slot.driver.add_done_callback(lambda _: self._slot_ended(slot))

    def _slot_ended(self, slot: _Slot) -> None:
        del self._slots[slot.number]
        self._schedule()

    async def _run_slot(self, slot: _Slot) -> None:
        try:
            provider = await self._market.acquire(slot.exclude)
        except NoProviderAvailableError as exc:
            self._no_provider(slot, exc)
            return
        except Exception as exc:
            logger.error("the market failed to provide a provider: %r", exc)
            self._fatal = self._fatal or exc
            self._close(exc)
            return
        slot.provider = provider
        await self._work(slot, provider)

    async def _work(self, slot: _Slot, provider: Provider) -> None:
        self._events.emit(WorkerStarted(provider.name), provider_id=provider.id)
        ctx = WorkContext(
            provider, worker_id=slot.id, script_timeout=self._script_timeout, held=slot.held
        )
        error: BaseException | None = None
        crash: Exception | None = None
        try:
            await self._drive(ctx, slot)
        except Exception as exc:
            error = crash = exc
            logger.warning("worker %s on provider %s crashed: %r", slot.id, provider.id, exc)
        except BaseException as exc:
            error = self._closing or exc
            raise
        finally:
            for task in list(slot.held):
                self._attempt_failed(
                    task,
                    error
                    or TaskNotSettledError(
                        f"the worker on provider {provider.id} ended without accepting"
                        f" or rejecting task {task.id}"
                    ),
                )
            self._events.emit(
                WorkerFinished(None if error is None else _describe(error)),
                provider_id=provider.id,
            )
            try:
                await self._market.release(provider, crash)
            except Exception:
                logger.exception("the market failed to take provider %s back", provider.id)

    async def _drive(self, ctx: WorkContext, slot: _Slot) -> None:
        """The `yield script` protocol: run what the worker yields, send back results or errors."""
        generator = self._worker(ctx, _TaskIterator(self, slot))
        if not hasattr(generator, "asend"):
            raise TypeError("the worker must be an async generator function (async def with yield)")
        try:
            results: list[Any] | None = None
            error: BaseException | None = None
            while True:
                try:
                    if error is not None:
                        item: object = await generator.athrow(error)
                    elif results is not None:
                        item = await generator.asend(results)
                    else:
                        item = await anext(generator)
                except StopAsyncIteration:
                    return
                results, error = None, None
                if not isinstance(item, Script):
                    error = ScriptUsageError(
                        f"a worker yields Script objects, not {type(item).__name__}"
                    )
                elif item.ctx is not ctx:
                    error = ScriptUsageError(f"script {item.id} belongs to another worker")
                elif item.sent:
                    error = ScriptUsageError(f"script {item.id} was yielded before: make a new one")
                else:
                    item._mark_sent()
                    try:
                        results = await run_script(item, ctx.provider, self._events)
                    except BatchError as exc:
                        error = exc
        finally:
            await generator.aclose()

    async def _next_task(self, slot: _Slot) -> Task[D, R] | None:
        if slot.retiring or self._closing is not None:
            return None
        slot.intended = None
        waiter: asyncio.Future[Task[Any, Any] | None] = self._loop.create_future()
        slot.waiter = waiter
        self._waiting.append(slot)
        self._schedule()
        try:
            return await waiter
        finally:
            if slot.waiter is waiter:
                slot.waiter = None
                self._waiting.remove(slot)

    def _no_provider(self, slot: _Slot, error: NoProviderAvailableError) -> None:
        if not slot.exclude:
            # No provider at all: tasks not yet started can never run.
            self._fatal = self._fatal or error
            self._input_done = True
            while self._pending:
                self._fail(self._pending.popleft(), error)
            return
        task = slot.intended
        if task is None or task not in self._pending:
            return
        self._pending.remove(task)
        last = task.attempts[-1].error if task.attempts else None
        self._fail(
            task,
            last or error,
            f"task {task.id} failed on {', '.join(sorted(task.excluded))} and no other"
            f" provider is available ({error}); last error: {last}",
        )

    # --- settling tasks (the Task's `_Settler`) --------------------------------------

    def accept(self, task: Task[Any, Any], result: Any) -> None:
        slot = self._release_hold(task)
        attempt = task._end_attempt(None)
        task._accept(result)
        self._active_ids.discard(task.id)
        self._events.emit(TaskAccepted(attempt), task_id=task.id, provider_id=_pid(slot))
        self._finish(task)

    def reject(self, task: Task[Any, Any], reason: str, retry: bool) -> None:
        if retry:
            self._attempt_failed(task, TaskRejectedError(reason), reason=reason)
            return
        slot = self._release_hold(task)
        error = TaskRejectedError(reason)
        attempt = task._end_attempt(error)
        self._events.emit(
            TaskRejected(attempt, reason, False), task_id=task.id, provider_id=_pid(slot)
        )
        self._fail(task, error, f"task {task.id} was rejected: {reason}")

    def _attempt_failed(
        self, task: Task[D, R], error: BaseException, *, reason: str | None = None
    ) -> None:
        slot = self._release_hold(task)
        attempt = task._end_attempt(error)
        retry = self._closing is None and attempt < self._retry.max_attempts
        self._events.emit(
            TaskRejected(attempt, reason or _describe(error), retry),
            task_id=task.id,
            provider_id=_pid(slot),
        )
        if self._closing is not None:
            self._fail(task, self._closing)
        elif not retry:
            self._fail(
                task,
                error,
                f"task {task.id} failed after {attempt} attempt(s); last error: {_describe(error)}",
            )
        else:
            delay = self._retry.delay(attempt)
            task._wait(self._loop.time() + delay)
            self._pending.appendleft(task)
            self._events.emit(
                TaskRetried(attempt + 1, delay, tuple(sorted(task.excluded))), task_id=task.id
            )
            self._schedule()

    def _release_hold(self, task: Task[Any, Any]) -> _Slot:
        slot = self._holders.pop(task)
        slot.held.remove(task)
        return slot

    def _fail(self, task: Task[D, R], cause: BaseException, message: str | None = None) -> None:
        error = TaskFailedError(
            message or f"task {task.id} did not end: {_describe(cause)}",
            task_id=task.id,
            attempts=len(task.attempts),
        )
        error.__cause__ = cause
        task._fail(error)
        self._active_ids.discard(task.id)
        self._events.emit(TaskFailed(len(task.attempts), str(error)), task_id=task.id)
        self._finish(task)

    def _finish(self, task: Task[D, R]) -> None:
        self._outcomes.append(task)
        self._wake_consumer()
        self._schedule()

    def _wake_consumer(self) -> None:
        if self._consumer is not None and not self._consumer.done():
            self._consumer.set_result(None)


def _eligible(task: Task[Any, Any], slot: _Slot) -> bool:
    return slot.provider is not None and slot.provider.id not in task._excluded


def _pid(slot: _Slot) -> str | None:
    return None if slot.provider is None else slot.provider.id


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


__all__ = ["DEFAULT_RETRY", "Job", "TaskSource", "Worker", "execute_tasks"]
