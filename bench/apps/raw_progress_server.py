"""The baseline of bench.progress_stream: a bare grpc.aio streaming server.

    python -m bench.apps.raw_progress_server [HOST]

One server-streaming RPC, `/bench.RawProgress/Stream`, that takes our
ComputeWithProgressRequest (its params JSON: {"stream": {"seconds": s}})
and sends ComputeEvent(progress=ProgressEvent(...)) messages, each with a
new seq, time and message ("event i"), as fast as grpc.aio takes them for s
seconds, then one ComputeEvent(result=...): the same messages and shape as
ComputeWithProgress, with no framework (no tracker, throttle or handler).
It prints the same announce line as our entrypoint and serves until SIGTERM.
"""

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import grpc

# The generated messages only: golem_task_api/__init__ would import it all.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "golem_task_api" / "proto"))
import golem_task_api_pb2 as pb

SERVICE = "bench.RawProgress"
STREAM_METHOD = f"/{SERVICE}/Stream"


async def stream(request: Any, context: Any) -> Any:
    seconds = json.loads(request.compute.subtask_params_json)["stream"]["seconds"]
    deadline = time.perf_counter() + seconds
    seq = 0
    while time.perf_counter() < deadline:
        event = pb.ProgressEvent(
            seq=seq, state=pb.ProgressEvent.State.RUNNING, done=float(seq + 1),
            message=f"event {seq + 1}",
        )
        event.time.FromNanoseconds(time.time_ns())
        yield pb.ComputeEvent(progress=event)
        seq += 1
    final = pb.ProgressEvent(seq=seq, state=pb.ProgressEvent.State.SUCCEEDED, done=float(seq))
    final.time.FromNanoseconds(time.time_ns())
    yield pb.ComputeEvent(progress=final)
    yield pb.ComputeEvent(result=pb.ComputeReply(output_filepath="result.json"))


async def serve(host: str) -> None:
    server = grpc.aio.server()
    handler = grpc.unary_stream_rpc_method_handler(
        stream,
        request_deserializer=pb.ComputeWithProgressRequest.FromString,
        response_serializer=pb.ComputeEvent.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"Stream": handler}),)
    )
    port = server.add_insecure_port(f"{host}:0")
    await server.start()
    print(f'golem-task-api-listening {{"role": "raw", "host": "{host}", "port": {port}}}',
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"))
