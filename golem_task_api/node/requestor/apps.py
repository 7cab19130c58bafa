"""Each app's RequestorApp process: started once, shared by the app's tasks,
restarted on the same work dir if it dies, shut down when no task needs it.

The app keeps its task state on disk (the contract), so a restart loses
nothing but the calls in flight; `call` retries those on the new process.
Each process's group is recorded under the node's `run/` dir: after a node
crash the next node kills a requestor app it left behind before starting a
new one on the same dir.
"""

import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from golem_task_api.client import LocalProcessService, RequestorAppClient, ShutdownException
from golem_task_api.client.process_service import ProcessService
from golem_task_api.client.service import TaskApiService
from golem_task_api.errors import Unavailable
from golem_task_api.node.compute.process import kill_recorded_group, record_process_group
from golem_task_api.node.envs.base import AppSpec, default_log_path
from golem_task_api.node.envs.local import LOOPBACK
from golem_task_api.node.requestor.events import AppRestarted, NodeEvents

logger = logging.getLogger(__name__)

T = TypeVar("T")

LAUNCHER = "golem_task_api.node.requestor.launcher"
# A death is noticed within this long of the RPC that saw it fail.
EXIT_WAIT = 5.0
MAX_RESTARTS = 5
RESTART_WINDOW = 300.0

ServiceFactory = Callable[[AppSpec, Path, Path | None], TaskApiService]
"""(app, requestor work dir, log path or None) -> a service not started yet."""


def local_requestor_service(app: AppSpec, work_dir: Path, log_path: Path | None) -> TaskApiService:
    """The default: a local process on 127.0.0.1 that dies with the node (see `launcher`)."""
    return LocalProcessService(
        [sys.executable, "-m", LAUNCHER, app.module], work_dir,
        host=LOOPBACK, env=app.env, cwd=app.cwd, log_path=log_path,
    )


class AppKeepsDying(Unavailable):
    """The requestor app died more often than a restart can help."""


