"""Process groups: signal one, learn when a process exits, stop a group.

Every child we start runs in a session (so a process group) of its own, so
that what it spawns can be stopped with it. These are the one implementation
of each operation on such a group, for the clients, the apputils and the node.

On Python 3.11, `asyncio.subprocess.Process.wait()` also waits until every
pipe of the child is closed, which a grandchild that inherited stdout may
never do: a launcher learns of the exit itself (`ExitWatch`,
`wait_for_exit`), kills what is left of the group, and only then waits for
the pipes.
"""

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable

logger = logging.getLogger(__name__)

_POLL_START = 0.005
_POLL_MAX = 0.1


def signal_group(pgid: int, sig: int) -> bool:
    """killpg, quietly; False if there is no such group (every member has exited)."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def resolve(future: "asyncio.Future[None]") -> None:
    """A reader callback: the fd is readable."""
    if not future.done():
        future.set_result(None)


class ExitWatch:
    """A future that resolves when a process exits, from a pidfd on it."""

    def __init__(self, pidfd: int | None) -> None:
        self._loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[None] = self._loop.create_future()
        self.pidfd = pidfd
        if pidfd is not None:
            self._loop.add_reader(pidfd, self._on_exit)

    @classmethod
    def of_pid(cls, pid: int) -> "ExitWatch":
        """For a child of ours that is not reaped yet (pidfd None if it is).

        Raises AttributeError or OSError where there are no pidfds (not Linux).
        """
        try:
            return cls(os.pidfd_open(pid))
        except ProcessLookupError:
            return cls(None)

    def _on_exit(self) -> None:
        if self.pidfd is not None:
            self._loop.remove_reader(self.pidfd)
        resolve(self.exited)

    def send_signal(self, sig: int) -> None:
        """To the process itself, safely even if its pid was reused."""
        if self.pidfd is not None and not self.exited.done():
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, sig)

    def close(self) -> None:
        if self.pidfd is not None:
            self._loop.remove_reader(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None


async def wait_for_exit(pid: int, has_exited: Callable[[], bool]) -> None:
    """Return once `pid` has exited (a zombie, or reaped by the child watcher).

    `has_exited()` tells whether the exit is already known (e.g. a return
    code was recorded), which also covers a pid reaped before we look.
    """
    if has_exited():
        return
    try:
        watch = ExitWatch.of_pid(pid)
    except (AttributeError, OSError):
        await _poll(has_exited)
        return
    try:
        if watch.pidfd is not None:
            await watch.exited
    finally:
        watch.close()


async def _poll(has_exited: Callable[[], bool]) -> None:
    """Without pidfds (not Linux): look at the return code, backing off."""
    delay = _POLL_START
    while not has_exited():
        await asyncio.sleep(delay)
        delay = min(delay * 2, _POLL_MAX)


async def stop_process_group(proc: asyncio.subprocess.Process, term_grace: float) -> None:
    """SIGTERM the group, SIGKILL it after `term_grace`, and reap the leader."""
    if proc.returncode is None:
        signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), term_grace)
        except TimeoutError:
            logger.warning(
                "process group %d still alive %.1f s after SIGTERM: killing it",
                proc.pid,
                term_grace,
            )
        except asyncio.CancelledError:
            # Cancelled again mid-grace: no more grace, but still stop it.
            signal_group(proc.pid, signal.SIGKILL)
            await _reap(proc)
            raise
    signal_group(proc.pid, signal.SIGKILL)
    await _reap(proc)


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Wait for a killed leader to be reaped, even through further cancels.

    Only called after SIGKILL, so the wait is short; the cancellation is
    passed on once the process is gone.
    """
    cancelled = False
    while True:
        try:
            await asyncio.shield(proc.wait())
            break
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


__all__ = [
    "ExitWatch",
    "resolve",
    "signal_group",
    "stop_process_group",
    "wait_for_exit",
]
