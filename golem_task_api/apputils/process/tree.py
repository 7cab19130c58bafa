"""Ending a command's process tree: its process group plus every descendant seen.

Commands start in a session (and so a process group) of their own, which
catches descendants that were never sampled; descendants that left the group
(daemons call setsid) are caught if the monitor or a snapshot saw them.

The caller keeps the command's own process unreaped while these run: its
zombie holds the group id, so signalling the group cannot reach an unrelated
group that reused the number.
"""

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterable
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]

from golem_task_api.process_group import signal_group

POLL_INTERVAL = 0.02
# SIGKILL cannot be refused; this only bounds a wait for a process stuck in
# the kernel (uninterruptible I/O).
KILL_WAIT = 5.0


def group_members(pgid: int) -> list[Any]:
    members = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid:
                members.append(psutil.Process(pid))
        except (OSError, psutil.Error):
            continue
    return members


def descendants(root: Any) -> list[Any]:
    try:
        return list(root.children(recursive=True))
    except psutil.Error:
        return []


def is_running(proc: Any) -> bool:
    """False once the process has ended, even while it waits to be reaped."""
    try:
        return bool(proc.is_running()) and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def signal_tree(pgid: int | None, procs: Iterable[Any], sig: signal.Signals) -> None:
    if pgid is not None:
        signal_group(pgid, sig)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)  # psutil checks that the pid was not reused


async def _wait_gone(procs: list[Any], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(is_running(p) for p in procs):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL_INTERVAL)
    return True


def _reap_adopted(pgid: int, procs: Iterable[Any]) -> None:
    # When the app is PID 1 (a container without an init) or a subreaper,
    # orphaned descendants become its children and would stay zombies. The
    # command itself (pid == pgid) is left to its owner.
    me = os.getpid()
    for proc in procs:
        if proc.pid == pgid:
            continue
        try:
            if proc.ppid() == me and proc.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(proc.pid, os.WNOHANG)
        except (OSError, psutil.Error):
            continue


async def end_tree(pgid: int, known: Iterable[Any], grace: float) -> None:
    """SIGTERM the group and `known`; SIGKILL whatever still runs after `grace` s."""
    targets = [p for p in {*known, *group_members(pgid)} if is_running(p)]
    if targets:
        signal_tree(pgid, targets, signal.SIGTERM)
        if not await _wait_gone(targets, grace):
            signal_tree(pgid, [p for p in targets if is_running(p)], signal.SIGKILL)
            await _wait_gone(targets, KILL_WAIT)
    # Whatever joined the group since it was listed.
    signal_tree(pgid, (), signal.SIGKILL)
    _reap_adopted(pgid, targets)


def kill_tree_now(pgid: int | None, known: Iterable[Any]) -> None:
    """SIGKILL the group (unless None) and `known` at once, without waiting."""
    signal_tree(pgid, [p for p in known if is_running(p)], signal.SIGKILL)


__all__ = ["descendants", "end_tree", "is_running", "kill_tree_now"]
