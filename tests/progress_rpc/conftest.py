"""Fixtures of the progress tests at the gRPC level.

Real servers on 127.0.0.1 port 0: in-process through `InlineTaskApiService`
(their own thread and loop), or app processes through `LocalProcessService`.
They are reached through raw generated stubs, as a node built from the
protocol would reach them, or through our clients where the test is about
the client. Every server, channel and process a test starts is stopped in
the fixture's teardown, also when the test fails.
"""

import asyncio
import contextlib
import inspect
import json
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from golem_task_api.client import LocalProcessService
from golem_task_api.dirutils import ProviderDir, ProviderTaskDir
from golem_task_api.progress import ProgressValue, from_event, progress_args
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto import golem_task_api_pb2_grpc as pb_grpc
from golem_task_api.testutils import InlineTaskApiService
from tests.progress_rpc.progress_app import ProgressProvider
from tests.waiting import BOUND, bounded, poll

REPO_ROOT = Path(__file__).resolve().parents[2]
PROGRESS_APP = "tests.progress_rpc.progress_app"
LEGACY_APP = "tests.progress_rpc.legacy_app"
TASK_ID = "task-1"
OK = grpc.StatusCode.OK
State = pb.ProgressEvent.State
# An update interval no test lasts: only what is sent regardless of the
# throttle (first event, stage changes, flush, terminal) comes through.
NEVER = 3600.0


# -- requests and streams -------------------------------------------------------


def compute_request(
    params: dict[str, Any] | str | None = None,
    *,
    interval: float | None = None,
    step: float | None = None,
    subtask_id: str = "s1",
    task_id: str = TASK_ID,
) -> pb.ComputeWithProgressRequest:
    params_json = params if isinstance(params, str) else json.dumps(params or {})
    return pb.ComputeWithProgressRequest(
        compute=pb.ComputeRequest(
            task_id=task_id, subtask_id=subtask_id, subtask_params_json=params_json
        ),
        progress=progress_args(interval, step),
    )


@dataclass
class Outcome:
    """Everything one ComputeWithProgress (or WatchTaskProgress) stream gave."""

    progress: list[pb.ProgressEvent] = field(default_factory=list)
    results: list[pb.ComputeReply] = field(default_factory=list)
    # Every item in order: ("progress", event) or ("result", reply).
    items: list[tuple[str, Any]] = field(default_factory=list)
    code: grpc.StatusCode = OK
    details: str = ""

    @property
    def values(self) -> list[ProgressValue]:
        return [from_event(e) for e in self.progress]

    @property
    def states(self) -> list[str]:
        return [State.Name(e.state) for e in self.progress]

    @property
    def terminal(self) -> pb.ProgressEvent:
        return self.progress[-1]

    def add(self, message: Any) -> None:
        if isinstance(message, pb.ProgressEvent):
            self.progress.append(message)
            self.items.append(("progress", message))
        elif message.HasField("result"):
            self.results.append(message.result)
            self.items.append(("result", message.result))
        else:
            self.progress.append(message.progress)
            self.items.append(("progress", message.progress))


async def read_all(
    call: Any,
    on_item: Callable[[Outcome], Any] | None = None,
    *,
    timeout: float = BOUND,
    outcome: Outcome | None = None,
) -> Outcome:
    """Read a stream call to its end (bounded); `on_item(outcome)` after each item."""
    outcome = Outcome() if outcome is None else outcome

    async def run() -> None:
        try:
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    break
                outcome.add(message)
                if on_item is not None:
                    result = on_item(outcome)
                    if inspect.isawaitable(result):
                        await result
            outcome.code = await call.code()
            outcome.details = await call.details() or ""
        except grpc.aio.AioRpcError as exc:
            outcome.code, outcome.details = exc.code(), exc.details() or ""
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not call.cancelled() or (task is not None and task.cancelling()):
                raise
            # The call was cancelled here (Watch.cancel), not this reader.
            outcome.code, outcome.details = grpc.StatusCode.CANCELLED, "cancelled by the client"

    try:
        await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        raise AssertionError(
            f"the stream did not end within {timeout} s; it gave {outcome.values}"
        ) from None
    finally:
        call.cancel()
    return outcome


def assert_seq(outcome: Outcome) -> None:
    assert [e.seq for e in outcome.progress] == list(range(len(outcome.progress)))


def assert_terminal_once_last(outcome: Outcome) -> None:
    terminal = [i for i, e in enumerate(outcome.progress) if e.state >= State.SUCCEEDED]
    assert terminal == [len(outcome.progress) - 1], outcome.states


