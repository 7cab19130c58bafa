"""Starting a provider app for one request, and stopping it for good.

`ProviderServices` turns an app and a task dir into a `TaskApiService`: by
default through the node's environments (`golem_task_api.node.envs`: local
process, warm start, sandbox, Docker), the first one that can run the app for
the task's env id; or through any factory (tests plug in inline services).

`run_on_provider` starts the app, runs one request on its client, and
guarantees that when it returns or raises, the app's process group is gone,
also when it is cancelled (a timeout or a cancel of the execution): the app
then gets SIGTERM and, after the environment's grace period, SIGKILL, rather
than a Shutdown call that a hung app would never answer.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from golem_task_api.client.channel import CONNECTION_TIMEOUT
from golem_task_api.client.process_service import ProcessService
from golem_task_api.client.provider import ProviderAppClient
from golem_task_api.client.service import TaskApiService
from golem_task_api.node.compute.process import DEFAULT_TERM_GRACE
from golem_task_api.node.envs.base import AppSpec, Environment, pick_environment
from golem_task_api.node.envs.local import LocalEnvironment

logger = logging.getLogger(__name__)

T = TypeVar("T")

ServiceFactory = Callable[[AppSpec, Path, Path | None], TaskApiService]
"""(app, provider task dir, log path or None) -> a service not started yet."""


class ProviderServices:
    """How this node starts provider apps: environments, or a factory.

    Without either, one `LocalEnvironment` whose stop grace is
    `DEFAULT_TERM_GRACE` (a cancelled run is killed quickly).
    """

    def __init__(
        self,
        environments: Sequence[Environment] | None = None,
        *,
        factory: ServiceFactory | None = None,
    ) -> None:
        if environments is not None and factory is not None:
            raise ValueError("give environments or a service factory, not both")
        self._factory = factory
        if environments is None and factory is None:
            environments = [LocalEnvironment(stop_grace=DEFAULT_TERM_GRACE)]
        self.environments: tuple[Environment, ...] = tuple(environments or ())

    def env_ids(self) -> frozenset[str] | None:
        """The task env ids these environments run; None: whatever the factory does."""
        if self._factory is not None:
            return None
        return frozenset().union(*(env.env_ids() for env in self.environments))

    async def service(
        self, app: AppSpec, env_id: str, task_dir: Path, log_path: Path | None = None
    ) -> TaskApiService:
        """A provider service of `app` on `task_dir` for a task of `env_id`.

        Raises `NoEnvironment` (with every environment's reason) if none fits.
        """
        if self._factory is not None:
            return self._factory(app, task_dir, log_path)
        env = await pick_environment(self.environments, app, "provider", task_env_id=env_id)
        return env.service(app, task_dir, "provider", log_path=log_path)


async def run_on_provider(
    service: TaskApiService,
    request: Callable[[ProviderAppClient], Awaitable[T]],
    *,
    started: Callable[[TaskApiService], None] | None = None,
    connection_timeout: float = CONNECTION_TIMEOUT,
) -> T:
    """Start the app of `service`, await `request(client)`, see the app gone.

    `started(service)` is called once the app's process exists (to record its
    process group): for process services as soon as it is spawned, for
    others once the app serves. On cancellation the app is stopped first, then the request is
    cancelled and awaited, and only then is the cancellation passed on.
    """
    serving = False
    early = False
    if started is not None and isinstance(service, ProcessService):
        record = started
        service.on_launch(lambda _pid: record(service))
        early = True

    async def call() -> T:
        nonlocal serving
        client = await ProviderAppClient.create(
            service, port=0, connection_timeout=connection_timeout
        )
        serving = True
        if started is not None and not early:
            started(service)
        # The client waits for the app's exit after its one request.
        return await request(client)

    task = asyncio.ensure_future(call())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if serving:
            await uninterrupted(_stop(service))
        # Still starting: cancelling the start stops what it started.
        task.cancel()
        await uninterrupted(asyncio.wait([task]))
        if not task.cancelled() and task.exception() is not None:
            logger.debug("the cancelled provider request ended with %r", task.exception())
        await uninterrupted(_stop(service))
        raise


async def _stop(service: TaskApiService) -> None:
    try:
        if service.running():
            await service.stop()
        await service.wait_until_shutdown_complete()
    except Exception:
        logger.exception("stopping the provider app failed")


async def uninterrupted(awaitable: Awaitable[object]) -> None:
    """Await to the end even through further cancels (the caller re-raises after)."""
    future = asyncio.ensure_future(awaitable)
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            continue
    if not future.cancelled():
        future.exception()


__all__ = ["ProviderServices", "ServiceFactory", "run_on_provider", "uninterrupted"]
