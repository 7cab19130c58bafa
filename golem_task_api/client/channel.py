"""Opening a channel to an app and waiting until it serves."""

import asyncio
import logging
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from golem_task_api.errors import DeadlineExceeded, Unavailable
from golem_task_api.ssl import ClientTls

logger = logging.getLogger("golem_task_api.client")

# How long an app may take from start to SERVING (containers start slowly).
CONNECTION_TIMEOUT = 15.0
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Health checks that wait for the connection: short at first, so that a
# channel that cannot connect is asked why early.
_FIRST_ATTEMPT_TIMEOUT = 0.25
_MAX_ATTEMPT_TIMEOUT = 2.0
# gRPC's words for a handshake the client itself gave up (server not trusted,
# or not TLS at all); a server refusing our certificate just closes the socket.
_TLS_HANDSHAKE_FAILED = "handshake failed"

CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # An app that is still starting refuses connections; retry quickly
    # instead of gRPC's default 1 s first backoff.
    ("grpc.initial_reconnect_backoff_ms", 20),
    ("grpc.min_reconnect_backoff_ms", 20),
    ("grpc.max_reconnect_backoff_ms", 250),
    ("grpc.enable_retries", 0),
]


def target(host: str, port: int) -> str:
    if host.startswith("unix:"):
        return host  # a Unix socket: the port means nothing
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def make_channel(host: str, port: int, tls: ClientTls | None = None) -> Any:
    address = target(host, port)
    if tls is None:
        return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
    return grpc.aio.secure_channel(
        address, tls.credentials(), options=CHANNEL_OPTIONS + tls.channel_options()
    )


async def wait_for_health(channel: Any, timeout: float = CONNECTION_TIMEOUT) -> None:
    """Return once Health.Check("") answers SERVING; retry until `timeout`.

    Every connection error is retried (the original gave up on some at
    once), except a failed TLS handshake: the certificates will not change,
    so it is an error at once instead of after `timeout`. A server without
    the Health service is up: it counts as ready.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service="")
    delay = 0.005
    attempt_timeout = _FIRST_ATTEMPT_TIMEOUT
    last = "no answer"
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise DeadlineExceeded(f"the app did not become ready in {timeout:g} s ({last})")
        try:
            # Waiting for ready answers as soon as the app listens; a channel
            # that cannot connect only says why to a call that does not wait.
            reply = await stub.Check(
                request, timeout=min(remaining, attempt_timeout), wait_for_ready=True
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                attempt_timeout = min(attempt_timeout * 2, _MAX_ATTEMPT_TIMEOUT)
                reply = await _probe(stub, request, deadline - loop.time())
            else:
                reply = exc
        if isinstance(reply, grpc.aio.AioRpcError):
            code = reply.code()
            if code is grpc.StatusCode.UNIMPLEMENTED:
                logger.warning("the app has no health service; assuming it is ready")
                return
            details = reply.details() or ""
            if code is grpc.StatusCode.UNAUTHENTICATED:
                raise Unavailable(f"the app refused the connection: {details}")
            if _TLS_HANDSHAKE_FAILED in details.lower():
                raise Unavailable(f"TLS handshake with the app failed: {details}")
            last = f"{code.name}: {details}"
        elif reply is not None:
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
            last = f"health {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
        await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        delay = min(delay * 2, 0.1)


async def _probe(
    stub: Any, request: health_pb2.HealthCheckRequest, remaining: float
) -> Any:
    """One Check that fails at once if the channel cannot connect: the reply,
    the error (with the reason of the failed connection), or None."""
    if remaining <= 0:
        return None
    try:
        return await stub.Check(request, timeout=min(remaining, _MAX_ATTEMPT_TIMEOUT))
    except grpc.aio.AioRpcError as exc:
        return exc


__all__ = ["CHANNEL_OPTIONS", "CONNECTION_TIMEOUT", "make_channel", "target", "wait_for_health"]
