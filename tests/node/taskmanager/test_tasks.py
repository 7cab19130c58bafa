"""Whole tasks through the task manager: real requestor and provider processes,
real compute nodes, node.db; the happy paths and the verdicts."""

import hashlib
import json
import time
from pathlib import Path

from apps.tutorial import pow
from golem_task_api.node.requestor.context import ManagerConfig
from golem_task_api.node.state import SubtaskState, TaskState
from tests.node.taskmanager.conftest import Gates, input_file, submit_parts
from tests.node.taskmanager.journal_app import expected_output, read_journal

S = SubtaskState


def journal_of(node: object, task_id: str) -> list[dict[str, object]]:
    dirs = node.dirs  # type: ignore[attr-defined]
    return read_journal(dirs.apps_dir / "journal_app" / task_id / "journal.jsonl")


def verdicts(journal: list[dict[str, object]]) -> dict[object, list[object]]:
    """part -> the verdicts the app gave for it, in order."""
    found: dict[object, list[object]] = {}
    for entry in journal:
        if entry.get("op") == "verify":
            found.setdefault(entry["part"], []).append(entry["verdict"])
    return found


async def test_tutorial_task_on_two_nodes(make_node, tutorial_app, tmp_path: Path) -> None:
    node, recorder = await make_node(providers=2, slots=2)
    data = tmp_path / "data.bin"
    data.write_bytes(b"tutorial on the node")
    params = {"difficulty": 8, "search_space": 40_000, "resources": ["data.bin"]}
    task = node.manager.submit(app=tutorial_app, params=params, inputs=[data], max_subtasks=4,
                               output_dir=tmp_path / "out")
    final = await node.manager.run(task.task_id)
    assert final.state is TaskState.COMPLETED, final.error
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["nonces"] == pow.search(b"tutorial on the node", 0, 40_000, 8)
    subtasks = node.db.subtasks(task.task_id)
    assert [s.state for s in subtasks] == [S.VERIFIED] * 4
    assert all(s.verify_calls == 1 and s.verdict_reported for s in subtasks)
    assert {s.node_id for s in subtasks} == {"node-1", "node-2"}
    # The app's own progress (ranges verified of all) reached the end.
    progress = recorder.named("task_progress")[-1].kind
    assert (progress.done, progress.total, progress.unit) == (4, 4, "Ranges")
    assert node.db.get_task(task.task_id).progress.done == 4
    # Each node's executions were all accepted, none left waiting.
    for compute_node in node.nodes.values():
        states = {e.state.value for e in compute_node.executions(task_id=task.task_id)}
        assert states <= {"completed", "cancelled"}


async def test_many_subtasks_in_flight_up_to_capacity(
    make_node, journal_app, gates: Gates, tmp_path: Path
) -> None:
    node, recorder = await make_node(providers=2, slots=4)
    gates.hold("compute")
    task = submit_parts(node, journal_app, tmp_path, 6, "cap")
    running = node.manager.start(task.task_id)
    # 2 nodes x 2 slots: four computes at once, not more, not one at a time.
    await gates.wait("computing", 4)
    assert len(recorder.named("subtask_issued")) == 4
    gates.release("compute")
    final = await running
    assert final.state is TaskState.COMPLETED, final.error
    assert json.loads((tmp_path / "out" / "result.json").read_text()) == expected_output(
        "cap", 6, b"journal test data")


