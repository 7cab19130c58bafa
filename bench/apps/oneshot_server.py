"""The baseline of bench.provider_cold_start: a minimal one-shot provider.

    python -m bench.apps.oneshot_server WORK_DIR [HOST]

What any one-shot grpc.aio provider must do, and nothing else: serve the
standard Health service (SERVING) and one unary Compute RPC at our method
path with our generated messages, write a tiny result file, answer, stop,
exit. No framework (the generated module is loaded on its own, without the
`golem_task_api` package), no reflection, no TLS check, no argparse or
logging set-up.
"""

import asyncio
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

# The generated messages only: golem_task_api/__init__ would import it all.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "golem_task_api" / "proto"))
import golem_task_api_pb2 as pb

SERVICE = "golem_task_api.ProviderApp"
RESULT = b"ok\n"


async def serve(work_dir: Path, host: str) -> None:
    done = asyncio.Event()

    async def compute(
        request: pb.ComputeRequest, context: grpc.aio.ServicerContext
    ) -> pb.ComputeReply:
        name = f"{request.subtask_id}.result"
        (work_dir / name).write_bytes(RESULT)
        done.set()
        return pb.ComputeReply(output_filepath=name)

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        compute,
        request_deserializer=pb.ComputeRequest.FromString,
        response_serializer=pb.ComputeReply.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"Compute": handler}),)
    )
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port(f"{host}:0")
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    print(f'golem-task-api-listening {{"role": "provider", "host": "{host}", "port": {port}}}',
          flush=True)
    await done.wait()
    # The grace only waits for the call in flight: the reply goes out.
    await server.stop(5.0)


def main() -> None:
    asyncio.run(serve(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"))


if __name__ == "__main__":
    main()
