"""What goes wrong, and how a task still ends well (or ends clearly): providers and
requestor apps killed, timeouts, aborts, subtasks restarted by the user."""

import json
import os
import signal
from pathlib import Path

from golem_task_api.node.state import SubtaskState, TaskState
from tests.node.taskmanager.conftest import Gates, gone, submit_parts, wait_for
from tests.node.taskmanager.journal_app import expected_output
from tests.node.taskmanager.test_tasks import journal_of, verdicts

S = SubtaskState
DATA = b"journal test data"


def output_of(tmp_path: Path) -> object:
    return json.loads((tmp_path / "out" / "result.json").read_text())


async def test_provider_killed_mid_compute_is_retried_on_another_node(
    make_node, journal_app, gates: Gates, tmp_path: Path
) -> None:
    node, recorder = await make_node(providers=2, slots=2)
    gates.hold("compute")
    task = submit_parts(node, journal_app, tmp_path, 2, "kill")
    running = node.manager.start(task.task_id)
    computing = await gates.wait("computing", 2)
    victim, pid = sorted(computing.items())[0]
    victim_node = node.db.subtask(victim).node_id
    os.kill(pid, signal.SIGKILL)
    failed = await recorder.wait("subtask_failed")
    assert failed[0].subtask_id == victim and failed[0].kind.state == "failed"
    gates.release("compute")
    final = await running
    assert final.state is TaskState.COMPLETED, final.error
    assert output_of(tmp_path) == expected_output("kill", 2, DATA)
    retry = recorder.named("subtask_retried")
    assert [e.kind.previous for e in retry] == [victim]
    assert retry[0].node_id != victim_node
    assert node.db.subtask(victim).state is S.FAILED
    # The app was told, handed the part out again, and verified each part once.
    journal = journal_of(node, task.task_id)
    assert {"op": "abort_subtask", "subtask": victim} in journal
    assert verdicts(journal) == {0: ["SUCCESS"], 1: ["SUCCESS"]}


async def test_requestor_app_killed_mid_task_is_restarted_and_nothing_is_lost(
    make_node, journal_app, gates: Gates, tmp_path: Path
) -> None:
    node, recorder = await make_node(providers=1, slots=2)
    gates.hold("verify")
    task = submit_parts(node, journal_app, tmp_path, 3, "req")
    running = node.manager.start(task.task_id)
    verifying = await gates.wait("verifying", 1)
    app = node.manager.ctx.apps.find("journal_app")
    assert app is not None
    requestor_pid = app.pid
    assert requestor_pid is not None and requestor_pid in verifying.values()
    os.killpg(requestor_pid, signal.SIGKILL)
    restarted = await recorder.wait("app_restarted")
    assert restarted[0].kind.app == "journal_app"
    gates.release("verify")
    final = await running
    assert final.state is TaskState.COMPLETED, final.error
    assert app.pid != requestor_pid and app.starts == 2
    assert output_of(tmp_path) == expected_output("req", 3, DATA)
    # The Verify the kill interrupted gave no verdict; each part has exactly one.
    assert verdicts(journal_of(node, task.task_id)) == {
        0: ["SUCCESS"], 1: ["SUCCESS"], 2: ["SUCCESS"]}
    assert gone(requestor_pid)


async def test_subtask_timeout_cancels_the_execution_and_the_part_is_computed_again(
    make_node, journal_app, gates: Gates, tmp_path: Path
) -> None:
    node, recorder = await make_node(providers=1)
    gates.hold("compute")
    task = submit_parts(node, journal_app, tmp_path, 1, "slow", subtask_timeout=1.0)
    running = node.manager.start(task.task_id)
    computing = await gates.wait("computing", 1)
    (slow, pid), = computing.items()
    failed = await recorder.wait("subtask_failed")
    assert failed[0].kind.state == "timed_out" and "subtask timeout (1 s)" in failed[0].kind.reason
    # The provider was stopped before the capacity was handed on.
    await wait_for(lambda: gone(pid))
    gates.release("compute")
    final = await running
    assert final.state is TaskState.COMPLETED, final.error
    assert node.db.subtask(slow).state is S.TIMED_OUT
    execution = node.nodes["node-1"].get_execution(node.db.subtask(slow).execution_id or "")
    assert execution.state.value == "cancelled"
    assert {"op": "abort_subtask", "subtask": slow} in journal_of(node, task.task_id)


async def test_task_timeout_aborts_the_task_and_stops_its_subtasks(
    make_node, journal_app, gates: Gates, tmp_path: Path
) -> None:
    node, recorder = await make_node(providers=1, slots=2)
    gates.hold("compute")
    task = submit_parts(node, journal_app, tmp_path, 2, "t", timeout=1.5)
    running = node.manager.start(task.task_id)
    pids = await gates.wait("computing", 2)
    final = await running
    assert final.state is TaskState.TIMED_OUT
    assert final.error == "the task did not finish within its timeout (1.5 s)"
    assert {s.state for s in node.db.subtasks(task.task_id)} == {S.ABORTED}
    assert journal_of(node, task.task_id)[-1] == {"op": "abort_task"}
    assert recorder.named("task_failed")[0].kind.state == "timed_out"
    for pid in pids.values():
        await wait_for(lambda pid=pid: gone(pid))
    assert not (tmp_path / "out").exists()


async def test_abort_stops_a_running_task(
    make_node, journal_app, gates: Gates, tmp_path: Path
) -> None:
    node, recorder = await make_node(providers=2, slots=2)
    gates.hold("compute")
    task = submit_parts(node, journal_app, tmp_path, 4, "a")
    running = node.manager.start(task.task_id)
    await gates.wait("computing", 2)
    aborted = await node.manager.abort(task.task_id)
    assert aborted.state is TaskState.ABORTED and aborted.error == "aborted by the user"
    assert (await running).state is TaskState.ABORTED
    assert recorder.named("task_aborted")
    assert journal_of(node, task.task_id)[-1] == {"op": "abort_task"}
    for compute_node in node.nodes.values():
        assert compute_node.info().used.cpu == 0
        states = {e.state.value for e in compute_node.executions(task_id=task.task_id)}
        assert states <= {"cancelled"}


async def test_restarted_subtasks_are_computed_again_and_delivered(
    make_node, journal_app, tmp_path: Path
) -> None:
    node, recorder = await make_node(providers=1)
    task = submit_parts(node, journal_app, tmp_path, 3, "again")
    assert (await node.manager.run(task.task_id)).state is TaskState.COMPLETED
    (tmp_path / "out" / "result.json").unlink()
    second = node.db.subtasks(task.task_id)[1]
    assert await node.manager.restart_subtasks(task.task_id, [second.subtask_id]) == [
        second.subtask_id]
    assert node.db.subtask(second.subtask_id).state is S.DISCARDED
    assert node.db.get_task(task.task_id).state is TaskState.RUNNING
    final = await node.manager.run(task.task_id)
    assert final.state is TaskState.COMPLETED, final.error
    assert output_of(tmp_path) == expected_output("again", 3, DATA)
    assert verdicts(journal_of(node, task.task_id)) == {
        0: ["SUCCESS"], 1: ["SUCCESS", "SUCCESS"], 2: ["SUCCESS"]}
    assert len(recorder.named("subtask_retried")) == 0
