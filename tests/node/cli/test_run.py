"""`golem-task-api run` end to end as a user runs it, and its answers to bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.tutorial import pow
from golem_task_api.node.state import NodeDB, TaskState
from tests.node.cli.conftest import CLI, Cli, verdicts
from tests.node.taskmanager.conftest import JOURNAL_APP_DIR, REPO_ROOT
from tests.node.taskmanager.journal_app import expected_output


def test_tutorial_task_end_to_end(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"the cli runs the tutorial")
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"difficulty": 8, "search_space": 60_000,
                                  "resources": ["data.bin"]}))
    done = cli.run("run", "tutorial", "--params", str(params), "--input", str(data),
                   "--subtasks", "3", "--output", str(cli.output), "--providers", "2",
                   "--events", str(cli.events))
    assert done.returncode == 0, done.stderr
    # stdout is the output dir, for scripts; the rest went to stderr as plain lines.
    assert done.stdout.strip() == str(cli.output)
    assert "completed" in done.stderr and "verified" in done.stderr
    result = json.loads((cli.output / "result.json").read_text())
    assert result["nonces"] == pow.search(b"the cli runs the tutorial", 0, 60_000, 8)
    names = cli.event_names()
    assert names[0] == "task_created" and names[-1] == "task_completed"
    for name in ("task_started", "subtask_issued", "subtask_computing", "progress",
                 "subtask_downloaded", "subtask_verified", "task_progress"):
        assert name in names
    assert names.count("subtask_verified") == 3
    status = cli.run("status")
    assert status.returncode == 0
    assert "completed" in status.stdout and "3/3 Ranges" in status.stdout
    db = NodeDB(cli.work_dir / "node.db", create=False)
    try:
        (task,) = db.tasks()
        assert task.state is TaskState.COMPLETED and task.progress is not None
        assert task.progress.done == 3
    finally:
        db.close()


def test_tutorial_task_on_a_local_dask_cluster(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"the cli on a cluster")
    params = json.dumps({"difficulty": 8, "search_space": 30_000, "resources": ["data.bin"]})
    done = cli.run("run", "tutorial", "--params", params, "--input", str(data),
                   "--subtasks", "2", "--output", str(cli.output), "--cluster", "local:2",
                   "--events", str(cli.events))
    assert done.returncode == 0, done.stderr
    result = json.loads((cli.output / "result.json").read_text())
    assert result["nonces"] == pow.search(b"the cli on a cluster", 0, 30_000, 8)
    db = NodeDB(cli.work_dir / "node.db", create=False)
    try:
        (task,) = db.tasks()
        assert {s.node_id for s in db.subtasks(task.task_id)} <= {"cluster-1", "cluster-2"}
    finally:
        db.close()


def test_work_dir_from_the_environment(cli: Cli, tmp_path: Path) -> None:
    cli.env["GOLEM_TASK_API_WORK_DIR"] = str(tmp_path / "from-env")
    data = tmp_path / "input.txt"
    data.write_bytes(b"journal test data")
    done = subprocess.run(
        [*CLI, "run", str(JOURNAL_APP_DIR), "--params", '{"parts": 1, "seed": "env"}',
         "--input", str(data), "--subtasks", "1", "--output", str(cli.output)],
        check=False, env=cli.env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=90,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "from-env" / "node.db").exists()
    status = subprocess.run([*CLI, "status"], check=False, env=cli.env, capture_output=True,
                            text=True, timeout=30)
    assert "journal_app" in status.stdout and "completed" in status.stdout


def test_task_failure_exits_1_with_the_reason(cli: Cli) -> None:
    cli.env["JOURNAL_FORGE"] = "node-1"
    code, stdout, stderr = cli.finish(cli.run_journal(parts=1, seed="forged"))
    assert code == 1
    assert stdout == ""
    assert "failed" in stderr and "node-1: excluded" in stderr
    assert "does not match" in stderr


def test_task_timeout_exits_1(cli: Cli) -> None:
    cli.gates.hold("compute")
    process = cli.run_journal("--timeout", "1.5", parts=2)
    code, _, stderr = cli.finish(process)
    assert code == 1
    assert "timed out" in stderr and "timeout (1.5 s)" in stderr
    task_id = cli.task_id()
    assert cli.journal(task_id)[-1] == {"op": "abort_task"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"app": "no-such-app"}, "no app 'no-such-app'"),
        ({"params": '{"parts": 2,'}, "--params is not valid JSON"),
        ({"params": "[1, 2]"}, "neither a JSON object nor a file"),
        ({"params": '"just text"'}, "neither a JSON object nor a file"),
        ({"input": "missing.txt"}, "input file missing.txt does not exist"),
        ({"subtasks": "0"}, "'0' must be at least 1"),
        ({"timeout": "-5"}, "must be a positive number of seconds"),
        ({"cluster": "scheduler:8786"}, "neither local:N nor a scheduler address"),
        ({"cluster": "local:0"}, "local:N needs N >= 1 workers"),
    ],
)
def test_bad_input_exits_2_and_starts_nothing(
    cli: Cli, tmp_path: Path, change: dict[str, str], message: str
) -> None:
    data = tmp_path / "input.txt"
    data.write_bytes(b"x")
    words = {"app": str(JOURNAL_APP_DIR), "params": '{"parts": 1}', "input": str(data),
             "subtasks": "1", "timeout": "60", **change}
    done = subprocess.run(
        [*CLI, "run", words["app"], "--params", words["params"], "--input", words["input"],
         "--subtasks", words["subtasks"], "--timeout", words["timeout"],
         "--output", str(tmp_path / "out"), "--work-dir", str(cli.work_dir),
         *(["--cluster", words["cluster"]] if "cluster" in words else [])],
        check=False,
        env=cli.env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert done.stdout == ""
    assert not (cli.work_dir / "node.db").exists()


def test_params_file_that_is_not_an_object(cli: Cli, tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    params.write_text("[1, 2, 3]")
    done = cli.run("run", str(JOURNAL_APP_DIR), "--params", str(params), "--subtasks", "1",
                   "--output", str(tmp_path / "out"))
    assert done.returncode == 2
    assert f"{params} must hold a JSON object, got list" in done.stderr


def test_a_second_node_on_the_same_work_dir_is_refused(cli: Cli) -> None:
    cli.gates.hold("compute")
    first = cli.run_journal(parts=1)
    cli.gates.wait_sync("computing")
    second = cli.run("run", str(JOURNAL_APP_DIR), "--params", '{"parts": 1}', "--input",
                     str(cli.tmp_path / "input.txt"), "--subtasks", "1", "--output",
                     str(cli.tmp_path / "out2"))
    assert second.returncode == 3
    assert f"already running on {cli.work_dir}" in second.stderr
    assert f"pid {first.pid}" in second.stderr
    cli.gates.release("compute")
    code, _, stderr = cli.finish(first)
    assert code == 0, stderr
    assert json.loads((cli.output / "result.json").read_text()) == expected_output(
        "cli", 1, b"journal test data")


def test_interrupt_leaves_the_task_to_resume(cli: Cli) -> None:
    cli.gates.hold("compute")
    process = cli.run_journal(parts=2, seed="int")
    cli.gates.wait_sync("computing", 2)
    process.send_signal(2)  # SIGINT, as Ctrl-C
    code, _, stderr = cli.finish(process)
    assert code == 130
    assert "golem-task-api resume" in stderr
    task_id = cli.task_id()
    cli.gates.release("compute")
    resumed = cli.run("resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == str(cli.output)
    assert json.loads((cli.output / "result.json").read_text()) == expected_output(
        "int", 2, b"journal test data")
    assert verdicts(cli.journal(task_id)) == {0: ["SUCCESS"], 1: ["SUCCESS"]}


def test_status_answers_without_grpc(cli: Cli, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from golem_task_api.node.cli import main\n"
        f"main(['status', '--work-dir', {str(cli.work_dir)!r}])\n"
        "assert 'grpc' not in sys.modules, 'status imported grpc'\n"
        "assert 'google.protobuf' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, env=cli.env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "no tasks yet" in done.stdout


def test_apps_lists_the_bundled_apps(cli: Cli) -> None:
    done = cli.run("apps", "--json")
    assert done.returncode == 0, done.stderr
    apps = {app["name"]: app for app in json.loads(done.stdout)}
    assert {"tutorial", "blender", "transcode"} <= set(apps)
    assert apps["tutorial"]["module"] == "apps.tutorial"
    assert apps["tutorial"]["definition"]["requestor_env"] == "docker_cpu"
    table = cli.run("apps")
    assert "tutorial" in table.stdout and "golem-task-api/tutorial" in table.stdout


def test_help_names_every_command() -> None:
    done = subprocess.run([*CLI, "--help"], check=False, capture_output=True, text=True, timeout=30,
                          env={**os.environ})
    assert done.returncode == 0
    for command in ("run", "resume", "status", "abort", "restart", "apps", "benchmark"):
        assert command in done.stdout
