"""`DaskCluster`: the node's connection to a Dask distributed cluster.

Either an existing cluster (`tcp://scheduler:8786`: its workers must have
this package and the apps installed, as on the node) or, with `local:N`, a
`LocalCluster` of N worker processes started here (one thread each: a
subtask is a process of its own, the thread only waits for it).

Each worker becomes one compute node of the local node, with the worker's
threads as CPU slots and its memory limit as memory; a worker that joins
later (a scaled or adaptive cluster) is announced to `on_worker_added`. Progress events of all
workers come through one subscription and are routed by execution id.
"""

import asyncio
import contextlib
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from golem_task_api.node.cluster.worker_side import PROGRESS_TOPIC
from golem_task_api.node.progress import Progress

logger = logging.getLogger(__name__)

LOCAL_PREFIX = "local:"
# A scheduler that does not answer within this is unreachable; workers that
# have not joined within WORKERS_TIMEOUT are not waited for.
CONNECT_TIMEOUT = 30.0
WORKERS_TIMEOUT = 60.0
_SCHEDULER_TOPIC = "all"
_PROGRESS_FIELDS = tuple(field.name for field in dataclasses.fields(Progress))
_ADDRESS = re.compile(r"^(tcp|tls|ucx|inproc|ws|wss)://\S+$")


class ClusterError(Exception):
    """The cluster cannot be reached or used."""


@dataclass(frozen=True)
class WorkerInfo:
    address: str
    name: str
    threads: int
    memory_bytes: int


def check_address(address: str) -> str:
    """`local:N` or a scheduler address; ValueError with what is wrong."""
    if address.startswith(LOCAL_PREFIX):
        count = address[len(LOCAL_PREFIX):]
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--cluster {address!r}: local:N needs N >= 1 workers")
        return address
    if not _ADDRESS.match(address):
        raise ValueError(
            f"--cluster {address!r} is neither local:N nor a scheduler address"
            " such as tcp://host:8786"
        )
    return address


