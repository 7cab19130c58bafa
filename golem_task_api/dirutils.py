"""The work-dir layout of requestor and provider apps.

The classes are `pathlib.Path` subclasses, as in the original API. Every id
that is joined into a path is checked first (`validation.check_id`), so no id
can name a path outside its work dir.
"""

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from golem_task_api import constants
from golem_task_api.validation import check_id

if TYPE_CHECKING:
    _FlavouredPath = Path
else:
    # The concrete class of this platform (PosixPath or WindowsPath): Python
    # before 3.12 cannot subclass Path itself.
    _FlavouredPath = type(Path())

logger = logging.getLogger(__name__)


class RequestorTaskDir(_FlavouredPath):
    """`{work_dir}/{task_id}/` of a requestor app."""

    @property
    def task_inputs_dir(self) -> Path:
        return Path(self, constants.TASK_INPUTS_DIR)

    @property
    def task_outputs_dir(self) -> Path:
        return Path(self, constants.TASK_OUTPUTS_DIR)

    @property
    def subtask_inputs_dir(self) -> Path:
        return Path(self, constants.SUBTASK_INPUTS_DIR)

    @property
    def subtask_outputs_top_dir(self) -> Path:
        return Path(self, constants.SUBTASK_OUTPUTS_DIR)

    def subtask_outputs_dir(self, subtask_id: str) -> Path:
        return Path(self, constants.SUBTASK_OUTPUTS_DIR, check_id("subtask_id", subtask_id))

    def prepare(self, exist_ok: bool = False) -> None:
        """Create the task dir and its four subdirs (the parent must exist)."""
        logger.debug("preparing requestor task dir %s", self)
        self.mkdir(exist_ok=exist_ok)
        for sub in (
            self.task_inputs_dir,
            self.task_outputs_dir,
            self.subtask_inputs_dir,
            self.subtask_outputs_top_dir,
        ):
            sub.mkdir(exist_ok=exist_ok)


class RequestorDir(_FlavouredPath):
    """The work dir of a requestor app: one subdir per task."""

    def task_dir(self, task_id: str) -> RequestorTaskDir:
        return RequestorTaskDir(self, check_id("task_id", task_id))

    def subtask_outputs_dir(self, task_id: str, subtask_id: str) -> Path:
        return self.task_dir(task_id).subtask_outputs_dir(subtask_id)


class ProviderTaskDir(_FlavouredPath):
    """The work dir of a provider app for one task."""

    @property
    def subtask_inputs_dir(self) -> Path:
        return Path(self, constants.SUBTASK_INPUTS_DIR)

    def subtask_dir(self, subtask_id: str) -> Path:
        return Path(self, check_id("subtask_id", subtask_id))

    def prepare(self, exist_ok: bool = False) -> None:
        logger.debug("preparing provider task dir %s", self)
        self.mkdir(exist_ok=exist_ok)
        self.subtask_inputs_dir.mkdir(exist_ok=exist_ok)


class ProviderDir(_FlavouredPath):
    """A provider's dir holding one subdir per task."""

    def task_dir(self, task_id: str) -> ProviderTaskDir:
        return ProviderTaskDir(self, check_id("task_id", task_id))

    def subtask_dir(self, task_id: str, subtask_id: str) -> Path:
        return self.task_dir(task_id).subtask_dir(subtask_id)


__all__ = ["ProviderDir", "ProviderTaskDir", "RequestorDir", "RequestorTaskDir"]
