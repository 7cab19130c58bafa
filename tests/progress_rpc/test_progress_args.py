"""Bad ProgressArgs: INVALID_ARGUMENT, and the provider's one request is not used up."""

import math

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from golem_task_api import errors
from golem_task_api.client import ProviderAppClient
from golem_task_api.proto import golem_task_api_pb2 as pb
from tests.progress_rpc.conftest import OK, TASK_ID, State, compute_request, read_all
from tests.waiting import BOUND


def with_args(**fields) -> pb.ComputeWithProgressRequest:
    request = compute_request({"report": [1, 2]})
    request.progress.Clear()
    if "seconds" in fields or "nanos" in fields:
        request.progress.update_interval.seconds = fields.get("seconds", 0)
        request.progress.update_interval.nanos = fields.get("nanos", 0)
    if "step" in fields:
        request.progress.update_step = fields["step"]
    return request


BAD = {
    "negative-interval": {"seconds": -1},
    "negative-nanos": {"nanos": -1},
    "nan-step": {"step": math.nan},
    "negative-step": {"step": -1.0},
    "minus-infinite-step": {"step": -math.inf},
}


@pytest.mark.parametrize("args", list(BAD.values()), ids=list(BAD))
async def test_bad_progress_args_are_refused_before_the_request_is_used(
    inline_provider, args
) -> None:
    provider = await inline_provider()
    refused = await read_all(provider.compute_with_progress(with_args(**args)))
    assert refused.code == grpc.StatusCode.INVALID_ARGUMENT, (refused.code, refused.details)
    assert "update" in refused.details
    assert (refused.progress, refused.results) == ([], [])
    assert not provider.handler.entered.is_set()
    # Still serving, and its one request still to come.
    health = health_pb2_grpc.HealthStub(provider.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=BOUND)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    outcome = await read_all(provider.compute_with_progress(with_args(step=0.5)))
    assert outcome.code is OK
    assert outcome.terminal.state == State.SUCCEEDED and len(outcome.results) == 1
    await provider.wait_exit()


async def test_odd_but_valid_progress_args(inline_provider) -> None:
    """Zero (the 10 ms floor), an infinite step (no step), a huge interval."""
    for args in ({"seconds": 0}, {"step": math.inf}, {"seconds": 10**9}, {"step": 0.0}):
        provider = await inline_provider()
        outcome = await read_all(provider.compute_with_progress(with_args(**args)))
        assert outcome.code is OK, (args, outcome.code, outcome.details)
        assert outcome.terminal.state == State.SUCCEEDED
        await provider.wait_exit()


async def test_our_client_with_bad_progress_args_leaves_the_provider_usable(
    processes, prov_task_dir
) -> None:
    service = processes("tests.progress_rpc.progress_app", prov_task_dir)
    client = await ProviderAppClient.create(service, port=0)
    with pytest.raises((errors.InvalidArgument, ValueError)):
        async for _ in client.compute_with_progress(TASK_ID, "s1", {}, update_interval=-1.0):
            pass
    assert service.running()
    assert await client.compute(TASK_ID, "s1", {})
