"""Per-task records survive a restart of the requestor server on the same work dir.

A requestor app "must be restartable at any time with state read back from
the work dir": after a restart, the NOT_FOUND / ALREADY_EXISTS /
FAILED_PRECONDITION answers must be the same as before it.
"""

import grpc
import psutil
import pytest

from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto import golem_task_api_pb2_grpc as pb_grpc
from golem_task_api.server.task_records import RECORD_FILE_NAME
from tests.framework.conftest import OK, status_of_call
from tests.framework.echo_app import EchoRequestor
from tests.waiting import BOUND

C = grpc.StatusCode


class Requestor:
    """A RequestorAppServer in the test's loop, restartable on the same work dir."""

    def __init__(self, servers, work_dir) -> None:
        self.servers = servers
        self.work_dir = work_dir
        self.server = None
        self.channel = None
        self.stub: pb_grpc.RequestorAppStub

    async def start(self, handler: EchoRequestor | None = None) -> None:
        self.handler = handler or EchoRequestor()
        self.server = await self.servers.requestor(self.work_dir, self.handler)
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.server.port}")
        self.stub = pb_grpc.RequestorAppStub(self.channel)

    async def restart(self) -> None:
        await self.server.stop()
        await self.channel.close()
        await self.start()

    async def code(self, method: str, **fields) -> grpc.StatusCode:
        request = getattr(pb, f"{method}Request")(**fields)
        code, _details = await status_of_call(
            getattr(self.stub, method)(request, timeout=BOUND)
        )
        return code

    async def call(self, method: str, **fields):
        request = getattr(pb, f"{method}Request")(**fields)
        return await getattr(self.stub, method)(request, timeout=BOUND)

    async def verdict(self, task_id: str, subtask_id: str) -> int:
        return (await self.call("Verify", task_id=task_id, subtask_id=subtask_id)).result

    def deliver(self, task_id: str, subtask_id: str) -> None:
        out = self.work_dir.subtask_outputs_dir(task_id, subtask_id)
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.txt").write_text(subtask_id)


@pytest.fixture
async def app(servers, req_work_dir):
    requestor = Requestor(servers, req_work_dir)
    await requestor.start()
    yield requestor
    if requestor.channel is not None:
        await requestor.channel.close()


def create(task_id: str, count: int = 3, params: str = "{}") -> dict:
    return {"task_id": task_id, "max_subtasks_count": count, "task_params_json": params}


async def test_answers_stay_right_after_a_restart(app: Requestor) -> None:
    await app.call("CreateTask", **create("t1", 5))
    await app.call("NextSubtask", task_id="t1", subtask_id="s1", opaque_node_id="n")
    app.deliver("t1", "s1")
    assert await app.verdict("t1", "s1") == pb.VerifyReply.SUCCESS
    await app.call("NextSubtask", task_id="t1", subtask_id="s2", opaque_node_id="n")
    await app.call("NextSubtask", task_id="t1", subtask_id="s3", opaque_node_id="n")
    assert await app.verdict("t1", "s3") == pb.VerifyReply.FAILURE
    await app.call("NextSubtask", task_id="t1", subtask_id="s4", opaque_node_id="n")
    await app.call("AbortSubtask", task_id="t1", subtask_id="s4")
    await app.call("CreateTask", **create("t2", 1))
    await app.call("AbortTask", task_id="t2")
    assert await app.code("CreateTask", **create("t3", 1, '{"raise": "bad scene"}')) == C.INTERNAL

    for _ in range(2):  # twice: a restart also survives a restart
        await app.restart()
        assert await app.code("CreateTask", **create("t1")) == C.ALREADY_EXISTS
        assert await app.code("CreateTask", **create("t2")) == C.ALREADY_EXISTS
        assert await app.code("HasPendingSubtasks", task_id="nope") == C.NOT_FOUND
        assert await app.code("Verify", task_id="t1", subtask_id="nope") == C.NOT_FOUND
        assert await app.code("Verify", task_id="t1", subtask_id="s1") == C.FAILED_PRECONDITION
        assert await app.code("Verify", task_id="t1", subtask_id="s3") == C.FAILED_PRECONDITION
        assert await app.code("Verify", task_id="t1", subtask_id="s4") == C.FAILED_PRECONDITION
        assert await app.code(
            "NextSubtask", task_id="t1", subtask_id="s1", opaque_node_id="n"
        ) == C.ALREADY_EXISTS
        assert await app.code(
            "AbortSubtask", task_id="t1", subtask_id="s1"
        ) == C.FAILED_PRECONDITION
        assert await app.code(
            "NextSubtask", task_id="t2", subtask_id="x", opaque_node_id="n"
        ) == C.FAILED_PRECONDITION
        assert await app.code("Verify", task_id="t2", subtask_id="x") == C.FAILED_PRECONDITION
        assert not (await app.call("HasPendingSubtasks", task_id="t2")).has_pending_subtasks
        assert await app.code("HasPendingSubtasks", task_id="t3") == C.NOT_FOUND

    # s2 was issued before the restart: it can still be verified, once
    app.deliver("t1", "s2")
    assert await app.verdict("t1", "s2") == pb.VerifyReply.SUCCESS
    await app.restart()
    assert await app.code("Verify", task_id="t1", subtask_id="s2") == C.FAILED_PRECONDITION
    # the create that failed left the id free
    assert await app.code("CreateTask", **create("t3", 1)) == OK


