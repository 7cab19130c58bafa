"""`LocalNode`: a whole node in one process, on one work dir.

The task manager, `providers` local compute nodes (ids `node-1` ...
`node-K`, this machine's cores and memory split between them: a fair,
reproducible stand-in for a market), the apps' requestor processes, and the
provider processes the compute nodes start (forked from a warm-start
template where possible, else cold). The node lock makes it the only node
on its work dir.

    async with LocalNode(work_dir, LocalNodeConfig(providers=2)) as node:
        task = node.manager.submit(app=find_app("tutorial"), ...)
        final = await node.manager.run(task.task_id)
"""

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import psutil  # type: ignore[import-untyped, unused-ignore]

from golem_task_api.node.app_registry import AppRegistry
from golem_task_api.node.cluster.cluster import DaskCluster, WorkerInfo, check_address
from golem_task_api.node.cluster.nodes import (
    cluster_compute_node,
    cluster_node_id,
    cluster_node_ids,
)
from golem_task_api.node.compute.capacity import DEFAULT_MEMORY_FRACTION, CapacityConfig
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.process import DEFAULT_TERM_GRACE
from golem_task_api.node.compute.taskapi_node import taskapi_compute_node
from golem_task_api.node.compute.taskapi_services import ProviderServices
from golem_task_api.node.envs.base import AppSpec, Environment
from golem_task_api.node.envs.local import LocalEnvironment
from golem_task_api.node.envs.warm import WarmStartEnvironment
from golem_task_api.node.requestor.apps import (
    RequestorApps,
    ServiceFactory,
    local_requestor_service,
)
from golem_task_api.node.requestor.context import ManagerConfig, NodeContext
from golem_task_api.node.requestor.events import NodeEvents
from golem_task_api.node.requestor.manager import TaskManager
from golem_task_api.node.requestor.opaque import SALT_META_KEY, OpaqueIds, new_salt
from golem_task_api.node.requestor.progress_recorder import ProgressRecorder
from golem_task_api.node.state import NodeDB, NodeLock
from golem_task_api.node.workdir import NodeDirs

logger = logging.getLogger(__name__)

# How often providers report progress to their compute node.
PROVIDER_UPDATE_INTERVAL = 0.25


@dataclass(frozen=True)
class LocalNodeConfig:
    """`providers` local compute nodes sharing `slots` CPU slots (default: the
    machine's cores, at least one each) and `memory_mib` (default: 80 % of
    the machine's). `warm_start`: fork providers from a template per app
    where the platform allows (else, and for apps that opt out, cold)."""

    providers: int = 1
    slots: int | None = None
    memory_mib: int | None = None
    warm_start: bool = True
    manager: ManagerConfig = field(default_factory=ManagerConfig)
    requestor_factory: ServiceFactory = local_requestor_service
    provider_services: ProviderServices | None = None
    provider_update_interval: float = PROVIDER_UPDATE_INTERVAL
    cluster: str | None = None

    def __post_init__(self) -> None:
        if self.cluster is not None:
            check_address(self.cluster)
        if self.providers < 1:
            raise ValueError(f"a node needs at least one provider, got {self.providers}")
        if self.slots is not None and self.slots < 1:
            raise ValueError(f"slots must be at least 1, got {self.slots}")


def node_ids(count: int) -> list[str]:
    return [f"node-{number}" for number in range(1, count + 1)]


