"""The RequestorApp service: many tasks, concurrent calls, long-running."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

from golem_task_api import convert
from golem_task_api.dirutils import RequestorDir, RequestorTaskDir
from golem_task_api.enums import VerifyResult
from golem_task_api.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from golem_task_api.handlers import AppLifecycleHandler, RequestorAppHandler
from golem_task_api.progress import ProgressTracker, ProgressValue, Throttle
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.server.app_server import (
    DEFAULT_GRACE,
    DEFAULT_HOST,
    MAX_MESSAGE_BYTES,
    AppServer,
)
from golem_task_api.server.registration import register_servicer
from golem_task_api.server.rpc import SHUTTING_DOWN, CallGate, rpc, rpc_stream
from golem_task_api.server.task_records import SETTLED, SubtaskState, TaskRecord, TaskRecords
from golem_task_api.validation import check_id, parse_params, resolve_inside

Reply = TypeVar("Reply", pb.CreateTaskReply, pb.NextSubtaskReply)

class _Reporting:
    """Binds report() to a task's tracker; keeps the value it ends with."""

    __slots__ = ("_bound", "_record", "_tracker")

    def __init__(self, tracker: ProgressTracker, record: TaskRecord) -> None:
        self._tracker = tracker
        self._record = record
        self._bound = tracker.bind()

    def __enter__(self) -> None:
        self._bound.__enter__()

    def __exit__(self, *exc_info: object) -> None:
        self._bound.__exit__(None, None, None)
        if not self._tracker.finished:
            self._record.set_progress(self._tracker.value)


# Ids are checked once and their dirs kept, up to this many tasks.
_TASK_DIR_CACHE = 100_000

def fits(reply: Reply) -> Reply:
    """`reply`, if gRPC can send it: checked before its effect is recorded."""
    size = reply.ByteSize()
    if size > MAX_MESSAGE_BYTES:
        raise ResourceExhausted(
            f"the app's {type(reply).__name__} is {size} bytes, over the"
            f" {MAX_MESSAGE_BYTES}-byte message limit"
        )
    return reply


_VERDICT_STATE = {
    VerifyResult.SUCCESS: SubtaskState.VERIFIED,
    VerifyResult.FAILURE: SubtaskState.FAILED,
}