async def test_discarded_subtask_after_a_restart(app: Requestor) -> None:
    await app.call("CreateTask", **create("t1", 2))
    await app.call("NextSubtask", task_id="t1", subtask_id="s1", opaque_node_id="n")
    app.deliver("t1", "s1")
    await app.call("Verify", task_id="t1", subtask_id="s1")
    reply = await app.call("DiscardSubtasks", task_id="t1", subtask_ids=["s1"])
    assert list(reply.discarded_subtask_ids) == ["s1"]
    await app.restart()
    assert await app.code("AbortSubtask", task_id="t1", subtask_id="s1") == OK
    assert await app.code("Verify", task_id="t1", subtask_id="s1") == C.FAILED_PRECONDITION
    assert await app.code(
        "NextSubtask", task_id="t1", subtask_id="s1", opaque_node_id="n"
    ) == C.ALREADY_EXISTS


async def test_a_dir_without_a_record_is_not_a_task(app: Requestor) -> None:
    """The node prepares the dir before CreateTask: that alone is no task."""
    app.work_dir.task_dir("t1").prepare()
    assert await app.code("HasPendingSubtasks", task_id="t1") == C.NOT_FOUND
    await app.restart()
    assert await app.code("HasPendingSubtasks", task_id="t1") == C.NOT_FOUND
    assert await app.code("CreateTask", **create("t1")) == OK
    await app.restart()
    assert await app.code("CreateTask", **create("t1")) == C.ALREADY_EXISTS


async def test_the_record_stays_out_of_task_outputs(app: Requestor) -> None:
    await app.call("CreateTask", **create("t1", 1))
    await app.call("NextSubtask", task_id="t1", subtask_id="s1", opaque_node_id="n")
    app.deliver("t1", "s1")
    await app.call("Verify", task_id="t1", subtask_id="s1")
    task_dir = app.work_dir.task_dir("t1")
    assert [p.name for p in task_dir.task_outputs_dir.iterdir()] == ["result_0.txt"]
    assert (task_dir / RECORD_FILE_NAME).is_file()


async def test_a_torn_last_line_is_ignored(app: Requestor) -> None:
    """A crash in the middle of a write leaves a partial last line."""
    await app.call("CreateTask", **create("t1", 5))
    await app.call("NextSubtask", task_id="t1", subtask_id="s1", opaque_node_id="n")
    await app.server.stop()
    with (app.work_dir / "t1" / RECORD_FILE_NAME).open("a") as record:
        record.write('["subtask", "s9", "iss')
    await app.channel.close()
    await app.start()
    assert await app.code(
        "NextSubtask", task_id="t1", subtask_id="s1", opaque_node_id="n"
    ) == C.ALREADY_EXISTS
    assert await app.code("Verify", task_id="t1", subtask_id="s9") == C.NOT_FOUND


# Found by this suite (the change after a torn line was lost); fixed in 5ff6b78.
async def test_changes_after_a_torn_line_survive_the_next_restart(app: Requestor) -> None:
    await app.call("CreateTask", **create("t1", 5))
    await app.server.stop()
    with (app.work_dir / "t1" / RECORD_FILE_NAME).open("a") as record:
        record.write('["subtask", "s9", "iss')
    await app.channel.close()
    await app.start()
    await app.call("NextSubtask", task_id="t1", subtask_id="s1", opaque_node_id="n")
    await app.restart()
    assert await app.code(
        "NextSubtask", task_id="t1", subtask_id="s1", opaque_node_id="n"
    ) == C.ALREADY_EXISTS


async def test_many_tasks_keep_few_files_open_and_lose_nothing(app: Requestor) -> None:
    """Records of many tasks: descriptors stay bounded, every change is on disk."""
    process = psutil.Process()
    baseline = process.num_fds()
    count = 100
    for i in range(count):
        await app.call("CreateTask", **create(f"t{i}", 2))
        await app.call("NextSubtask", task_id=f"t{i}", subtask_id="s1", opaque_node_id="n")
    for i in range(count):  # once more, after older files were closed
        await app.call("NextSubtask", task_id=f"t{i}", subtask_id="s2", opaque_node_id="n")
    assert process.num_fds() - baseline < 100
    await app.restart()
    for i in (0, 1, count // 2, count - 1):
        for subtask_id in ("s1", "s2"):
            assert await app.code(
                "NextSubtask", task_id=f"t{i}", subtask_id=subtask_id, opaque_node_id="n"
            ) == C.ALREADY_EXISTS


async def test_restarts_do_not_leak_descriptors(app: Requestor) -> None:
    process = psutil.Process()
    await app.call("CreateTask", **create("t0", 100))
    await app.restart()
    baseline = process.num_fds()
    for i in range(20):
        await app.call("NextSubtask", task_id="t0", subtask_id=f"s{i}", opaque_node_id="n")
        await app.restart()
    assert process.num_fds() - baseline < 10
