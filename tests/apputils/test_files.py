from pathlib import Path

import pytest

from golem_task_api.apputils.files import subtask_result_file, write_atomically
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
