"""What the servers hand to the handlers and make of their results; concurrency; stop()."""

import asyncio
import json
from pathlib import Path

import grpc
import pytest

from golem_task_api import errors
from golem_task_api.dirutils import ProviderTaskDir, RequestorTaskDir
from golem_task_api.enums import VerifyResult
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto import golem_task_api_pb2_grpc as pb_grpc
from golem_task_api.structs import Infrastructure, Subtask, Task
from tests.framework.conftest import RequestorApp, status_of_call
from tests.framework.echo_app import EchoProvider, EchoRequestor
from tests.waiting import BOUND, bounded, poll


class ArgsRequestor(EchoRequestor):
    """Records the arguments the server passes."""

    def __init__(self) -> None:
        super().__init__()
        self.args: list[tuple] = []

    async def create_task(self, task_work_dir, max_subtasks_count, task_params):
        self.args.append(("create_task", task_work_dir, max_subtasks_count, task_params))
        return await super().create_task(task_work_dir, max_subtasks_count, task_params)

    async def next_subtask(self, task_work_dir, subtask_id, opaque_node_id):
        self.args.append(("next_subtask", task_work_dir, subtask_id, opaque_node_id))
        return await super().next_subtask(task_work_dir, subtask_id, opaque_node_id)

    async def discard_subtasks(self, task_work_dir, subtask_ids):
        self.args.append(("discard_subtasks", task_work_dir, subtask_ids))
        return await super().discard_subtasks(task_work_dir, subtask_ids)

    async def run_benchmark(self, work_dir):
        self.args.append(("run_benchmark", work_dir))
        return await super().run_benchmark(work_dir)


class ArgsProvider(EchoProvider):
    def __init__(self) -> None:
        super().__init__()
        self.args: list[tuple] = []

    async def compute(self, task_work_dir, subtask_id, subtask_params):
        self.args.append(("compute", task_work_dir, subtask_id, subtask_params))
        return await super().compute(task_work_dir, subtask_id, subtask_params)

    async def run_benchmark(self, work_dir):
        self.args.append(("run_benchmark", work_dir))
        return await super().run_benchmark(work_dir)


async def test_requestor_handler_arguments(servers, req_work_dir) -> None:
    handler = ArgsRequestor()
    server = await servers.requestor(req_work_dir, handler)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RequestorAppStub(channel)
        params = {"n": 1, "list": [1, "a"], "nested": {"x": None}}
        await stub.CreateTask(pb.CreateTaskRequest(
            task_id="t1", max_subtasks_count=7, task_params_json=json.dumps(params)
        ), timeout=BOUND)
        await stub.NextSubtask(pb.NextSubtaskRequest(
            task_id="t1", subtask_id="s1", opaque_node_id="node-\u00e9"
        ), timeout=BOUND)
        await stub.DiscardSubtasks(pb.DiscardSubtasksRequest(
            task_id="t1", subtask_ids=["s1"]
        ), timeout=BOUND)
        await stub.RunBenchmark(pb.RunBenchmarkRequest(), timeout=BOUND)
    (_c, task_dir, count, got), (_n, task_dir2, sid, node), (_d, task_dir3, ids), (_r, wd) = (
        handler.args
    )
    assert isinstance(task_dir, RequestorTaskDir) and task_dir == req_work_dir / "t1"
    # the four subdirs exist before create_task runs (for callers that do not prepare it)
    assert task_dir.task_inputs_dir.is_dir() and task_dir.subtask_outputs_top_dir.is_dir()
    assert (count, got) == (7, params)
    assert task_dir2 == task_dir3 == task_dir and isinstance(task_dir2, RequestorTaskDir)
    assert (sid, node, ids) == ("s1", "node-\u00e9", ["s1"])
    assert isinstance(wd, Path) and wd == req_work_dir


async def test_provider_handler_arguments(servers, prov_task_dir) -> None:
    handler = ArgsProvider()
    server = await servers.provider(prov_task_dir, handler)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        reply = await pb_grpc.ProviderAppStub(channel).Compute(pb.ComputeRequest(
            task_id="task-1", subtask_id="s1", subtask_params_json='{"frame": 3}'
        ), timeout=BOUND)
    ((_c, task_dir, subtask_id, params),) = handler.args
    # the provider's work dir is the task dir (as in the original)
    assert isinstance(task_dir, ProviderTaskDir) and task_dir == prov_task_dir
    assert (subtask_id, params) == ("s1", {"frame": 3})
    assert reply.output_filepath == "s1/result.txt"


