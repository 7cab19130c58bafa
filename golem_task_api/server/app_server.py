"""What both servers share: gRPC server, health, reflection, TLS, start/stop."""

import asyncio
import logging
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from golem_task_api.handlers import AppLifecycleHandler
from golem_task_api.server.registration import GenericOnly
from golem_task_api.server.rpc import CallGate
from golem_task_api.ssl import create_server_ssl_context

logger = logging.getLogger("golem_task_api.server")

# Apps run in containers whose port the node maps: listen everywhere unless
# told otherwise (the local tools pass 127.0.0.1).
DEFAULT_HOST = "[::]"
# Calls still running when stop() begins get this long to finish.
DEFAULT_GRACE = 5.0
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

SERVER_OPTIONS = [
    # Without this, a second server on a taken fixed port (e.g. two apps on
    # 50005) binds too and silently receives half of the calls.
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]

_plaintext_logged = False


class AppServer:
    """A gRPC server for one servicer; `start()` returns once it serves."""

    service_name: str = ""

    def __init__(
        self,
        work_dir: Path,
        port: int,
        lifecycle: AppLifecycleHandler,
        *,
        host: str = DEFAULT_HOST,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        self._work_dir = Path(work_dir)
        self._requested_port = port
        self._host = host
        self._grace = grace
        self._lifecycle = lifecycle
        self.gate = CallGate()
        self._server: Any = None
        self._health: HealthServicer | None = None
        self._port: int | None = None
        self._stopping: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port the server listens on (the chosen one when asked for 0)."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def lifecycle(self) -> AppLifecycleHandler:
        return self._lifecycle

    def _add_servicer(self, server: Any) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        await self._lifecycle.on_before_startup()
        server = grpc.aio.server(options=SERVER_OPTIONS)
        self._add_servicer(server)
        health = HealthServicer()
        # Generic handlers only, as for the app's service (see registration).
        generic_only = GenericOnly(server)
        health_pb2_grpc.add_HealthServicer_to_server(health, generic_only)
        reflection.enable_server_reflection(
            (self.service_name, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME),
            generic_only,
        )
        # A `unix:PATH` host is a Unix socket (e.g. into a sandbox): no port.
        unix = self._host.startswith("unix:")
        address = self._host if unix else f"{self._host}:{self._requested_port}"
        tls = create_server_ssl_context(self._work_dir)
        try:
            if tls is None:
                _log_plaintext(self._work_dir)
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(address, tls.credentials())
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {address}: {exc}") from exc
        if not port:
            raise OSError(f"cannot listen on {address} (taken, or not a local address?)")
        await server.start()
        self._server, self._health, self._port = server, health, 0 if unix else port
        await health.set("", health_pb2.HealthCheckResponse.SERVING)
        await health.set(self.service_name, health_pb2.HealthCheckResponse.SERVING)
        logger.info(
            "%s serving on %s (%s)", self.service_name, address if unix else f"{self._host}:{port}",
            "mutual TLS" if tls else "plaintext",
        )
        await self._lifecycle.on_after_startup()

    async def wait_until_shutdown(self) -> None:
        await self._lifecycle.shutdown_future

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, drain those in flight, stop. Safe to call twice."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(grace))
        await asyncio.shield(self._stopping)

    def release_handlers(self) -> None:
        """Forget the app's handlers (after stop)."""
        servicer = getattr(self, "servicer", None)
        if servicer is not None:
            servicer.release_handler()

    def _before_stop(self) -> None:
        """Hook: a server may cancel its own work here."""

    def _after_stop(self) -> None:
        """Hook: no call runs any more; release what the calls used."""

    async def _stop(self, grace: float | None) -> None:
        self.gate.closed = True
        self._lifecycle.request_shutdown()
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        self._before_stop()
        await self._lifecycle.on_before_shutdown()
        if self._server is not None:
            await self._server.stop(self._grace if grace is None else grace)
        self._after_stop()
        logger.info("%s stopped", self.service_name)
        await self._lifecycle.on_after_shutdown()


def _log_plaintext(work_dir: Path) -> None:
    global _plaintext_logged  # noqa: PLW0603 - once per process, by design
    if not _plaintext_logged:
        _plaintext_logged = True
        logger.info("no TLS files in %s: serving plaintext", work_dir)


__all__ = ["DEFAULT_GRACE", "DEFAULT_HOST", "MAX_MESSAGE_BYTES", "AppServer"]
