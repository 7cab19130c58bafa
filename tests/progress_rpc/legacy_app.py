"""An app built on the original protocol: a bare grpc.aio provider server.

    python -m tests.progress_rpc.legacy_app [--work-dir D] [--host H] provider PORT

It serves the original ProviderApp methods only (Compute, RunBenchmark,
Shutdown) and the standard Health service, with none of our framework: no
ComputeWithProgress, so a client asking for it gets UNIMPLEMENTED, as from
any app released before the extension. One Compute (it writes
`{subtask_id}/result.txt`) or a Shutdown, then it exits. It prints the same
announce line as our entrypoint, so LocalProcessService can start it.
"""

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from golem_task_api.proto import golem_task_api_pb2 as pb

SERVICE = "golem_task_api.ProviderApp"
ANNOUNCE_PREFIX = "golem-task-api-listening "


async def serve(work_dir: Path, host: str, port: int) -> None:
    done = asyncio.Event()

    async def compute(request: pb.ComputeRequest, context: grpc.aio.ServicerContext) -> Any:
        relative = Path(request.subtask_id) / "result.txt"
        (work_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (work_dir / relative).write_text(json.dumps({"legacy": True}))
        done.set()
        return pb.ComputeReply(output_filepath=str(relative))

    async def run_benchmark(request: pb.RunBenchmarkRequest, context: Any) -> Any:
        done.set()
        return pb.RunBenchmarkReply(score=1.0)

    async def shutdown(request: pb.ShutdownRequest, context: Any) -> Any:
        asyncio.get_running_loop().call_soon(done.set)
        return pb.ShutdownReply()

    def unary(method: Any, request: Any, reply: Any) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            method,
            request_deserializer=request.FromString,
            response_serializer=reply.SerializeToString,
        )

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler(SERVICE, {
            "Compute": unary(compute, pb.ComputeRequest, pb.ComputeReply),
            "RunBenchmark": unary(run_benchmark, pb.RunBenchmarkRequest, pb.RunBenchmarkReply),
            "Shutdown": unary(shutdown, pb.ShutdownRequest, pb.ShutdownReply),
        }),
    ))
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    info = {"role": "provider", "host": host, "port": bound, "pid": os.getpid()}
    print(ANNOUNCE_PREFIX + json.dumps(info), flush=True)
    await done.wait()
    await server.stop(5.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work-dir", type=Path, default=Path("."))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("role", choices=["provider"])
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    asyncio.run(serve(args.work_dir, args.host, args.port))


if __name__ == "__main__":
    main()
