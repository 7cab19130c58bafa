"""One running command: its exit, its pipes, its usage monitor, its end."""

import asyncio
import contextlib
import logging
import os
import subprocess
import threading
import time
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]

from golem_task_api.apputils.process.output import PipeReader
from golem_task_api.apputils.process.tree import descendants, end_tree, kill_tree_now
from golem_task_api.apputils.process.usage import TreeMonitor

logger = logging.getLogger(__name__)

# After the tree has ended, its pipes reach EOF at once, unless a process we
# never saw (one that left the group before any sample) still holds them.
DRAIN_TIMEOUT = 2.0
_FALLBACK_POLL = 0.05

# Cleanups that outlive a second cancellation of their caller.
_cleanups: set["asyncio.Future[None]"] = set()


class Child:
    """A command started in its own session; it is reaped by this object alone.

    Reaping is done here with wait4, not by asyncio's child watcher, so that
    (1) the kernel's exact CPU time of the command is known, and (2) the
    command stays a zombie, holding its process-group id, until everything it
    left behind has been ended.
    """

    def __init__(self, proc: "subprocess.Popen[bytes]", monitor_interval: float | None,
                 usage: Any) -> None:
        self.pid = proc.pid
        self._proc = proc
        self._loop = asyncio.get_running_loop()
        self._root = psutil.Process(proc.pid)  # still unreaped, so this is it
        self._exited: asyncio.Future[None] = self._loop.create_future()
        self._pidfd: int | None = None
        self._pipes: list[tuple[asyncio.BaseTransport, PipeReader]] = []
        self._attached: list[Any] = []
        self._reaped: tuple[int, Any] | None = None
        self._monitor = (
            TreeMonitor(self._root, usage, monitor_interval)
            if monitor_interval is not None
            else None
        )
        self._watch_exit()
        if self._monitor is not None:
            self._monitor.start()

    # -- exit --

    def _watch_exit(self) -> None:
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            # No pidfd (not Linux, or an old kernel): watch from a thread,
            # without reaping.
            threading.Thread(
                target=self._poll_exit, name=f"exit-watch-{self.pid}", daemon=True
            ).start()
        else:
            self._loop.add_reader(self._pidfd, self._on_exit)

    def _poll_exit(self) -> None:
        while True:
            try:
                if self._root.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.Error:
                break
            time.sleep(_FALLBACK_POLL)
        with contextlib.suppress(RuntimeError):  # the loop is closed
            self._loop.call_soon_threadsafe(self._on_exit)

    def _on_exit(self) -> None:
        self._close_pidfd()
        if not self._exited.done():
            self._exited.set_result(None)

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    async def wait(self, timeout: float | None) -> bool:
        """True once the command has exited; False if `timeout` s passed first."""
        done, _ = await asyncio.wait({self._exited}, timeout=timeout)
        return bool(done)

    # -- pipes --

    async def attach(self, pipe: Any, reader: PipeReader) -> None:
        transport, _ = await self._loop.connect_read_pipe(lambda: reader, pipe)
        # The transport owns the pipe now and closes it.
        self._attached.append(pipe)
        self._pipes.append((transport, reader))

    async def _drain(self) -> None:
        pending = [reader.done for _, reader in self._pipes if not reader.done.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=DRAIN_TIMEOUT)
            if late:
                logger.warning(
                    "pid %d: a process outside its tree still holds its output; stopped reading",
                    self.pid,
                )
        self._close_pipes()

    def _close_pipes(self) -> None:
        for transport, _ in self._pipes:
            transport.close()
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None and not any(stream is pipe for pipe in self._attached):
                stream.close()

    # -- the end --

    def _known(self) -> list[Any]:
        seen = self._monitor.seen() if self._monitor is not None else []
        if self._reaped is not None:  # its pid may belong to another process now
            return seen
        return [self._root, *seen, *descendants(self._root)]

    def _kill_now(self) -> None:
        # Once reaped, the group id may be reused: signal only what psutil
        # can still identify.
        kill_tree_now(self.pid if self._reaped is None else None, self._known())

    def _stop_monitor(self) -> None:
        if self._monitor is not None:
            self._monitor.stop()

    def _reap(self) -> tuple[int, Any]:
        if self._reaped is None:
            try:
                _, status, rusage = os.wait4(self.pid, 0)
            except ChildProcessError:
                # Only a process-wide SIGCHLD reaper (waitpid(-1)) does this.
                self._proc.returncode = -1
                raise RuntimeError(
                    f"pid {self.pid} was reaped by someone else; its exit status is lost"
                ) from None
            returncode = os.waitstatus_to_exitcode(status)
            # Popen must know the process is gone, or it warns when collected.
            self._proc.returncode = returncode
            self._reaped = (returncode, rusage)
        return self._reaped

    async def finish(self, grace: float) -> tuple[int, Any]:
        """After the command exited: end what it left running, drain its output, reap it."""
        self._stop_monitor()  # its last sample still sees the leftovers
        await end_tree(self.pid, self._known(), grace)
        await self._drain()
        return self._reap()

    async def terminate(self, grace: float) -> None:
        """SIGTERM the command's tree, SIGKILL it after `grace` s; returns once it exited."""
        await end_tree(self.pid, self._known(), grace)
        await self._exited

    async def abort(self, grace: float) -> None:
        """End everything because the caller failed or was cancelled; nothing stays behind.

        Runs as a task of its own, so a cancelled caller still waits for it;
        cancelled again, the caller stops waiting and the tree gets SIGKILL.
        """
        if self._reaped is not None:
            return
        cleanup = asyncio.ensure_future(self._abort(grace))
        _cleanups.add(cleanup)
        cleanup.add_done_callback(_cleanups.discard)
        try:
            await asyncio.shield(cleanup)
        except asyncio.CancelledError:
            self._kill_now()
            raise

    async def _abort(self, grace: float) -> None:
        try:
            await self.terminate(grace)
            await self.finish(grace)
        except BaseException:
            # Cancelled too (the loop is shutting down): no more waiting.
            self._kill_now()
            self._stop_monitor()
            self._close_pidfd()
            self._close_pipes()
            self._reap()
            raise


__all__ = ["Child"]
