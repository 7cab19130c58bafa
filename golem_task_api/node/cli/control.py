"""Reaching the node that runs on a work dir from another process.

A request is a row in node.db; the node is woken with SIGUSR1 (it also looks
every half second) and writes the result into the row. With no node
running, the command does the work itself, holding the node lock so that no
node starts meanwhile.
"""

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from golem_task_api.node.cli.common import UsageError
from golem_task_api.node.state import (
    AmbiguousTaskId,
    NodeBusy,
    NodeDB,
    NodeLock,
    TaskNotFound,
    TaskRow,
    holder_pid,
)
from golem_task_api.node.workdir import NodeDirs

T = TypeVar("T")
REPLY_TIMEOUT = 60.0
POLL = 0.05


def open_db(dirs: NodeDirs) -> NodeDB:
    if not dirs.db_path.exists():
        raise UsageError(f"no tasks in {dirs.root}")
    return NodeDB(dirs.db_path, create=False)


def find_task(db: NodeDB, prefix: str) -> TaskRow:
    try:
        return db.find_task(prefix)
    except (TaskNotFound, AmbiguousTaskId) as exc:
        raise UsageError(str(exc).strip('"')) from None


def ask_running_node(
    dirs: NodeDirs, db: NodeDB, op: str, task_id: str, args: dict[str, Any]
) -> str | None:
    """The running node's answer to a request; None if no node runs."""
    pid = holder_pid(dirs.lock_path)
    if pid is None:
        return None
    request_id = db.add_request(op, task_id, args)
    if pid > 0:
        # Gone already: the next node start handles the request.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + REPLY_TIMEOUT
    while time.monotonic() < deadline:
        request = db.request(request_id)
        if request is not None and request.result is not None:
            return request.result
        if holder_pid(dirs.lock_path) is None:
            return "the node stopped: the request waits for its next start"
        time.sleep(POLL)
    return f"no answer from the node within {REPLY_TIMEOUT:g} s: the request stays queued"


def without_node(dirs: NodeDirs, work: Callable[[], Coroutine[Any, Any, T]]) -> T | None:
    """`work()` holding the node lock; None if a node started meanwhile."""
    lock = NodeLock(dirs.lock_path)
    try:
        lock.acquire()
    except NodeBusy:
        return None
    try:
        return asyncio.run(work())
    finally:
        lock.release()


__all__ = ["ask_running_node", "find_task", "open_db", "without_node"]