def split_capacity(config: LocalNodeConfig) -> list[CapacityConfig]:
    """Each node's share: slots as even as can be (the first ones get the rest)."""
    slots = config.slots or psutil.cpu_count(logical=True) or 1
    memory = config.memory_mib
    if memory is None:
        memory = int(psutil.virtual_memory().total * DEFAULT_MEMORY_FRACTION) // 2**20
    base, extra = divmod(slots, config.providers)
    shares = []
    for index in range(config.providers):
        cpu = max(1, base + (1 if index < extra else 0))
        shares.append(CapacityConfig.from_machine(cpu=cpu, memory_mib=memory // config.providers))
    return shares


class LocalNode:
    def __init__(self, work_dir: Path, config: LocalNodeConfig | None = None) -> None:
        self.dirs = NodeDirs(Path(work_dir))
        self.config = config or LocalNodeConfig()
        self.events = NodeEvents()
        self.registry = AppRegistry({})
        self._lock = NodeLock(self.dirs.lock_path)
        self._db: NodeDB | None = None
        self._nodes: dict[str, ComputeNode] = {}
        self._environments: list[Environment] = []
        self._warm: WarmStartEnvironment | None = None
        self._cluster: DaskCluster | None = None
        self._recorder: ProgressRecorder | None = None
        self._manager: TaskManager | None = None

    @property
    def db(self) -> NodeDB:
        if self._db is None:
            raise RuntimeError("the node is not started")
        return self._db

    @property
    def manager(self) -> TaskManager:
        if self._manager is None:
            raise RuntimeError("the node is not started")
        return self._manager

    @property
    def nodes(self) -> dict[str, ComputeNode]:
        return dict(self._nodes)

    async def start(self) -> None:
        """Lock the work dir, open the state, start the compute nodes, settle leftovers.

        Raises `NodeBusy` if another node runs on the work dir.
        """
        self.dirs.create()
        self._lock.acquire()
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        db = self._db = NodeDB(self.dirs.db_path)
        salt = db.get_meta(SALT_META_KEY)
        if salt is None:
            salt = new_salt()
            db.set_meta(SALT_META_KEY, salt)
        db.set_meta("node_pid", str(os.getpid()))
        apps = RequestorApps(
            self.dirs.apps_dir, self.dirs.run_dir, events=self.events,
            factory=self.config.requestor_factory, log_dir=self.dirs.logs_dir,
        )
        for app in apps.kill_leftovers():
            logger.warning("killed the requestor app %s a crashed node left running", app)
        services = self.config.provider_services or self._provider_services()
        if self.config.cluster is not None:
            await self._start_cluster_nodes(self.config.cluster, services)
        else:
            await self._start_compute_nodes(services)
        context = NodeContext(
            db=db,
            events=self.events,
            apps=apps,
            nodes=self._nodes,
            registry=self.registry,
            dirs=self.dirs,
            opaque=OpaqueIds(salt),
            config=self.config.manager,
            verify_slots=asyncio.Semaphore(self.config.manager.max_verifications),
            warm_up=self._warm_up if self._warm is not None else None,
        )
        self._manager = TaskManager(context)
        self._recorder = ProgressRecorder(db, self.events)
        self._recorder.start()
        await self._manager.reconcile_nodes()
        self._manager.start_serving_requests()

    def _provider_services(self) -> ProviderServices:
        log_dir = self.dirs.logs_dir
        environments: list[Environment] = []
        if self.config.warm_start and self.config.cluster is None:
            self._warm = WarmStartEnvironment(log_dir, stop_grace=DEFAULT_TERM_GRACE)
            environments.append(self._warm)
        environments.append(LocalEnvironment(log_dir, stop_grace=DEFAULT_TERM_GRACE))
        self._environments = environments
        return ProviderServices(environments)

    async def _warm_up(self, app: AppSpec) -> None:
        if self._warm is not None and await self._warm.availability():
            reason = await self._warm.warm_up(app)
            if reason is not None:
                logger.info("providers of %s start cold: %s", app.name, reason)

    async def _start_compute_nodes(self, services: ProviderServices) -> None:
        wanted = node_ids(self.config.providers)
        await self._retire_others(wanted, services)
        for node_id, capacity in zip(wanted, split_capacity(self.config), strict=True):
            node = taskapi_compute_node(
                self.dirs.provider_dir(node_id),
                registry=self.registry,
                services=services,
                capacity=capacity,
                update_interval=self.config.provider_update_interval,
                default_timeout=None,
            )
            await node.start()
            self._nodes[node_id] = node

    async def _start_cluster_nodes(self, address: str, services: ProviderServices) -> None:
        cluster = self._cluster = DaskCluster(address)
        workers = await cluster.connect()
        wanted = cluster_node_ids(len(workers))
        await self._retire_others(wanted, services)
        for node_id, worker in zip(wanted, workers, strict=True):
            await self._add_cluster_node(cluster, node_id, worker)
        cluster.on_worker_added(self._worker_joined)

    async def _worker_joined(self, worker: WorkerInfo) -> None:
        cluster = self._cluster
        if cluster is None:
            return  # stopping
        node_id = cluster_node_id(len(self._nodes) + 1)
        node = await self._add_cluster_node(cluster, node_id, worker)
        if self._manager is not None:
            await self._manager.add_node(node_id, node)

    async def _add_cluster_node(
        self, cluster: DaskCluster, node_id: str, worker: WorkerInfo
    ) -> ComputeNode:
        node = cluster_compute_node(
            self.dirs.provider_dir(node_id), cluster, worker, self.registry,
            update_interval=self.config.provider_update_interval,
        )
        try:
            await node.start()
        except BaseException:
            await node.stop()
            raise
        self._nodes[node_id] = node
        logger.info("compute node %s runs on the Dask worker %s (%d threads)",
                    node_id, worker.address, worker.threads)
        return node

    async def _retire_others(self, wanted: list[str], services: ProviderServices) -> None:
        """Compute nodes of earlier runs that are not started now: their
        recovery kills what a crash left running there."""
        for path in sorted(self.dirs.providers_dir.iterdir()):
            if path.is_dir() and path.name not in wanted:
                await retire_compute_node(path, self.registry, services)

    async def stop(self) -> None:
        """Stop the task runs (unfinished tasks stay so), the apps, the compute nodes.

        Idempotent."""
        if self._cluster is not None:
            await self._cluster.stop_watching()  # no compute node added from now on
        if self._manager is not None:
            manager, self._manager = self._manager, None
            await manager.aclose()
        for node in reversed(list(self._nodes.values())):
            with contextlib.suppress(Exception):
                await node.stop()
        self._nodes.clear()
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            await cluster.close()
        environments, self._environments = self._environments, []
        for env in environments:
            with contextlib.suppress(Exception):
                await env.aclose()
        if self._recorder is not None:
            await self._recorder.aclose()
            self._recorder = None
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.delete_meta("node_pid")
            self._db.close()
            self._db = None
        self._lock.release()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def retire_compute_node(
    path: Path, registry: AppRegistry | None = None, services: ProviderServices | None = None
) -> None:
    """Start and stop the compute node on `path`: its recovery kills the provider
    processes a crashed node left running there, and fails their executions."""
    node = taskapi_compute_node(
        path, registry=registry or AppRegistry({}), services=services or ProviderServices(),
        slots=1,
    )
    try:
        await node.start()
    finally:
        await node.stop()


async def retire_compute_nodes(dirs: NodeDirs) -> None:
    """`retire_compute_node` for every compute node of a work dir (no node may run)."""
    if dirs.providers_dir.is_dir():
        for path in sorted(dirs.providers_dir.iterdir()):
            if path.is_dir():
                await retire_compute_node(path)


def unfinished_providers(tasks: Sequence[int]) -> int:
    """How many compute nodes a resume starts: as many as the most any of its tasks had."""
    return max(tasks, default=1)


__all__ = [
    "LocalNode",
    "LocalNodeConfig",
    "node_ids",
    "retire_compute_node",
    "retire_compute_nodes",
    "split_capacity",
    "unfinished_providers",
]
