"""The status of a subtask, and so of the part it computes."""

import enum


class SubtaskStatus(enum.Enum):
    # The values are the original package's: apps may have stored them.
    WAITING = None
    COMPUTING = "computing"
    VERIFYING = "verifying"
    SUCCESS = "success"
    FAILURE = "failure"
    ABORTED = "aborted"

    @classmethod
    def default(cls) -> "SubtaskStatus":
        return cls.WAITING

    def is_computable(self) -> bool:
        """True when the part may be handed out (again) as a new subtask."""
        return self in (SubtaskStatus.WAITING, SubtaskStatus.FAILURE, SubtaskStatus.ABORTED)


__all__ = ["SubtaskStatus"]