async def test_forged_result_is_rejected_and_its_node_excluded(
    make_node, journal_app, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("JOURNAL_FORGE", "node-2")
    node, recorder = await make_node(providers=2, slots=2)
    task = submit_parts(node, journal_app, tmp_path, 4, "forge")
    final = await node.manager.run(task.task_id)
    assert final.state is TaskState.COMPLETED, final.error
    subtasks = node.db.subtasks(task.task_id)
    rejected = [s for s in subtasks if s.state is S.REJECTED]
    # node-2 may have had more subtasks before its first verdict came.
    assert rejected and {s.node_id for s in rejected} == {"node-2"}
    assert all("does not match" in (s.reason or "") for s in rejected)
    # Nothing more went to node-2 once a result of it was rejected.
    first_verdict = min(s.finished_at or 0 for s in rejected)
    assert all(s.node_id == "node-1" for s in subtasks if s.created_at > first_verdict)
    assert node.db.excluded_nodes(task.task_id).keys() == {"node-2"}
    assert [e.node_id for e in recorder.named("node_excluded")] == ["node-2"]
    # Each part was computed again on node-1: a retry of the rejected subtask.
    retried = recorder.named("subtask_retried")
    assert sorted(e.kind.previous for e in retried) == sorted(s.subtask_id for s in rejected)
    assert {e.node_id for e in retried} == {"node-1"}
    assert json.loads((tmp_path / "out" / "result.json").read_text()) == expected_output(
        "forge", 4, b"journal test data")
    # The node was told: its rejected execution failed, the others completed.
    executions = node.nodes["node-2"].executions(task_id=task.task_id)
    rejected_ids = {s.execution_id for s in rejected}
    assert {e.state.value for e in executions if e.execution_id in rejected_ids} == {"failed"}


async def test_every_node_excluded_fails_the_task_clearly(
    make_node, journal_app, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("JOURNAL_FORGE", "node-1")
    node, _ = await make_node(providers=1)
    task = submit_parts(node, journal_app, tmp_path, 2, "x")
    final = await node.manager.run(task.task_id)
    assert final.state is TaskState.FAILED
    assert "no compute node can take subtasks" in (final.error or "")
    assert "node-1: excluded" in (final.error or "")
    assert not (tmp_path / "out").exists()
    journal = journal_of(node, task.task_id)
    assert journal[-1] == {"op": "abort_task"}


async def test_awaiting_data_is_verified_again_with_backoff(
    make_node, journal_app, tmp_path: Path
) -> None:
    config = ManagerConfig(progress_interval=0.05, awaiting_data_delay=0.05)
    node, recorder = await make_node(providers=1, manager=config)
    task = node.manager.submit(app=journal_app,
                               params={"parts": 2, "seed": "wait", "await_data": 2},
                               inputs=[input_file(tmp_path)], max_subtasks=2,
                               output_dir=tmp_path / "out")
    started = time.monotonic()
    final = await node.manager.run(task.task_id)
    assert final.state is TaskState.COMPLETED, final.error
    # Twice AWAITING_DATA, then SUCCESS: three calls each, no more (no hot loop).
    assert verdicts(journal_of(node, task.task_id)) == {
        0: ["AWAITING_DATA", "AWAITING_DATA", "SUCCESS"],
        1: ["AWAITING_DATA", "AWAITING_DATA", "SUCCESS"],
    }
    assert [s.verify_calls for s in node.db.subtasks(task.task_id)] == [3, 3]
    delays = [e.kind.delay for e in recorder.named("subtask_awaiting_data")]
    assert sorted(delays) == [0.05, 0.05, 0.1, 0.1]
    assert time.monotonic() - started < 30


async def test_app_refusing_params_fails_the_task_as_a_user_error(
    make_node, journal_app, tmp_path: Path
) -> None:
    node, recorder = await make_node()
    task = node.manager.submit(app=journal_app, params={"parts": -3},
                               inputs=[input_file(tmp_path)], max_subtasks=2,
                               output_dir=tmp_path / "out")
    final = await node.manager.run(task.task_id)
    assert final.state is TaskState.FAILED
    assert final.error == "the app refused the task: parts must be a positive integer, got -3"
    assert [e.name for e in recorder.events if e.task_id == task.task_id][-1] == "task_failed"


async def test_missing_input_fails_the_task(make_node, journal_app, tmp_path: Path) -> None:
    node, _ = await make_node()
    task = node.manager.submit(app=journal_app, params={"parts": 1},
                               inputs=[tmp_path / "nowhere.txt"], max_subtasks=1,
                               output_dir=tmp_path / "out")
    final = await node.manager.run(task.task_id)
    assert final.state is TaskState.FAILED
    assert "nowhere.txt is missing" in (final.error or "")


async def test_opaque_node_ids_are_salted_hashes_stable_per_work_dir(
    make_node, tmp_path: Path
) -> None:
    node, _ = await make_node(providers=2, slots=2)
    opaque = node.manager.ctx.opaque
    first = opaque.of("node-1")
    assert len(first) == 64 and first != opaque.of("node-2")
    assert "node-1" not in first
    assert first != hashlib.sha3_256(b"node-1").hexdigest()
