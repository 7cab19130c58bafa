"""The node killed with SIGKILL at several points, then `resume`: every task completes,
each part is verified exactly once (the app's journal of verdicts), and the output
is the one an uninterrupted run gives. Also `abort` from another terminal."""

import json
import time

import psutil
import pytest

from golem_task_api.node.state import NodeDB, SubtaskState, TaskState
from tests.node.cli.conftest import Cli, verdicts
from tests.node.taskmanager.conftest import BOUND
from tests.node.taskmanager.journal_app import expected_output

S = SubtaskState
DATA = b"journal test data"


def db_of(cli: Cli) -> NodeDB:
    return NodeDB(cli.work_dir / "node.db", create=False)


def resume_and_check(cli: Cli, task_id: str, seed: str, parts: int, hold: str) -> None:
    """Resume (the gate `hold` still closed), open it once the work is back, check the end."""
    cli.gates.clear("computing")
    cli.gates.clear("verifying")
    resume = cli.start("resume")
    cli.gates.wait_sync("computing" if hold == "compute" else "verifying")
    cli.gates.release(hold)
    code, stdout, stderr = cli.finish(resume)
    assert code == 0, stderr
    assert stdout.strip() == str(cli.output)
    assert json.loads((cli.output / "result.json").read_text()) == expected_output(
        seed, parts, DATA)
    assert verdicts(cli.journal(task_id)) == {part: ["SUCCESS"] for part in range(parts)}
    db = db_of(cli)
    try:
        assert db.get_task(task_id).state is TaskState.COMPLETED
        verified = db.subtasks(task_id, [S.VERIFIED])
        assert sorted(s.params["part"] for s in verified) == list(range(parts))  # type: ignore[index]
    finally:
        db.close()


def test_node_killed_during_compute(cli: Cli) -> None:
    cli.gates.hold("compute")
    run = cli.run_journal("--providers", "2", "--slots", "2", parts=3, seed="compute")
    computing = cli.gates.wait_sync("computing", 2)
    task_id = cli.task_id()
    # status works from another process while the node runs.
    status = cli.run("status", task_id[:6])
    assert status.returncode == 0, status.stderr
    assert "running" in status.stdout and "computing" in status.stdout
    cli.kill(run)
    resume_and_check(cli, task_id, "compute", 3, hold="compute")
    # The providers the dead node left were killed by the next one.
    for pid in computing.values():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == \
            psutil.STATUS_ZOMBIE
    db = db_of(cli)
    try:
        lost = db.subtasks(task_id, [S.LOST])
        assert len(lost) == 2 and all("computing" in (s.reason or "") for s in lost)
    finally:
        db.close()
    assert {"op": "abort_subtask", "subtask": lost[0].subtask_id} in cli.journal(task_id)


def test_node_killed_right_after_a_download(cli: Cli) -> None:
    cli.gates.hold("verify")
    run = cli.run_journal(parts=2, seed="download")
    cli.wait_event("subtask_downloaded")
    cli.kill(run)
    task_id = cli.task_id()
    db = db_of(cli)
    try:
        states = {s.state for s in db.subtasks(task_id)}
        # Recorded as downloaded (or its Verify had just been asked: verifying).
        assert states & {S.DOWNLOADED, S.VERIFYING}
    finally:
        db.close()
    assert verdicts(cli.journal(task_id)) == {}
    resume_and_check(cli, task_id, "download", 2, hold="verify")


def test_node_killed_during_verify(cli: Cli) -> None:
    cli.gates.hold("verify")
    run = cli.run_journal(parts=2, seed="verify")
    verifying = cli.gates.wait_sync("verifying")
    task_id = cli.task_id()
    cli.kill(run)
    # The requestor app dies with its node (it was blocked in Verify).
    requestor = next(iter(verifying.values()))
    assert set(verifying.values()) == {requestor}
    psutil.wait_procs([p for p in [_process(requestor)] if p is not None], timeout=10)
    assert _process(requestor) is None
    assert verdicts(cli.journal(task_id)) == {}
    resume_and_check(cli, task_id, "verify", 2, hold="verify")
    db = db_of(cli)
    try:
        # The subtask killed mid-Verify was verified again, not computed again.
        for interrupted in verifying:
            again = db.subtask(interrupted)
            assert again is not None and again.state is S.VERIFIED and again.verify_calls == 2
    finally:
        db.close()


