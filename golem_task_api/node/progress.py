"""The node's one progress value: what a provider reports and what becomes an event.

`Progress` has the fields of progress.md's ProgressEvent but its state (the
node tracks states itself): the compute node reports it (as
`ProgressUpdate`), the work generator throttles and forwards it unchanged,
and it is the `progress` kind of the event stream.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from golem_task_api.progress.value import ProgressValue


@dataclass(frozen=True, slots=True)
class Progress:
    """One progress value.

    `done`/`total` the amount within the current step (`total` None:
    unknown, not the same as 0); `unit` free text ("Bytes", "Frames"), empty
    if none; `step`/`step_count` the stage (0-based; `step_count` 0: not
    staged).
    """

    KIND: ClassVar[str] = "progress"

    done: float
    total: float | None = None
    unit: str = ""
    message: str = ""
    step: int = 0
    step_count: int = 0

    def __post_init__(self) -> None:
        if not math.isfinite(self.done) or self.done < 0:
            raise ValueError(f"progress done must be finite and >= 0, got {self.done!r}")
        if self.total is not None and (not math.isfinite(self.total) or self.total < 0):
            raise ValueError(f"progress total must be finite and >= 0, got {self.total!r}")
        if self.step < 0 or self.step_count < 0:
            raise ValueError(f"progress step {self.step}/{self.step_count} is negative")

    @classmethod
    def of(cls, value: ProgressValue) -> "Progress":
        """The amounts and stage of an app's value (ValueError if they are invalid)."""
        return cls(
            value.done, value.total, value.unit, value.message, value.step, value.step_count
        )


ProgressCallback = Callable[[Progress], None]


__all__ = ["Progress", "ProgressCallback"]