class RequestorAppServicer:
    def __init__(
        self,
        work_dir: RequestorDir,
        handler: RequestorAppHandler,
        lifecycle: AppLifecycleHandler,
        gate: CallGate,
    ) -> None:
        self._work_dir = work_dir
        self._handler = handler
        self._lifecycle = lifecycle
        self._records = TaskRecords(work_dir)
        self.gate = gate
        # What the app reports for each task (report() in its handlers).
        self._progress: dict[str, ProgressTracker] = {}
        self._task_dirs: dict[str, RequestorTaskDir] = {}
        # Set when the server stops: ends the watch streams.
        self._stopping = asyncio.Event()

    def _task_dir(self, task_id: str) -> RequestorTaskDir:
        """The (checked) dir of a task, made once per task id: on the hot path."""
        task_dir = self._task_dirs.get(task_id)
        if task_dir is None:
            task_dir = self._work_dir.task_dir(task_id)
            if len(self._task_dirs) < _TASK_DIR_CACHE:
                self._task_dirs[task_id] = task_dir
        return task_dir

    def release_handler(self) -> None:
        self._handler = None  # type: ignore[assignment]

    def close(self) -> None:
        self._records.files.close_all()

    def _tracker(self, record: TaskRecord) -> ProgressTracker:
        tracker = self._progress.get(record.task_id)
        if tracker is None:
            # After a restart: from the last value the app reported.
            tracker = ProgressTracker(record.progress or ProgressValue())
            self._progress[record.task_id] = tracker
            if record.aborted:
                tracker.cancel("the task was aborted")
            elif record.completed:
                tracker.succeed()
        return tracker

    def _reporting(self, record: TaskRecord) -> "_Reporting":
        """Around a handler call: report() goes to the task; what it reported is kept."""
        return _Reporting(self._tracker(record), record)

    async def _complete_if_done(self, record: TaskRecord, task_dir: RequestorTaskDir) -> bool:
        """Nothing pending, nothing in flight: the task is complete. Returns pending."""
        with self._reporting(record):
            pending = await self._handler.has_pending_subtasks(task_dir)
        if not pending and not record.in_flight and not record.aborted:
            record.set_completed(True)
            self._tracker(record).succeed()
        return pending

    def _reopen(self, record: TaskRecord) -> None:
        """Watchers of the finished task saw its end; new ones follow the
        work that is to come, from the value the task has."""
        record.set_completed(False)
        self._progress.pop(record.task_id, None)

    def end_watches(self) -> None:
        """Streams end when the server stops (UNAVAILABLE): they do not hold it up."""
        self._stopping.set()

    @rpc
    async def CreateTask(self, request: pb.CreateTaskRequest, context: Any) -> pb.CreateTaskReply:
        task_dir = self._task_dir(request.task_id)
        if request.max_subtasks_count < 1:
            raise InvalidArgument(
                f"max_subtasks_count must be at least 1, got {request.max_subtasks_count}"
            )
        params = parse_params("task_params_json", request.task_params_json)
        with self._records.creating(request.task_id):
            # The node prepares the dir; do it here too for callers that don't.
            task_dir.prepare(exist_ok=True)
            tracker = self._progress[request.task_id] = ProgressTracker()
            with tracker.bind():
                task = await self._handler.create_task(
                    task_dir, request.max_subtasks_count, params
                )
            # Inside: a task whose reply cannot be made or sent is not created.
            reply = fits(convert.task_to_reply(task))
        self._records.get(request.task_id).set_progress(tracker.value)
        return reply

    @rpc
    async def NextSubtask(
        self, request: pb.NextSubtaskRequest, context: Any
    ) -> pb.NextSubtaskReply:
        task_dir = self._task_dir(request.task_id)
        subtask_id = check_id("subtask_id", request.subtask_id)
        record = self._records.get(request.task_id)
        record.check_active()
        if subtask_id in record.subtasks:
            raise AlreadyExists(
                f"subtask id {subtask_id!r} was already used in task {request.task_id!r}"
            )
        with record.hold(subtask_id, "NextSubtask"):
            with self._reporting(record):
                subtask = await self._handler.next_subtask(
                    task_dir, subtask_id, request.opaque_node_id
                )
            reply = fits(convert.subtask_to_reply(subtask))
            if subtask is not None:
                for resource in subtask.resources:
                    resolve_inside(task_dir.subtask_inputs_dir, resource, "resource")
                record.set_subtask(subtask_id, SubtaskState.ISSUED)
                if record.completed:  # the app found more work after all
                    self._reopen(record)
        return reply

    @rpc
    async def Verify(self, request: pb.VerifyRequest, context: Any) -> pb.VerifyReply:
        task_dir = self._task_dir(request.task_id)
        subtask_id = check_id("subtask_id", request.subtask_id)
        record = self._records.get(request.task_id)
        record.check_active()
        state = record.subtask(subtask_id)
        if state is not SubtaskState.ISSUED:
            raise FailedPrecondition(
                f"subtask {subtask_id!r} of task {request.task_id!r} is {state.value}:"
                " it cannot be verified"
            )
        with record.hold(subtask_id, "Verify"):
            with self._reporting(record):
                result, reason = await self._handler.verify(task_dir, subtask_id)
            reply = convert.verify_to_reply(result, reason)
            new_state = _VERDICT_STATE.get(result)
            if new_state is not None:
                record.set_subtask(subtask_id, new_state)
        # Completion is noticed at the next HasPendingSubtasks, which a node
        # asks right after a verdict: no extra handler call here.
        return reply

    @rpc
    async def DiscardSubtasks(
        self, request: pb.DiscardSubtasksRequest, context: Any
    ) -> pb.DiscardSubtasksReply:
        task_dir = self._task_dir(request.task_id)
        record = self._records.get(request.task_id)
        record.check_active()
        subtask_ids = [check_id("subtask_id", s) for s in request.subtask_ids]
        for subtask_id in subtask_ids:
            record.subtask(subtask_id)
        if record.completed and subtask_ids:
            # Before the call: what the app reports while it discards belongs
            # to the reopened task (it completes again at HasPendingSubtasks
            # if nothing was discarded after all).
            self._reopen(record)
        with self._reporting(record):
            discarded = await self._handler.discard_subtasks(task_dir, subtask_ids)
        reply = pb.DiscardSubtasksReply(discarded_subtask_ids=discarded)
        for subtask_id in discarded:
            if subtask_id in record.subtasks:
                record.set_subtask(subtask_id, SubtaskState.DISCARDED)
        return reply

    @rpc
    async def RunBenchmark(
        self, request: pb.RunBenchmarkRequest, context: Any
    ) -> pb.RunBenchmarkReply:
        score = await self._handler.run_benchmark(Path(self._work_dir))
        return pb.RunBenchmarkReply(score=score)

    @rpc
    async def HasPendingSubtasks(
        self, request: pb.HasPendingSubtasksRequest, context: Any
    ) -> pb.HasPendingSubtasksReply:
        task_dir = self._task_dir(request.task_id)
        record = self._records.get(request.task_id)
        # An aborted task has nothing left to hand out.
        pending = not record.aborted and await self._complete_if_done(record, task_dir)
        return pb.HasPendingSubtasksReply(has_pending_subtasks=pending)

    @rpc
    async def AbortTask(self, request: pb.AbortTaskRequest, context: Any) -> pb.AbortTaskReply:
        task_dir = self._task_dir(request.task_id)
        record = self._records.get(request.task_id)
        if not record.aborted:
            with self._reporting(record):
                await self._handler.abort_task(task_dir)
            record.set_aborted()
            self._tracker(record).cancel("the task was aborted")
        return pb.AbortTaskReply()

    @rpc
    async def AbortSubtask(
        self, request: pb.AbortSubtaskRequest, context: Any
    ) -> pb.AbortSubtaskReply:
        task_dir = self._task_dir(request.task_id)
        subtask_id = check_id("subtask_id", request.subtask_id)
        record = self._records.get(request.task_id)
        state = record.subtask(subtask_id)
        if record.aborted or state in (SubtaskState.ABORTED, SubtaskState.DISCARDED):
            return pb.AbortSubtaskReply()
        if state is SubtaskState.VERIFIED:
            raise FailedPrecondition(
                f"subtask {subtask_id!r} of task {request.task_id!r} is verified:"
                " use DiscardSubtasks to compute it again"
            )
        with self._reporting(record):
            await self._handler.abort_subtask(task_dir, subtask_id)
        if state not in SETTLED:
            record.set_subtask(subtask_id, SubtaskState.ABORTED)
        return pb.AbortSubtaskReply()

    @rpc
    async def Shutdown(self, request: pb.ShutdownRequest, context: Any) -> pb.ShutdownReply:
        # After the reply is on its way, not before.
        asyncio.get_running_loop().call_soon(self._lifecycle.request_shutdown)
        return pb.ShutdownReply()

    @rpc_stream
    async def WatchTaskProgress(
        self, request: pb.WatchTaskProgressRequest, context: Any
    ) -> AsyncIterator[pb.ProgressEvent]:
        record = self._records.get(request.task_id)
        throttle = Throttle.from_proto(request.progress if request.HasField("progress") else None)
        events = self._tracker(record).subscribe(throttle)
        stopping = asyncio.ensure_future(self._stopping.wait())
        next_event: asyncio.Future[pb.ProgressEvent] | None = None
        try:
            while True:
                # Each next event raced with the server's stop: a cancelled
                # stream would end without a status only after the grace.
                next_event = asyncio.ensure_future(anext(events))
                await asyncio.wait((next_event, stopping), return_when=asyncio.FIRST_COMPLETED)
                if not next_event.done():
                    raise Unavailable(SHUTTING_DOWN)
                try:
                    event = next_event.result()
                except StopAsyncIteration:
                    return
                yield event
        finally:
            stopping.cancel()
            if next_event is not None and not next_event.done():
                next_event.cancel()
                await asyncio.wait((next_event,))  # the generator must be idle to close
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()


class RequestorAppServer(AppServer):
    """The long-running requestor server of an app (one per app, many tasks)."""

    service_name = "golem_task_api.RequestorApp"

    def __init__(
        self,
        work_dir: Path,
        port: int,
        handler: RequestorAppHandler,
        lifecycle: AppLifecycleHandler,
        *,
        host: str = DEFAULT_HOST,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        super().__init__(work_dir, port, lifecycle, host=host, grace=grace)
        self.servicer = RequestorAppServicer(RequestorDir(work_dir), handler, lifecycle, self.gate)

    def _add_servicer(self, server: Any) -> None:
        register_servicer(server, self.servicer, pb.DESCRIPTOR.services_by_name["RequestorApp"], pb)

    def _before_stop(self) -> None:
        self.servicer.end_watches()

    def _after_stop(self) -> None:
        self.servicer.close()


__all__ = ["RequestorAppServer", "RequestorAppServicer"]
