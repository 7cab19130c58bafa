"""The baseline of bench.requestor_rpc: a bare grpc.aio server, no framework.

    python -m bench.apps.raw_server [HOST]

One generic unary method, `/bench.Raw/Empty`, that answers b"" to anything
(no protobuf, no handler logic): the cheapest RPC grpc.aio can serve. For
reference it also serves NextSubtask and Verify at our method paths with our
generated messages and constant answers (no framework: no validation, no
records, no error mapping), which tells the cost of protobuf and of the
generated stubs apart from ours. It listens on a free port, prints the same
announce line as our entrypoint, and serves until SIGTERM or SIGINT.
"""

import asyncio
import signal
import sys
from pathlib import Path

import grpc

# The generated messages only: golem_task_api/__init__ would import it all.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "golem_task_api" / "proto"))
import golem_task_api_pb2 as pb

SERVICE = "bench.Raw"
EMPTY_METHOD = f"/{SERVICE}/Empty"
REQUESTOR_SERVICE = "golem_task_api.RequestorApp"

async def empty(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b""


async def next_subtask(
    request: pb.NextSubtaskRequest, context: grpc.aio.ServicerContext
) -> pb.NextSubtaskReply:
    return pb.NextSubtaskReply(subtask=pb.SubtaskReply(subtask_params_json="{}"))


async def verify(request: pb.VerifyRequest, context: grpc.aio.ServicerContext) -> pb.VerifyReply:
    return pb.VerifyReply(result=pb.VerifyReply.SUCCESS)


def _proto_handler(method: object, request: object, reply: object) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        method,
        request_deserializer=request.FromString,  # type: ignore[attr-defined]
        response_serializer=reply.SerializeToString,  # type: ignore[attr-defined]
    )


async def serve(host: str) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {"Empty": grpc.unary_unary_rpc_method_handler(empty)}
            ),
            grpc.method_handlers_generic_handler(
                REQUESTOR_SERVICE,
                {
                    "NextSubtask": _proto_handler(
                        next_subtask, pb.NextSubtaskRequest, pb.NextSubtaskReply
                    ),
                    "Verify": _proto_handler(verify, pb.VerifyRequest, pb.VerifyReply),
                },
            ),
        )
    )
    port = server.add_insecure_port(f"{host}:0")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f'golem-task-api-listening {{"role": "raw", "host": "{host}", "port": {port}}}',
          flush=True)
    await stop.wait()
    await server.stop(1.0)


def main() -> None:
    asyncio.run(serve(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"))


if __name__ == "__main__":
    main()