async def status_of(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return OK, ""


# -- providers ------------------------------------------------------------------


@pytest.fixture
def prov_task_dir(tmp_path: Path) -> ProviderTaskDir:
    task_dir = ProviderDir(tmp_path / "provider").task_dir(TASK_ID)
    task_dir.parent.mkdir()
    task_dir.prepare()
    return task_dir


@dataclass
class Provider:
    task_dir: ProviderTaskDir
    service: Any  # InlineTaskApiService or LocalProcessService
    port: int
    channel: Any
    stub: pb_grpc.ProviderAppStub
    handler: ProgressProvider | None = None

    def compute_with_progress(self, request: pb.ComputeWithProgressRequest) -> Any:
        return self.stub.ComputeWithProgress(request, timeout=BOUND)

    async def compute(self, params: dict[str, Any] | None = None, subtask_id: str = "s1") -> Any:
        return await self.stub.Compute(
            pb.ComputeRequest(
                task_id=TASK_ID, subtask_id=subtask_id, subtask_params_json=json.dumps(params or {})
            ),
            timeout=BOUND,
        )

    async def wait_exit(self, timeout: float = BOUND) -> None:
        await bounded(self.service.wait_until_shutdown_complete(), "the provider's exit", timeout)
        await poll(lambda: not self.service.running(), "the provider to stop running")


@pytest.fixture
async def inline_provider(prov_task_dir: ProviderTaskDir) -> AsyncIterator[Any]:
    """`await start(handler=None)` → a Provider served in a thread of this process."""
    started: list[Provider] = []

    async def start(handler: ProgressProvider | None = None) -> Provider:
        handler = handler or ProgressProvider()
        service = InlineTaskApiService(prov_task_dir, provider_handler=handler)
        _host, port = await service.start("provider 0", 0)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        provider = Provider(
            prov_task_dir, service, port, channel, pb_grpc.ProviderAppStub(channel), handler
        )
        started.append(provider)
        return provider

    try:
        yield start
    finally:
        for provider in started:
            await provider.service.stop()
            with contextlib.suppress(Exception):
                await bounded(provider.service.wait_until_shutdown_complete(), "provider exit")
            await provider.channel.close()


def kill_and_reap_later(services: list[LocalProcessService]) -> Callable[[], Awaitable[None]]:
    async def cleanup() -> None:
        for service in services:
            if service.pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(service.pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    await bounded(service.wait_until_shutdown_complete(), "process reaping")

    return cleanup


@pytest.fixture
async def process_provider(prov_task_dir: ProviderTaskDir) -> AsyncIterator[Any]:
    """`await start(app=PROGRESS_APP)` → a Provider app process on a free port.

    At teardown every process group is killed and every process reaped.
    """
    services: list[LocalProcessService] = []
    channels: list[Any] = []

    async def start(app: str = PROGRESS_APP) -> Provider:
        service = LocalProcessService(app, prov_task_dir, cwd=REPO_ROOT)
        services.append(service)
        _host, port = await service.start("provider 0", 0)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        return Provider(prov_task_dir, service, port, channel, pb_grpc.ProviderAppStub(channel))

    try:
        yield start
    finally:
        for channel in channels:
            await channel.close()
        await kill_and_reap_later(services)()


@pytest.fixture
async def processes() -> AsyncIterator[Callable[..., LocalProcessService]]:
    """`make(app, work_dir)` → a LocalProcessService killed and reaped at teardown."""
    services: list[LocalProcessService] = []

    def make(app: str, work_dir: Path) -> LocalProcessService:
        service = LocalProcessService(app, work_dir, cwd=REPO_ROOT)
        services.append(service)
        return service

    try:
        yield make
    finally:
        await kill_and_reap_later(services)()


# -- watching a task --------------------------------------------------------------


class Watch:
    """A WatchTaskProgress stream read in the background."""

    def __init__(self, stub: pb_grpc.RequestorAppStub, task_id: str, **throttle: Any) -> None:
        self._start(stub, pb.WatchTaskProgressRequest(
            task_id=task_id, progress=progress_args(**throttle)
        ))

    @classmethod
    def from_request(cls, stub: Any, request: pb.WatchTaskProgressRequest) -> "Watch":
        watch = cls.__new__(cls)
        watch._start(stub, request)
        return watch

    def _start(self, stub: Any, request: pb.WatchTaskProgressRequest) -> None:
        self.call = stub.WatchTaskProgress(request)
        self.outcome = Outcome()
        self._changed = asyncio.Event()
        self.task = asyncio.ensure_future(
            read_all(self.call, self._on_item, timeout=NEVER, outcome=self.outcome)
        )
        self.task.add_done_callback(lambda _: self._changed.set())

    def _on_item(self, outcome: Outcome) -> None:
        self._changed.set()

    @property
    def ended(self) -> bool:
        return self.task.done()

    @property
    def values(self) -> list[ProgressValue]:
        return self.outcome.values

    async def until(self, predicate: Callable[[ProgressValue], bool], what: str) -> ProgressValue:
        """The first value (seen so far or to come) for which `predicate` holds."""
        async def wait() -> ProgressValue:
            while True:
                self._changed.clear()
                for value in self.values:
                    if predicate(value):
                        return value
                if self.ended:
                    raise AssertionError(f"the watch ended before {what}: {self.values}")
                await self._changed.wait()

        return await bounded(wait(), f"{what} (seen: {self.values})")

    async def first(self) -> ProgressValue:
        return await self.until(lambda v: True, "the first event")

    async def end(self) -> Outcome:
        return await bounded(self.task, f"the end of the watch (seen: {self.values})")

    def cancel(self) -> None:
        self.call.cancel()
