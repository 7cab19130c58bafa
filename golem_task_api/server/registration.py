"""Registering a servicer from its service descriptor.

Like the generated `add_*Servicer_to_server`, except that a request that
does not decode reaches our RPC wrapper as `Undecodable` (and is answered
INVALID_ARGUMENT) instead of making gRPC answer UNKNOWN.
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
    server.add_registered_method_handlers(service.full_name, handlers)


__all__ = ["Undecodable", "register_servicer"]