async def test_provider_benchmark_gets_the_work_dir(servers, prov_task_dir) -> None:
    handler = ArgsProvider()
    server = await servers.provider(prov_task_dir, handler)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        await pb_grpc.ProviderAppStub(channel).RunBenchmark(pb.RunBenchmarkRequest())
    ((_r, work_dir),) = handler.args
    assert isinstance(work_dir, Path) and work_dir == prov_task_dir


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (Task("docker_cpu", {"image": "i", "tag": "t"}),
         Task("docker_cpu", {"image": "i", "tag": "t"}, Infrastructure(None))),
        (Task("docker_gpu", {"image": "i", "tag": "t"}, Infrastructure(2048.5)),
         Task("docker_gpu", {"image": "i", "tag": "t"}, Infrastructure(2048.5))),
        (Task("docker_cpu", {}), Task("docker_cpu", {}, Infrastructure(None))),
    ],
)
async def test_create_task_reply(requestor: RequestorApp, task: Task, expected: Task) -> None:
    requestor.handler.next_task = task
    assert await requestor.client.create_task("t1", 1, {}) == expected
    reply = await requestor.stub.CreateTask(pb.CreateTaskRequest(
        task_id="t2", max_subtasks_count=1, task_params_json="{}"
    ), timeout=BOUND)
    assert reply.env_id == task.env_id
    assert json.loads(reply.prerequisites_json) == task.prerequisites
    assert reply.inf_requirements.min_memory_mib == (task.inf_requirements.min_memory_mib or 0)


async def test_next_subtask_reply(requestor: RequestorApp) -> None:
    await requestor.create("t1", 2)
    requestor.handler.next_params = {"frames": [1, 2], "q": 0.5}
    subtask = await requestor.client.next_subtask("t1", "s1", "n")
    assert subtask == Subtask(params={"frames": [1, 2], "q": 0.5}, resources=["part_0.in"])
    raw = await requestor.stub.NextSubtask(pb.NextSubtaskRequest(
        task_id="t1", subtask_id="s2", opaque_node_id="n"
    ), timeout=BOUND)
    assert raw.WhichOneof("subtask_oneof") == "subtask"
    assert json.loads(raw.subtask.subtask_params_json) == {"frames": [1, 2], "q": 0.5}
    # nothing left: an empty reply, which the client turns into None
    raw = await requestor.stub.NextSubtask(pb.NextSubtaskRequest(
        task_id="t1", subtask_id="s3", opaque_node_id="n"
    ), timeout=BOUND)
    assert raw.ByteSize() == 0 and not raw.HasField("subtask")
    assert await requestor.client.next_subtask("t1", "s4", "n") is None


@pytest.mark.parametrize("verdict", list(VerifyResult))
async def test_verify_reply(requestor: RequestorApp, verdict: VerifyResult) -> None:
    await requestor.create("t1", 2)
    await requestor.issue("t1", "s1")
    await requestor.issue("t1", "s2")
    requestor.handler.next_verdict = (verdict, None)
    raw = await requestor.verify("t1", "s1")
    assert (raw.result, raw.reason) == (verdict.value, "")
    requestor.handler.next_verdict = (verdict, "because")
    assert await requestor.client.verify("t1", "s2") == (verdict, "because")


async def test_provider_handler_chooses_its_status(providers) -> None:
    """Apps check their params: InvalidArgument from compute is INVALID_ARGUMENT."""

    class Strict(EchoProvider):
        async def compute(self, task_work_dir, subtask_id, subtask_params):
            raise errors.InvalidArgument("frame must be 1-250, got 0")

    app = await providers(Strict())
    code, details = await status_of_call(app.compute("s1"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "frame must be" in details
    await app.wait_exit()


async def test_tasks_are_served_concurrently(requestor: RequestorApp, tmp_path) -> None:
    """One requestor serves many tasks: a slow call of one task blocks no other."""
    hold, entered = tmp_path / "hold", tmp_path / "entered"
    slow = asyncio.ensure_future(requestor.client.create_task(
        "slow", 1, {"hold": str(hold), "entered": str(entered)}
    ))
    await poll(entered.exists, "the slow create_task to start")
    for i in range(5):
        await bounded(requestor.client.create_task(f"t{i}", 1, {}), f"create t{i}", 5.0)
        assert await requestor.client.next_subtask(f"t{i}", "s1", "n") is not None
    assert not slow.done()
    hold.touch()
    await bounded(slow, "the slow create_task")


async def test_many_concurrent_calls(requestor: RequestorApp) -> None:
    await asyncio.gather(*(requestor.client.create_task(f"t{i}", 2, {}) for i in range(20)))
    subtasks = await asyncio.gather(*(
        requestor.client.next_subtask(f"t{i}", f"s{j}", "n") for i in range(20) for j in range(2)
    ))
    assert all(s is not None for s in subtasks)
    assert sorted(p.name for p in requestor.work_dir.iterdir()) == sorted(
        f"t{i}" for i in range(20)
    )


async def test_stop_does_not_wait_forever_for_a_hung_handler(servers, req_work_dir) -> None:
    class Hangs(EchoRequestor):
        async def has_pending_subtasks(self, task_work_dir):
            self.entered["has_pending_subtasks"].set()
            await asyncio.Event().wait()  # never
            return True

    handler = Hangs()
    server = await servers.requestor(req_work_dir, handler)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RequestorAppStub(channel)
        await stub.CreateTask(pb.CreateTaskRequest(
            task_id="t1", max_subtasks_count=1, task_params_json="{}"
        ), timeout=BOUND)
        call = stub.HasPendingSubtasks(pb.HasPendingSubtasksRequest(task_id="t1"), timeout=BOUND)
        await poll(handler.entered["has_pending_subtasks"].is_set, "the handler to hang")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await bounded(server.stop(grace=0.3), "stop()", 5.0)
        assert loop.time() - started < 3.0
        code, _details = await status_of_call(call)
        assert code != grpc.StatusCode.OK
