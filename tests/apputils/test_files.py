from pathlib import Path

import pytest

from golem_task_api.apputils.files import input_file, subtask_result_file, write_atomically
from golem_task_api.dirutils import RequestorDir, RequestorTaskDir
from golem_task_api.errors import InvalidArgument


@pytest.fixture
def task_dir(tmp_path: Path) -> RequestorTaskDir:
    task_dir = RequestorDir(tmp_path).task_dir("task-1")
    task_dir.prepare()
    return task_dir


def test_subtask_result_file_as_delivered(task_dir: RequestorTaskDir) -> None:
    outputs = task_dir.subtask_outputs_dir("s1")
    write_atomically(outputs / "result.json", "{}")
    write_atomically(outputs / "other.json", "{}")
    assert subtask_result_file(task_dir, "s1", "result.json") == outputs / "result.json"


def test_subtask_result_file_renamed_by_the_node(task_dir: RequestorTaskDir) -> None:
    outputs = task_dir.subtask_outputs_dir("s1")
    write_atomically(outputs / "s1.json", "{}")
    (outputs / "a-dir").mkdir()
    assert subtask_result_file(task_dir, "s1", "result.json") == outputs / "s1.json"


@pytest.mark.parametrize("delivered", [[], ["a.json", "b.json"]])
def test_subtask_result_file_missing(task_dir: RequestorTaskDir, delivered: list[str]) -> None:
    outputs = task_dir.subtask_outputs_dir("s1")
    outputs.mkdir()
    for name in delivered:
        write_atomically(outputs / name, "{}")
    assert subtask_result_file(task_dir, "s1", "result.json") == outputs / "result.json"


def test_subtask_result_file_of_a_subtask_without_outputs(task_dir: RequestorTaskDir) -> None:
    expected = task_dir.subtask_outputs_dir("s1") / "result.json"
    assert subtask_result_file(task_dir, "s1", "result.json") == expected


def test_subtask_result_file_refuses_an_id_that_leaves_the_dir(task_dir: RequestorTaskDir) -> None:
    with pytest.raises(InvalidArgument):
        subtask_result_file(task_dir, "../s1", "result.json")


def test_input_file(task_dir: RequestorTaskDir) -> None:
    inputs = task_dir.task_inputs_dir
    write_atomically(inputs / "sub" / "data.bin", b"data")
    assert input_file(inputs, "sub/data.bin", "input") == (inputs / "sub" / "data.bin").resolve()


@pytest.mark.parametrize("name", ["missing.bin", "sub", "../outside.bin", "/etc/hostname", "link"])
def test_input_file_refuses(task_dir: RequestorTaskDir, name: str) -> None:
    inputs = task_dir.task_inputs_dir
    (inputs / "sub").mkdir()
    write_atomically(task_dir / "outside.bin", b"secret")
    (inputs / "link").symlink_to(task_dir / "outside.bin")
    with pytest.raises(InvalidArgument) as caught:
        input_file(inputs, name, "the scene")
    assert caught.value.message == f"the scene {name!r} is not in task_inputs"
