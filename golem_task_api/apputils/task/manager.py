"""The interface of a task's part/subtask bookkeeping (the original's `TaskManager`)."""

from abc import ABC, abstractmethod
from collections.abc import Iterable

from golem_task_api.apputils.task.status import SubtaskStatus


class TaskManager(ABC):
    """Correlates subtasks with the parts of a task and tracks their status.

    A task is split into a fixed number of parts. A subtask is one attempt, by
    one provider, at computing a part; each has its own id, so a failed or
    timed-out attempt can be retried as a new subtask. A successful subtask
    concludes its part.
    """

    @abstractmethod
    def create_task(self, part_count: int) -> None:
        """Store `part_count` parts, all WAITING."""

    @abstractmethod
    def abort_task(self) -> None:
        """Mark every current subtask that has not succeeded as ABORTED."""

    @abstractmethod
    def get_part(self, part_num: int) -> object | None:
        """The part numbered `part_num`, or None."""

    @abstractmethod
    def get_part_num(self, subtask_id: str) -> int | None:
        """The number of the part that subtask `subtask_id` computes, or None."""

    @abstractmethod
    def get_subtask(self, subtask_id: str) -> object | None:
        """The subtask `subtask_id`, or None."""

    @abstractmethod
    def start_subtask(self, part_num: int, subtask_id: str) -> None:
        """Record a new COMPUTING subtask for part `part_num`, which must be computable."""

    @abstractmethod
    def update_subtask_status(self, subtask_id: str, status: SubtaskStatus) -> object:
        """Set the status of subtask `subtask_id`."""

    @abstractmethod
    def get_subtasks_statuses(
        self, part_nums: Iterable[int]
    ) -> dict[int, tuple[SubtaskStatus, str | None]]:
        """(status, current subtask id) of each existing part in `part_nums`.

        A part without a subtask yet maps to (WAITING, None); numbers of parts
        that do not exist are left out.
        """

    @abstractmethod
    def get_next_computable_part_num(self) -> int | None:
        """The lowest-numbered computable part, or None."""


__all__ = ["TaskManager"]
