"""`golem-task-api benchmark APP`: the app's provider benchmark on each local compute node."""

import argparse
import asyncio

from golem_task_api.apputils.app_definition.model import AppDefinitionError
from golem_task_api.node.app_catalog import AppNotFound, find_app
from golem_task_api.node.cli.common import EXIT_BUSY, EXIT_FAILED, EXIT_OK, UsageError, error
from golem_task_api.node.cli.common import work_dir as get_work_dir
from golem_task_api.node.cli.session import setup_logging
from golem_task_api.node.local_node import LocalNode, LocalNodeConfig
from golem_task_api.node.requestor.context import app_spec
from golem_task_api.node.state import AppRef, NodeBusy


def command(args: argparse.Namespace) -> int:
    try:
        app = find_app(args.app)
    except (AppNotFound, AppDefinitionError) as exc:
        raise UsageError(str(exc)) from None
    work = get_work_dir(args)
    setup_logging(work / "logs", bool(getattr(args, "verbose", False)))
    try:
        return asyncio.run(_benchmark(work, app, args.providers))
    except NodeBusy as exc:
        error(str(exc))
        return EXIT_BUSY


async def _benchmark(work: object, app: AppRef, providers: int) -> int:
    definition = app.definition or {}
    env_id = str(definition.get("requestor_env") or "docker_cpu")
    prerequisites = dict(definition.get("requestor_prereq") or {})
    async with LocalNode(work, LocalNodeConfig(providers=providers)) as node:  # type: ignore[arg-type]
        spec = app_spec(app)
        node.registry.register(spec.name, spec)
        code = EXIT_OK
        for node_id, compute_node in node.nodes.items():
            try:
                score = await compute_node.benchmark(spec.name, env_id, prerequisites,
                                                     refresh=True)
            except Exception as exc:
                print(f"{node_id}: the benchmark of {app.key} failed: {exc}")
                code = EXIT_FAILED
            else:
                print(f"{node_id}: {app.key} benchmark score {score:g}")
        return code


__all__ = ["command"]
