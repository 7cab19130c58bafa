"""The baseline of bench.requestor_rpc: a bare grpc.aio server, no framework.

    python -m bench.apps.raw_server [HOST]

One generic unary method, `/bench.Raw/Empty`, that answers b"" to anything
(no protobuf, no handler logic): the cheapest RPC grpc.aio can serve. It
listens on a free port, prints the same announce line as our entrypoint,
and serves until SIGTERM or SIGINT.
"""

import asyncio
import signal
import sys

import grpc

SERVICE = "bench.Raw"
EMPTY_METHOD = f"/{SERVICE}/Empty"


async def empty(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b""


async def serve(host: str) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {"Empty": grpc.unary_unary_rpc_method_handler(empty)}
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
