"""Our clients against an app built on the original protocol (no
ComputeWithProgress): plain Compute, the result returned; and against ours."""

import json
from pathlib import Path

import grpc
import pytest

from golem_task_api.client import ProviderAppClient
from golem_task_api.client.provider import ComputeResult
from golem_task_api.progress import ProgressUpdate, State
from golem_task_api.proto import golem_task_api_pb2_grpc as pb_grpc
from tests.progress_rpc.conftest import LEGACY_APP, PROGRESS_APP, TASK_ID, compute_request, read_all
from tests.waiting import bounded


async def test_the_legacy_app_has_no_compute_with_progress(process_provider) -> None:
    provider = await process_provider(LEGACY_APP)
    outcome = await read_all(provider.compute_with_progress(compute_request(interval=0.05)))
    assert outcome.code == grpc.StatusCode.UNIMPLEMENTED
    # Its one request is still to come: plain Compute works.
    reply = await provider.compute()
    assert reply.output_filepath == str(Path("s1") / "result.txt")
    await provider.wait_exit()


async def test_compute_with_progress_falls_back_to_compute(processes, prov_task_dir) -> None:
    service = processes(LEGACY_APP, prov_task_dir)
    client = await ProviderAppClient.create(service, port=0)
    items = [
        item async for item in client.compute_with_progress(
            TASK_ID, "s1", {"x": 1}, update_interval=0.05
        )
    ]
    assert items == [ComputeResult(Path("s1") / "result.txt")]
    assert json.loads((prov_task_dir / "s1" / "result.txt").read_text()) == {"legacy": True}
    # The app exited after its request, by itself.
    await bounded(service.wait_until_shutdown_complete(), "the legacy app's exit")
    assert service.returncode == 0


async def test_compute_with_on_progress_falls_back_to_compute(processes, prov_task_dir) -> None:
    service = processes(LEGACY_APP, prov_task_dir)
    client = await ProviderAppClient.create(service, port=0)
    updates: list[ProgressUpdate] = []
    path = await client.compute(TASK_ID, "s1", {}, on_progress=updates.append, update_step=1.0)
    assert path == Path("s1") / "result.txt"
    assert updates == []
    await bounded(service.wait_until_shutdown_complete(), "the legacy app's exit")


async def test_compute_with_on_progress_against_our_app(processes, prov_task_dir) -> None:
    service = processes("tests.progress_rpc.progress_app", prov_task_dir)
    client = await ProviderAppClient.create(service, port=0)
    updates: list[ProgressUpdate] = []
    path = await client.compute(
        TASK_ID, "s1", {"report": [2, 5]}, on_progress=updates.append, update_interval=0.01
    )
    assert path == Path("s1") / "result.json"
    assert [u.seq for u in updates] == list(range(len(updates)))
    assert updates[-1].state is State.SUCCEEDED
    assert (updates[-1].value.done, updates[-1].value.total, updates[-1].fraction) == (5, 5, 1.0)
    assert updates[-1].value.unit == "Items"
    await bounded(service.wait_until_shutdown_complete(), "the app's exit")


async def consume_until_result(client: ProviderAppClient) -> Path:
    """What a caller may do: leave the loop at the result (the stream's end)."""
    async for item in client.compute_with_progress(TASK_ID, "s1", {}, update_interval=0.01):
        if isinstance(item, ComputeResult):
            return item.output_filepath
    raise AssertionError("no result")


@pytest.mark.parametrize(
    ("app", "how"),
    [(LEGACY_APP, "on_progress"), (PROGRESS_APP, "on_progress"), (PROGRESS_APP, "return")],
    ids=["legacy-on_progress", "ours-on_progress", "ours-return-at-result"],
)
async def test_after_the_result_the_provider_exits_by_itself(
    processes, prov_task_dir, app: str, how: str
) -> None:
    """Was a bug until f462006: compute() returned from inside `async for`,
    and the abandoned generator's close shut the app down (Shutdown, SIGTERM)
    while it was exiting by itself."""
    service = processes(app, prov_task_dir)
    client = await ProviderAppClient.create(service, port=0)
    if how == "on_progress":
        path = await client.compute(TASK_ID, "s1", {}, on_progress=lambda _: None)
    else:
        path = await consume_until_result(client)
    assert path.parts[0] == "s1"
    await bounded(service.wait_until_shutdown_complete(), "the app's exit")
    # The app ended its one request and exited: nobody had to stop it.
    assert not client.shut_down
    assert service.returncode == 0


async def test_the_raw_stub_of_an_old_node_still_gets_compute(process_provider) -> None:
    """A node built before the extension calls Compute; our app answers it."""
    provider = await process_provider()
    stub = pb_grpc.ProviderAppStub(provider.channel)
    reply = await stub.Compute(compute_request({"report": [1, 1]}).compute, timeout=20)
    assert reply.output_filepath == str(Path("s1") / "result.json")
    await provider.wait_exit()
