"""Run an app's server in a thread of the test process, on its own loop."""

import asyncio
import contextlib
import copy
import threading
from pathlib import Path
from typing import TypeVar

from golem_task_api.client.service import TaskApiService
from golem_task_api.entrypoint import main, parse_command
from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler, RequestorAppHandler
from golem_task_api.server import AppServer

T = TypeVar("T")


class InlineTaskApiService(TaskApiService):
    """A TaskApiService that runs the server off the caller's event loop.

    Each start runs a fresh server in a new thread with its own event loop;
    handlers are shared with the test (so it can inspect them), a lifecycle
    handler is copied per start (as a forked process would have it). The
    server listens on a free loopback port unless `use_requested_port`: tests
    that run side by side never collide on 50005/50006.
    """

    def __init__(
        self,
        work_dir: Path,
        requestor_handler: RequestorAppHandler | None = None,
        requestor_lifecycle_handler: AppLifecycleHandler | None = None,
        provider_handler: ProviderAppHandler | None = None,
        provider_lifecycle_handler: AppLifecycleHandler | None = None,
        *,
        host: str = "127.0.0.1",
        use_requested_port: bool = False,
    ) -> None:
        self._work_dir = Path(work_dir)
        self._requestor_handler = requestor_handler
        self._requestor_lifecycle = requestor_lifecycle_handler
        self._provider_handler = provider_handler
        self._provider_lifecycle = provider_lifecycle_handler
        self._host = host
        self._use_requested_port = use_requested_port
        self._thread: threading.Thread | None = None
        self._server: AppServer | None = None
        self._server_loop: asyncio.AbstractEventLoop | None = None
        self._finished: asyncio.Future[None] | None = None

    @property
    def server(self) -> AppServer | None:
        return self._server

    def running(self) -> bool:
        # Not the thread's liveness: it outlives the server by the moment it
        # takes to return, and a restart must not be refused meanwhile.
        return self._finished is not None and not self._finished.done()

    async def start(self, command: str, port: int) -> tuple[str, int]:
        if self.running():
            raise RuntimeError("this service already runs a server")
        role, port, _extra = parse_command(command.split())
        if not self._use_requested_port:
            port = 0
        caller = asyncio.get_running_loop()
        started: asyncio.Future[int] = caller.create_future()
        finished: asyncio.Future[None] = caller.create_future()
        self._finished = finished

        def on_started(server: AppServer) -> None:
            self._server = server
            caller.call_soon_threadsafe(settle, started, server.port, None)

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._server_loop = loop
            error: BaseException | None = None
            try:
                loop.run_until_complete(
                    main(
                        self._work_dir,
                        [role, str(port)],
                        self._requestor_handler,
                        _fresh(self._requestor_lifecycle),
                        self._provider_handler,
                        _fresh(self._provider_lifecycle),
                        host=self._host,
                        announce=False,
                        on_started=on_started,
                    )
                )
            except BaseException as exc:
                error = exc
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
                if error is not None:
                    caller.call_soon_threadsafe(settle, started, 0, error)
                caller.call_soon_threadsafe(settle, finished, None, error)

        self._thread = threading.Thread(target=run, name=f"inline-{role}-app", daemon=True)
        self._thread.start()
        return self._host, await started

    async def stop(self) -> None:
        server, loop = self._server, self._server_loop
        if server is not None and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(server.lifecycle.request_shutdown)

    async def wait_until_shutdown_complete(self) -> None:
        if self._finished is not None:
            await asyncio.shield(self._finished)


def settle(future: "asyncio.Future[T]", result: T, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)


def _fresh(lifecycle: AppLifecycleHandler | None) -> AppLifecycleHandler | None:
    if lifecycle is None:
        return None
    fresh = copy.copy(lifecycle)
    AppLifecycleHandler.__init__(fresh)
    return fresh


__all__ = ["InlineTaskApiService"]
