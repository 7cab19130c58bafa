"""Every server serves grpc.health.v1.Health and server reflection."""

import asyncio

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto import golem_task_api_pb2_grpc as pb_grpc
from tests.framework.echo_app import BENCHMARK_SCORE, PROVIDER_BENCHMARK_SCORE
from tests.waiting import BOUND, bounded

SERVICES = {
    "requestor": "golem_task_api.RequestorApp",
    "provider": "golem_task_api.ProviderApp",
}


@pytest.fixture(params=["requestor", "provider"])
async def server(request, servers, req_work_dir, prov_task_dir):
    role = request.param
    if role == "requestor":
        started = await servers.requestor(req_work_dir)
    else:
        started = await servers.provider(prov_task_dir)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{started.port}") as channel:
        yield role, started, channel


async def test_health(server) -> None:
    role, _server, channel = server
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICES[role]):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=BOUND)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=BOUND)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_health_watch_sees_the_stop(server) -> None:
    role, started, channel = server
    stub = health_pb2_grpc.HealthStub(channel)
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=SERVICES[role]), timeout=BOUND)
    first = await watch.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    stopping = asyncio.ensure_future(started.stop(grace=2.0))
    second = await watch.read()  # told before the server goes away
    assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()
    await bounded(stopping, "stop()")


async def reflect(channel, **request) -> list:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=BOUND
    )
    return [reply async for reply in call]


async def test_reflection_lists_the_services(server) -> None:
    role, _server, channel = server
    (reply,) = await reflect(channel, list_services="")
    names = {s.name for s in reply.list_services_response.service}
    assert names == {
        SERVICES[role], "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"
    }


async def test_reflection_describes_the_app_service(server) -> None:
    role, _server, channel = server
    (reply,) = await reflect(channel, file_containing_symbol=SERVICES[role])
    files = {}
    for data in reply.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(data)
        files[proto.name] = proto
    main = next(p for p in files.values() if p.package == "golem_task_api" and p.service)
    service = next(s for s in main.service if f"golem_task_api.{s.name}" == SERVICES[role])
    methods = {m.name for m in service.method}
    expected = {"Compute", "RunBenchmark", "Shutdown"} if role == "provider" else {
        "CreateTask", "NextSubtask", "Verify", "DiscardSubtasks", "RunBenchmark",
        "HasPendingSubtasks", "AbortTask", "AbortSubtask", "Shutdown",
    }
    assert expected <= methods


@pytest.mark.parametrize("role", ["requestor", "provider"])
async def test_every_service_is_served_by_generic_handlers_only(
    role, servers, req_work_dir, prov_task_dir, monkeypatch
) -> None:
    """grpc.aio waits on every "registered method" after each call, which made
    each call of ours cost more server CPU (server/registration.py): no
    service (the app's, Health, reflection) registers one, and all answer."""
    registered: list[str] = []
    monkeypatch.setattr(
        grpc.aio._server.Server, "add_registered_method_handlers",
        lambda self, service, handlers: registered.append(service),
    )
    if role == "requestor":
        started = await servers.requestor(req_work_dir)
    else:
        started = await servers.provider(prov_task_dir)
    assert registered == []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{started.port}") as channel:
        if role == "requestor":
            stub = pb_grpc.RequestorAppStub(channel)
            reply = await stub.RunBenchmark(pb.RunBenchmarkRequest(), timeout=BOUND)
            assert reply.score == BENCHMARK_SCORE
        else:
            stub = pb_grpc.ProviderAppStub(channel)
            reply = await stub.RunBenchmark(pb.RunBenchmarkRequest(), timeout=BOUND)
            assert reply.score == PROVIDER_BENCHMARK_SCORE
        health = health_pb2_grpc.HealthStub(channel)
        check = await health.Check(
            health_pb2.HealthCheckRequest(service=SERVICES[role]), timeout=BOUND
        )
        assert check.status == health_pb2.HealthCheckResponse.SERVING
        (listing,) = await reflect(channel, list_services="")
        assert len(listing.list_services_response.service) == 3