class RequestorApp:
    """One app's requestor process and its client. Use `call` for every RPC."""

    def __init__(
        self,
        spec: AppSpec,
        work_dir: Path,
        *,
        events: NodeEvents,
        factory: ServiceFactory = local_requestor_service,
        log_dir: Path | None = None,
        record_path: Path | None = None,
        max_restarts: int = MAX_RESTARTS,
        restart_window: float = RESTART_WINDOW,
    ) -> None:
        self.spec = spec
        self.work_dir = Path(work_dir)
        self._events = events
        self._factory = factory
        self._log_dir = log_dir
        self._record_path = record_path
        self._max_restarts = max_restarts
        self._restart_window = restart_window
        self._client: RequestorAppClient | None = None
        self._lock = asyncio.Lock()
        self._restarts: deque[float] = deque()
        self._users = 0
        self.starts = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def running(self) -> bool:
        return self._client is not None and self._client.service.running()

    @property
    def pid(self) -> int | None:
        service = None if self._client is None else self._client.service
        pid = getattr(service, "pid", None)
        return pid if isinstance(pid, int) else None

    async def client(self) -> RequestorAppClient:
        """The client of the running app, started first if need be."""
        client = self._client
        if client is not None and not client.shut_down:
            return client
        async with self._lock:
            if self._client is None or self._client.shut_down:
                self._client = await self._start()
            return self._client

    async def _start(self) -> RequestorAppClient:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self._record_path is not None:
            kill_recorded_group(self._record_path)
        log_path = default_log_path(self._log_dir, self.spec, "requestor")
        service = self._factory(self.spec, self.work_dir, log_path)
        if isinstance(service, ProcessService):
            # Recorded as soon as it exists: a node killed while the app
            # starts must not leave it running unknown to the next node.
            service.on_launch(self._record)
        client = await RequestorAppClient.create(service, port=0)
        self.starts += 1
        pid = getattr(service, "pid", None)
        if not isinstance(service, ProcessService) and isinstance(pid, int):
            self._record(pid)
        logger.info("requestor app %s started (pid %s)", self.name, pid)
        return client

    def _record(self, pid: int) -> None:
        if self._record_path is not None:
            self._record_path.parent.mkdir(parents=True, exist_ok=True)
            record_process_group(self._record_path, pid)

    async def call(self, fn: Callable[[RequestorAppClient], Awaitable[T]]) -> T:
        """`fn(client)`; if the app died meanwhile, again on a restarted app."""
        while True:
            client = await self.client()
            try:
                return await fn(client)
            except (Unavailable, ShutdownException) as exc:
                if not await self.recover(client, exc):
                    raise

    async def recover(self, client: RequestorAppClient, error: BaseException) -> bool:
        """After `error` from `client`: whether the app died (and was restarted) and
        the call may be tried again. Raises `AppKeepsDying` past the restart budget."""
        if isinstance(error, ShutdownException) and self._client is not client:
            return True  # a restart by another call shut this client down
        if not await self._exited(client):
            return False
        async with self._lock:
            if self._client is not client:
                return True  # another call restarted it already
            tail = _output_tail(client.service)
            self._client = None
            await client.shutdown()
            now = time.monotonic()
            while self._restarts and self._restarts[0] < now - self._restart_window:
                self._restarts.popleft()
            if len(self._restarts) >= self._max_restarts:
                raise AppKeepsDying(
                    f"the requestor app {self.name} died {len(self._restarts) + 1} times in"
                    f" {self._restart_window:g} s; its last output:\n{tail}"
                ) from error
            self._restarts.append(now)
            reason = f"{type(error).__name__}: {error}"
            logger.warning("requestor app %s died (%s): restarting it", self.name, reason)
            self._events.emit(AppRestarted(self.name, reason))
            self._client = await self._start()
            return True

    @staticmethod
    async def _exited(client: RequestorAppClient) -> bool:
        # Also when it is known to be dead: the wait is what reaps its group
        # and closes its log (a client's shutdown skips a dead service).
        try:
            await asyncio.wait_for(
                asyncio.shield(client.service.wait_until_shutdown_complete()), EXIT_WAIT
            )
        except TimeoutError:
            return False
        return True

    # --- sharing between tasks ----------------------------------------------------

    def retain(self) -> None:
        self._users += 1

    async def release(self) -> None:
        """A task is done with the app; the last one shuts it down."""
        self._users = max(0, self._users - 1)
        if self._users == 0:
            await self.shutdown()

    async def shutdown(self) -> None:
        async with self._lock:
            client, self._client = self._client, None
        if client is not None:
            await client.shutdown()
            logger.info("requestor app %s stopped", self.name)
        if self._record_path is not None:
            with contextlib.suppress(OSError):
                self._record_path.unlink()


def _output_tail(service: TaskApiService) -> str:
    tail = getattr(service, "output_tail", None)
    if callable(tail):
        text = str(tail()).strip()
        return text[-2000:] or "(none)"
    return "(not captured)"


class RequestorApps:
    """The requestor apps of one node, by app key."""

    def __init__(
        self,
        apps_dir: Path,
        run_dir: Path,
        *,
        events: NodeEvents,
        factory: ServiceFactory = local_requestor_service,
        log_dir: Path | None = None,
    ) -> None:
        self._apps_dir = Path(apps_dir)
        self._run_dir = Path(run_dir)
        self._events = events
        self._factory = factory
        self._log_dir = log_dir
        self._apps: dict[str, RequestorApp] = {}

    def get(self, spec: AppSpec) -> RequestorApp:
        app = self._apps.get(spec.name)
        if app is None:
            app = self._apps[spec.name] = RequestorApp(
                spec,
                self._apps_dir / spec.name,
                events=self._events,
                factory=self._factory,
                log_dir=self._log_dir,
                record_path=self._run_dir / f"requestor-{spec.name}.json",
            )
        return app

    def find(self, name: str) -> RequestorApp | None:
        """The app of that name, if a task used it."""
        return self._apps.get(name)

    def kill_leftovers(self) -> list[str]:
        """Kill requestor apps a crashed node left running (before any is started)."""
        killed = []
        for path in sorted(self._run_dir.glob("requestor-*.json")):
            if kill_recorded_group(path):
                killed.append(path.stem.removeprefix("requestor-"))
            with contextlib.suppress(OSError):
                path.unlink()
        return killed

    async def aclose(self) -> None:
        for app in list(self._apps.values()):
            await app.shutdown()


__all__ = [
    "LAUNCHER",
    "AppKeepsDying",
    "RequestorApp",
    "RequestorApps",
    "ServiceFactory",
    "local_requestor_service",
]
