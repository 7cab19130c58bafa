"""The task databases a requestor app keeps open: one manager per task dir.

A requestor app serves many tasks, and may be restarted in the middle of
them. `OpenTasks.get` opens a task's database on its first use (also the
first after a restart) and keeps it open while the app runs. A task exists
once its *created file* does: CreateTask writes that file last, so a task
whose creation was cut short is not found rather than half there.
"""

from pathlib import Path
from typing import Generic, TypeVar

from golem_task_api.apputils.task.database import DBTaskManager
from golem_task_api.apputils.task.models import Part
from golem_task_api.errors import NotFound

P = TypeVar("P", bound=Part)


class OpenTasks(Generic[P]):
    """Each task's `DBTaskManager[part_model]`, by task dir.

    `created_file` is the file, relative to a task dir, whose presence means
    the task was fully created; `app` names the app in the NotFound message.
    """

    def __init__(self, part_model: type[P], created_file: str, app: str) -> None:
        self._part_model = part_model
        self._created_file = created_file
        self._app = app
        self._managers: dict[Path, DBTaskManager[P]] = {}

    def get(self, task_dir: Path) -> DBTaskManager[P]:
        """The task's manager; NotFound if the task was never (fully) created."""
        key = Path(task_dir)
        manager = self._managers.get(key)
        if manager is None:
            if not (key / self._created_file).exists():
                raise NotFound(f"the {self._app} app has no task in {task_dir}")
            manager = self._managers[key] = DBTaskManager(key, part_model=self._part_model)
        return manager

    def add(self, task_dir: Path, manager: DBTaskManager[P]) -> None:
        """Keep the manager CreateTask made, once it has written the created file."""
        self._managers[Path(task_dir)] = manager


__all__ = ["OpenTasks"]
