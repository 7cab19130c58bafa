"""`TaskApiService`: how a client gets an app's server running."""

import abc
import asyncio
import logging
from typing import Any

from golem_task_api.client.channel import CONNECTION_TIMEOUT, make_channel, wait_for_health
from golem_task_api.ssl import ClientTls

logger = logging.getLogger("golem_task_api.client")


class TaskApiService(abc.ABC):
    """Starts and stops one app server: a process, a thread, a container..."""

    @abc.abstractmethod
    def running(self) -> bool:
        """Whether the server (process, thread, container) is still alive."""

    @abc.abstractmethod
    async def start(self, command: str, port: int) -> tuple[str, int]:
        """Start the server with `command` (e.g. 'requestor 50005').

        Returns the (host, port) to connect to. The server must not run on
        the caller's event loop (spawn a thread, a process, a container).
        """

    @abc.abstractmethod
    async def stop(self) -> None:
        """Force the server to stop (e.g. `docker stop`)."""

    @abc.abstractmethod
    async def wait_until_shutdown_complete(self) -> None:
        """Wait until the server has exited (e.g. the container is gone)."""

    async def open_channel(
        self,
        command: str,
        port: int,
        ssl_context: ClientTls | None = None,
        *,
        timeout: float = CONNECTION_TIMEOUT,
    ) -> Any:
        """Start the server, wait until it serves, return a channel to it.

        On any failure the server is stopped, so nothing is left behind.
        """
        try:
            host, port = await self.start(command, port)
            channel = make_channel(host, port, ssl_context)
            try:
                await wait_for_health(channel, timeout)
            except BaseException:
                await channel.close()
                raise
            return channel
        except BaseException:
            await self._stop_quietly()
            raise

    async def _stop_quietly(self, timeout: float = 5.0) -> None:
        try:
            if self.running():
                await asyncio.wait_for(self.stop(), timeout)
                await asyncio.wait_for(self.wait_until_shutdown_complete(), timeout)
        except Exception:
            logger.exception("could not stop the app server")


__all__ = ["TaskApiService"]
