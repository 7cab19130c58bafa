"""What both app clients share: calls with deadlines and mapped errors, shutdown."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import grpc

from golem_task_api.client.kill_switch import KillSwitch
from golem_task_api.client.service import TaskApiService
from golem_task_api.errors import TaskApiError, Unavailable, from_status
from golem_task_api.proto import golem_task_api_pb2 as pb

logger = logging.getLogger("golem_task_api.client")

Rep = TypeVar("Rep")


class ShutdownException(TaskApiError):
    """Raised into calls in flight when the client is shut down."""

    status = grpc.StatusCode.CANCELLED


async def call(method: Callable[..., Awaitable[Rep]], request: Any, timeout: float | None) -> Rep:
    """One unary call; a non-OK status becomes its `errors` exception."""
    try:
        return await method(request, timeout=timeout)
    except (grpc.aio.AioRpcError, grpc.aio.UsageError) as exc:
        raise call_error(exc) from None


def call_error(exc: grpc.aio.AioRpcError | grpc.aio.UsageError) -> TaskApiError:
    """The `errors` exception of a failed call: its status's, or Unavailable
    when the channel was closed (UsageError)."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return from_status(exc.code(), exc.details() or "")
    return Unavailable(f"the client cannot call any more: {exc}")


class AppClient:
    SOFT_SHUTDOWN_TIMEOUT: ClassVar[float] = 5.0

    def __init__(self, service: TaskApiService, channel: Any) -> None:
        self._service = service
        self._channel = channel
        self._kill_switch = KillSwitch()
        self._shutdown_task: asyncio.Task[None] | None = None

    async def _call(self, method: Callable[..., Awaitable[Rep]], request: Any,
                    timeout: float | None) -> Rep:
        """A call that `shutdown()` interrupts with ShutdownException.

        `call()` inside `async with self._kill_switch:`, flattened into one
        coroutine: every wake-up of the call resumes one frame, not four."""
        switch = self._kill_switch
        task = switch.enter()
        try:
            return await method(request, timeout=timeout)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError) as exc:
            raise call_error(exc) from None
        except asyncio.CancelledError:
            switch.cancelled(task)  # the switch's cancel becomes its exception
            raise
        finally:
            switch.leave(task)

    @property
    def service(self) -> TaskApiService:
        return self._service

    @property
    def shut_down(self) -> bool:
        return self._shutdown_task is not None

    async def _read_stream(self, stream: Any) -> Any:
        """The next message of a server stream, None at its end; a non-OK
        status becomes its `errors` exception; `shutdown()` interrupts it."""
        async with self._kill_switch:
            try:
                message = await stream.read()
            except grpc.aio.AioRpcError as exc:
                raise call_error(exc) from None
        return None if message is grpc.aio.EOF else message

    async def shutdown(self, timeout: float = SOFT_SHUTDOWN_TIMEOUT) -> None:
        """Ask the app to stop, then force it; idempotent, never hangs."""
        if self._shutdown_task is None:
            self._kill_switch.trip(ShutdownException("Shutdown requested"))
            self._shutdown_task = asyncio.ensure_future(self._shutdown(timeout))
        await asyncio.shield(self._shutdown_task)

    async def _shutdown(self, timeout: float) -> None:
        try:
            if self._service.running():
                try:
                    await asyncio.wait_for(self._soft_shutdown(), timeout)
                except (TimeoutError, TaskApiError, grpc.RpcError, OSError) as exc:
                    logger.info("soft shutdown failed (%s): stopping the app", exc or type(exc))
            # Also for an app already dead: it is reaped (its exit code known)
            # and its log closed, whatever group members it left behind killed.
            await self._force_stop(timeout)
        finally:
            await self._channel.close()

    async def _soft_shutdown(self) -> None:
        try:
            await call(self._shutdown_rpc(), pb.ShutdownRequest(), self.SOFT_SHUTDOWN_TIMEOUT)
        except (TaskApiError, grpc.RpcError) as exc:
            # An app already stopping by itself (a provider whose one request
            # just ended) refuses the RPC; its own exit, bounded by the caller's
            # timeout, is still what a soft shutdown waits for.
            logger.debug("Shutdown RPC: %s; waiting for the app to exit", exc)
        await self._service.wait_until_shutdown_complete()

    def _shutdown_rpc(self) -> Callable[..., Awaitable[Any]]:
        raise NotImplementedError

    async def _force_stop(self, timeout: float) -> None:
        """Stop the service if it still runs, and wait (bounded) for its end."""
        try:
            if self._service.running():
                await asyncio.wait_for(self._service.stop(), timeout)
            await asyncio.wait_for(self._service.wait_until_shutdown_complete(), timeout)
        except TimeoutError:
            logger.error("the app did not stop within %.1f s", timeout)
        except Exception:
            logger.exception("stopping the app failed")

    async def _wait_for_exit(self) -> None:
        """After the one request of a provider: it exits by itself; make sure."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.shield(self._service.wait_until_shutdown_complete()),
                self.SOFT_SHUTDOWN_TIMEOUT,
            )
            return
        logger.warning("the provider app did not exit after its request: stopping it")
        await self._force_stop(self.SOFT_SHUTDOWN_TIMEOUT)


__all__ = ["AppClient", "ShutdownException", "call"]
