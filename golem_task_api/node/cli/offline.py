"""A task manager without compute nodes, for commands that run while no node does."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from golem_task_api.node.app_registry import AppRegistry
from golem_task_api.node.requestor.apps import RequestorApps
from golem_task_api.node.requestor.context import ManagerConfig, NodeContext
from golem_task_api.node.requestor.events import NodeEvents
from golem_task_api.node.requestor.manager import TaskManager
from golem_task_api.node.requestor.opaque import SALT_META_KEY, OpaqueIds, new_salt
from golem_task_api.node.state import NodeDB
from golem_task_api.node.workdir import NodeDirs


@contextlib.asynccontextmanager
async def offline_manager(dirs: NodeDirs, db: NodeDB) -> AsyncIterator[TaskManager]:
    events = NodeEvents()
    apps = RequestorApps(dirs.apps_dir, dirs.run_dir, events=events, log_dir=dirs.logs_dir)
    apps.kill_leftovers()
    config = ManagerConfig()
    context = NodeContext(
        db=db, events=events, apps=apps, nodes={}, registry=AppRegistry({}), dirs=dirs,
        opaque=OpaqueIds(db.get_meta(SALT_META_KEY) or new_salt()), config=config,
        verify_slots=asyncio.Semaphore(config.max_verifications),
    )
    manager = TaskManager(context)
    try:
        yield manager
    finally:
        await manager.aclose()


__all__ = ["offline_manager"]
