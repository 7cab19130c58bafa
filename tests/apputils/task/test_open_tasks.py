from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from golem_task_api.apputils.task.database import DBTaskManager
from golem_task_api.apputils.task.models import Part
from golem_task_api.apputils.task.open_tasks import OpenTasks
from golem_task_api.errors import NotFound, status_of

CREATED = "params.json"


@dataclass(frozen=True, kw_only=True)
class NamedPart(Part):
    name: str = ""


def create(task_dir: Path, tasks: OpenTasks[NamedPart]) -> DBTaskManager[NamedPart]:
    task_dir.mkdir()
    manager = DBTaskManager(task_dir, part_model=NamedPart)
    manager.create_task(2, lambda n: NamedPart(num=n, name=f"part {n}"))
    (task_dir / CREATED).write_text("{}")
    tasks.add(task_dir, manager)
    return manager


def test_get_gives_the_manager_create_task_made(tmp_path: Path) -> None:
    tasks = OpenTasks(NamedPart, CREATED, "sample")
    manager = create(tmp_path / "t1", tasks)
    assert tasks.get(tmp_path / "t1") is manager


def test_get_opens_a_task_once_after_a_restart(tmp_path: Path) -> None:
    create(tmp_path / "t1", OpenTasks(NamedPart, CREATED, "sample"))
    restarted = OpenTasks(NamedPart, CREATED, "sample")
    manager = restarted.get(tmp_path / "t1")
    assert manager.part_model is NamedPart
    assert manager.get_part(1) == NamedPart(num=1, name="part 1")
    assert restarted.get(tmp_path / "t1") is manager


def test_a_task_without_its_created_file_is_not_found(tmp_path: Path) -> None:
    tasks = OpenTasks(NamedPart, CREATED, "sample")
    (tmp_path / "half").mkdir()
    DBTaskManager(tmp_path / "half", part_model=NamedPart).close()
    for task_dir in (tmp_path / "half", tmp_path / "none"):
        with pytest.raises(NotFound, match="the sample app has no task in") as caught:
            tasks.get(task_dir)
        assert status_of(caught.value)[0] is grpc.StatusCode.NOT_FOUND
    assert not (tmp_path / "none").exists()
