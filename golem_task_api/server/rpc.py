"""The one wrapper every RPC method goes through.

It refuses calls while the server stops (UNAVAILABLE), counts calls in
flight, and maps any exception to a status through `errors.status_of`:
servicer methods have no try/except of their own.
"""

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc

from golem_task_api.errors import InvalidArgument, TaskApiError, status_of
from golem_task_api.server.registration import Undecodable

logger = logging.getLogger("golem_task_api.server")

Req = TypeVar("Req")
Rep = TypeVar("Rep")


class CallGate:
    """Open while the server accepts calls; counts the calls in flight."""

    def __init__(self) -> None:
        self.closed = False
        self.in_flight = 0


class HasGate(Protocol):
    gate: CallGate


S = TypeVar("S", bound=HasGate)

UnaryMethod = Callable[[S, Req, Any], Awaitable[Rep]]
StreamMethod = Callable[[S, Req, Any], AsyncIterator[Rep]]

SHUTTING_DOWN = "the server is shutting down"


async def abort_with(context: Any, method: str, exc: BaseException) -> None:
    """End the call with the status of `exc` (raises, as context.abort does)."""
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    code, message = status_of(exc)
    if isinstance(exc, TaskApiError) and code is not grpc.StatusCode.INTERNAL:
        logger.info("%s refused (%s): %s", method, code.name, message)
    else:
        logger.error("%s failed: %s", method, message, exc_info=exc)
    await context.abort(code, message)


def _undecodable(method: str, request: Any) -> InvalidArgument:
    return InvalidArgument(f"the {method} request is not a valid message: {request.error}")


def rpc(method: UnaryMethod[S, Req, Rep]) -> UnaryMethod[S, Req, Rep]:
    name = method.__name__

    @functools.wraps(method)
    async def call(self: S, request: Req, context: Any) -> Rep:
        gate = self.gate
        if gate.closed:
            await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
        gate.in_flight += 1
        try:
            if request.__class__ is Undecodable:
                raise _undecodable(name, request)
            return await method(self, request, context)
        except Exception as exc:
            await abort_with(context, name, exc)
            raise  # not reached: abort raises
        finally:
            gate.in_flight -= 1

    return call


def rpc_stream(method: StreamMethod[S, Req, Rep]) -> StreamMethod[S, Req, Rep]:
    name = method.__name__

    @functools.wraps(method)
    async def call(self: S, request: Req, context: Any) -> AsyncIterator[Rep]:
        gate = self.gate
        if gate.closed:
            await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
        gate.in_flight += 1
        try:
            if request.__class__ is Undecodable:
                raise _undecodable(name, request)
            async for item in method(self, request, context):
                yield item
        except Exception as exc:
            await abort_with(context, name, exc)
        finally:
            gate.in_flight -= 1

    return call


__all__ = ["SHUTTING_DOWN", "CallGate", "abort_with", "rpc", "rpc_stream"]