class DaskCluster:
    def __init__(
        self,
        address: str,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        workers_timeout: float = WORKERS_TIMEOUT,
    ) -> None:
        self.address = check_address(address)
        self._connect_timeout = connect_timeout
        self._workers_timeout = workers_timeout
        self._local: Any = None
        self._client: Any = None
        self._listeners: dict[str, Callable[[Progress], None]] = {}
        self._gone: dict[str, asyncio.Event] = {}
        self._known: set[str] = set()
        self._on_added: Callable[[WorkerInfo], Awaitable[None]] | None = None
        self._adding: set[asyncio.Task[None]] = set()
        self._add_lock = asyncio.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("the cluster is not connected")
        return self._client

    async def connect(self) -> list[WorkerInfo]:
        """Connect (or start the local cluster); its workers, sorted by name."""
        try:
            from distributed import Client, LocalCluster  # noqa: PLC0415 - optional, slow to import
        except ImportError:
            raise ClusterError(
                "the cluster needs Dask: pip install 'golem-task-api[cluster]'"
            ) from None
        try:
            if self.address.startswith(LOCAL_PREFIX):
                count = int(self.address[len(LOCAL_PREFIX):])
                self._local = await LocalCluster(
                    n_workers=count, threads_per_worker=1, processes=True,
                    dashboard_address=":0", asynchronous=True,
                )
                self._client = await Client(self._local, asynchronous=True)
                await self._client.wait_for_workers(count, timeout=self._workers_timeout)
            else:
                self._client = await Client(
                    self.address, asynchronous=True, timeout=self._connect_timeout
                )
                await self._client.wait_for_workers(1, timeout=self._workers_timeout)
            identity = await self._client.scheduler.identity(n_workers=-1)
        except (OSError, TimeoutError) as exc:
            await self.close()
            raise ClusterError(f"cannot use the Dask cluster {self.address}: {exc}") from None
        self._client.subscribe_topic(PROGRESS_TOPIC, self._on_progress)
        # The scheduler's own log: a worker that leaves strands the runs
        # pinned to it (they would wait for it for ever).
        self._client.subscribe_topic(_SCHEDULER_TOPIC, self._on_scheduler_event)
        workers = _workers(identity)
        if not workers:
            await self.close()
            raise ClusterError(f"the Dask cluster {self.address} has no workers")
        self._known.update(worker.address for worker in workers)
        return workers

    def on_worker_added(self, callback: Callable[[WorkerInfo], Awaitable[None]]) -> None:
        """Call `callback` with each worker that joins from now on (an adaptive
        or scaled cluster); one at a time, in the order they joined."""
        self._on_added = callback

    def worker_gone(self, address: str) -> bool:
        return self._gone_event(address).is_set()

    async def wait_gone(self, address: str) -> None:
        """Return once the worker has left the cluster."""
        await self._gone_event(address).wait()

    def _gone_event(self, address: str) -> asyncio.Event:
        return self._gone.setdefault(address, asyncio.Event())

    def _on_scheduler_event(self, event: tuple[float, Any]) -> None:
        _time, message = event
        if not isinstance(message, dict):
            return
        action, address = message.get("action"), str(message.get("worker", ""))
        if action == "remove-worker":
            logger.warning("the Dask worker %s left the cluster", address)
            self._gone_event(address).set()
        elif action == "add-worker" and address not in self._known:
            self._known.add(address)
            task = asyncio.ensure_future(self._added(address))
            self._adding.add(task)
            task.add_done_callback(self._adding.discard)

    async def _added(self, address: str) -> None:
        # Serialised: node ids are given in the order workers joined.
        async with self._add_lock:
            try:
                identity = await self.client.scheduler.identity(n_workers=-1)
            except (OSError, RuntimeError) as exc:
                logger.warning("cannot read the new Dask worker %s: %s", address, exc)
                return
            found = [w for w in _workers(identity) if w.address == address]
            if not found or self._on_added is None or self.worker_gone(address):
                return
            logger.info("the Dask worker %s joined the cluster", address)
            try:
                await self._on_added(found[0])
            except Exception:
                logger.exception("adding the Dask worker %s failed", address)

    def listen(self, execution_id: str, callback: Callable[[Progress], None]) -> None:
        self._listeners[execution_id] = callback

    def unlisten(self, execution_id: str) -> None:
        self._listeners.pop(execution_id, None)

    def _on_progress(self, event: tuple[float, Any]) -> None:
        _time, message = event
        if not isinstance(message, dict):
            return
        callback = self._listeners.get(str(message.get("execution", "")))
        if callback is None:
            return  # a run that has ended meanwhile
        # Dask adds its own keys (the worker's address) to the message.
        fields = {name: message[name] for name in _PROGRESS_FIELDS if name in message}
        try:
            update = Progress(**fields)
        except (TypeError, ValueError) as exc:
            logger.warning("dropped an invalid progress event from the cluster: %s", exc)
            return
        callback(update)

    async def stop_watching(self) -> None:
        """No more `on_worker_added` calls; one in progress is cancelled."""
        self._on_added = None
        adding = list(self._adding)
        for task in adding:
            task.cancel()
        await asyncio.gather(*adding, return_exceptions=True)

    async def close(self) -> None:
        await self.stop_watching()
        client, self._client = self._client, None
        if client is not None:
            for topic in (PROGRESS_TOPIC, _SCHEDULER_TOPIC):
                with contextlib.suppress(Exception):
                    client.unsubscribe_topic(topic)
            with contextlib.suppress(Exception):
                await client.close()
        local, self._local = self._local, None
        if local is not None:
            with contextlib.suppress(Exception):
                await local.close()


def _workers(identity: dict[str, Any]) -> list[WorkerInfo]:
    """The workers of the scheduler's identity, sorted by name."""
    workers = [
        WorkerInfo(
            address=address,
            name=str(info.get("name", address)),
            threads=int(info.get("nthreads", 1)) or 1,
            memory_bytes=int(info.get("memory_limit") or 0),
        )
        for address, info in identity.get("workers", {}).items()
    ]
    return sorted(workers, key=lambda w: (w.name, w.address))


__all__ = ["LOCAL_PREFIX", "ClusterError", "DaskCluster", "WorkerInfo", "check_address"]
