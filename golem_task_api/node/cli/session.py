"""A node running for one command (`run`, `resume`): start, show, stop.

The node runs in this process: the task manager, the compute nodes, the
apps' requestor processes, the provider processes. SIGINT and SIGTERM stop
it cleanly (the tasks stay unfinished, for `resume`); SIGUSR1 tells it that
another process left a request in node.db (`abort`).
"""

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from golem_task_api.node.cli.common import UsageError
from golem_task_api.node.cli.view import LiveView, PlainView
from golem_task_api.node.cluster.cluster import ClusterError
from golem_task_api.node.local_node import LocalNode, LocalNodeConfig
from golem_task_api.node.requestor.events import JsonLinesSink
from golem_task_api.node.state import TaskRow

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass
class Outcome:
    tasks: list[TaskRow]
    interrupted: bool


def setup_logging(log_dir: Path, verbose: bool) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    handler = logging.FileHandler(log_dir / "node.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    if verbose:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(stream)


def use_live_view(plain: bool) -> bool:
    return not plain and sys.stderr.isatty()


async def drive(
    work_dir: Path,
    config: LocalNodeConfig,
    start: Callable[[LocalNode], list["asyncio.Task[TaskRow]"]],
    *,
    plain: bool = False,
    events_file: str | None = None,
    before: Callable[[LocalNode], None] | None = None,
) -> Outcome:
    """Start the node, `start(node)` its tasks, show them until they end or a signal."""
    node = LocalNode(work_dir, config)
    sink = None if events_file is None else JsonLinesSink(node.events, events_file)
    live = None
    if use_live_view(plain):
        live = LiveView(Console(stderr=True))
        node.events.subscribe(live)
    else:
        node.events.subscribe(PlainView(sys.stderr))
    if sink is not None:
        sink.open()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    try:
        try:
            await node.start()
        except ClusterError as exc:
            raise UsageError(str(exc)) from None  # nothing started: exit 2, as bad input
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, node.manager.wake_requests)
        if before is not None:
            before(node)
        with live if live is not None else contextlib.nullcontext():
            tasks = start(node)
            stopping = asyncio.ensure_future(stop.wait())
            pending: set[asyncio.Future[Any]] = set(tasks)
            try:
                while pending and not stop.is_set():
                    done, _ = await asyncio.wait(
                        pending | {stopping}, return_when=asyncio.FIRST_COMPLETED
                    )
                    pending -= done
            finally:
                stopping.cancel()
            interrupted = stop.is_set() and bool(pending)
            await node.stop()
        finished = [task.result() for task in tasks if task.done() and not task.cancelled()]
        return Outcome(finished, interrupted)
    finally:
        for sig in (*signals, signal.SIGUSR1):
            loop.remove_signal_handler(sig)
        await node.stop()
        if sink is not None:
            sink.close()


__all__ = ["Outcome", "drive", "setup_logging", "use_live_view"]
