"""Registering a servicer from its service descriptor.

Like the generated `add_*Servicer_to_server`, except that a request that
does not decode reaches our RPC wrapper as `Undecodable` (and is answered
INVALID_ARGUMENT) instead of making gRPC answer UNKNOWN.

Methods are registered as generic handlers only, never as grpc.aio's
"registered methods" (`add_registered_method_handlers`, which the generated
code of grpcio >= 1.62 also calls): grpc.aio keeps one pending request per
registered method and, after every call, waits again on all of them
(`asyncio.wait(..., FIRST_COMPLETED)`), so each call costs a server CPU time
that grows with the number of registered methods (14 with Health: ~170 us
more per NextSubtask+Verify round trip than generic handlers, measured by
bench/requestor_rpc.py). A generic handler is a dict lookup per call, and
both kinds answer every call alike.
"""

from collections.abc import Callable
from types import ModuleType
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor


class Undecodable:
    """The request of a call whose bytes are not a valid message."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


def _decoder(message_class: Any) -> Callable[[bytes], Any]:
    from_string = message_class.FromString

    def decode(data: bytes) -> Any:
        try:
            return from_string(data)
        except Exception as exc:  # protobuf raises DecodeError, sometimes others
            return Undecodable(str(exc) or type(exc).__name__)

    return decode


class GenericOnly:
    """The server as the generated `add_*Servicer_to_server` functions (of
    Health and reflection) see it: they register their handlers both ways;
    this keeps the generic ones only. Everything else goes to the server."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)

    def add_registered_method_handlers(
        self, service_name: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        """Dropped: the same handlers came as generic ones (see the module doc)."""


# reflection.enable_server_reflection checks isinstance(server, grpc.aio.Server).
grpc.aio.Server.register(GenericOnly)


def register_servicer(
    server: Any, servicer: object, service: ServiceDescriptor, messages: ModuleType
) -> None:
    handlers = {}
    for method in service.methods:
        request = getattr(messages, method.input_type.name)
        reply = getattr(messages, method.output_type.name)
        make = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=_decoder(request),
            response_serializer=reply.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )


__all__ = ["GenericOnly", "Undecodable", "register_servicer"]