def test_a_verdict_the_app_took_before_the_crash_is_not_taken_again(cli: Cli) -> None:
    code, _, stderr = cli.finish(cli.run_journal(parts=2, seed="taken"))
    assert code == 0, stderr
    task_id = cli.task_id()
    # As if the node died between the app's SUCCESS and its own record of it.
    db = db_of(cli)
    try:
        first = db.subtasks(task_id)[0]
        db.update_subtask(first.subtask_id, state=S.VERIFYING)
        db.update_task(task_id, state=TaskState.RUNNING)
    finally:
        db.close()
    (cli.output / "result.json").unlink()
    resumed = cli.run("resume")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((cli.output / "result.json").read_text()) == expected_output(
        "taken", 2, DATA)
    assert verdicts(cli.journal(task_id)) == {0: ["SUCCESS"], 1: ["SUCCESS"]}
    db = db_of(cli)
    try:
        again = db.subtask(first.subtask_id)
        assert again is not None and again.state is S.VERIFIED and again.verify_calls == 2
    finally:
        db.close()


def test_abort_from_another_terminal(cli: Cli) -> None:
    cli.gates.hold("compute")
    run = cli.run_journal("--providers", "2", "--slots", "2", parts=4, seed="abort")
    computing = cli.gates.wait_sync("computing", 2)
    task_id = cli.task_id()
    aborted = cli.run("abort", task_id[:8])
    assert aborted.returncode == 0, aborted.stderr
    assert f"task {task_id} aborted" in aborted.stdout
    code, stdout, stderr = cli.finish(run)
    assert code == 1 and stdout == ""
    assert "aborted" in stderr
    assert cli.journal(task_id)[-1] == {"op": "abort_task"}
    for pid in computing.values():
        assert _process(pid) is None
    again = cli.run("abort", task_id)
    assert again.returncode == 0 and "already aborted" in again.stdout


def test_abort_with_no_node_running(cli: Cli) -> None:
    cli.gates.hold("compute")
    run = cli.run_journal(parts=2, seed="offline")
    cli.gates.wait_sync("computing", 1)
    task_id = cli.task_id()
    cli.kill(run)
    aborted = cli.run("abort", task_id)
    assert aborted.returncode == 0, aborted.stderr
    # The app was started to take the abort, and stopped again.
    assert cli.journal(task_id)[-1] == {"op": "abort_task"}
    status = cli.run("status", task_id)
    assert "aborted" in status.stdout
    nothing = cli.run("resume")
    assert nothing.returncode == 0 and "no unfinished tasks" in nothing.stdout


@pytest.mark.parametrize("cold", [False, True], ids=["warm", "cold"])
def test_a_node_killed_while_a_provider_starts_leaves_nothing(cli: Cli, cold: bool) -> None:
    """The provider's process group is recorded as soon as the process exists,
    not once it serves, so the next node (here `abort` with no node running)
    kills it. Recorded once it served, such a provider served for ever: seen
    as a rare leftover in full test runs."""
    cli.gates.hold("start")
    run = cli.run_journal(*(["--cold"] if cold else []), parts=1, seed="starting")
    starting = cli.gates.wait_sync("starting", 1)
    task_id = cli.task_id()
    cli.kill(run)
    aborted = cli.run("abort", task_id)
    assert aborted.returncode == 0, aborted.stderr
    deadline = time.monotonic() + BOUND
    while any(_process(pid) is not None for pid in starting.values()):
        assert time.monotonic() < deadline, f"the starting provider {starting} still runs"
        time.sleep(0.02)


def _process(pid: int) -> psutil.Process | None:
    try:
        process = psutil.Process(pid)
        return None if process.status() == psutil.STATUS_ZOMBIE else process
    except psutil.NoSuchProcess:
        return None
