"""The value a progress report carries, and the one set of checks it passes.

`done`/`total` are the amount within the current stage (`total` None =
unknown, which is not 0); `step`/`step_count` the stage (0-based,
`step_count` 0 = not staged). A value is valid when its numbers are finite,
`done >= 0`, `done <= total` when the total is known, and `step < step_count`
when staged (else `step == 0`).
"""

import enum
import math
import numbers
from typing import Any, NamedTuple

MAX_UINT32 = 2**32 - 1


class State(enum.IntEnum):
    """Mirrors `ProgressEvent.State` on the wire, value for value."""

    RUNNING = 0
    RETRYING = 1
    SUCCEEDED = 2
    FAILED = 3
    CANCELLED = 4

    @property
    def terminal(self) -> bool:
        return self >= State.SUCCEEDED


class ProgressValue(NamedTuple):
    done: float = 0.0
    total: float | None = None
    unit: str = ""
    message: str = ""
    step: int = 0
    step_count: int = 0
    state: State = State.RUNNING

    @classmethod
    def checked(
        cls,
        done: float = 0.0,
        total: float | None = None,
        unit: str = "",
        message: str = "",
        step: int = 0,
        step_count: int = 0,
        state: State = State.RUNNING,
    ) -> "ProgressValue":
        """A valid value with float amounts; ValueError/TypeError naming what is wrong."""
        check_value(done, total, unit, message, step, step_count)
        return cls(
            float(done),
            None if total is None else float(total),
            unit,
            message,
            step,
            step_count,
            State(state),
        )

    @property
    def stage(self) -> tuple[str, int, int, State, str]:
        """What changes are always sent for: message, step, step_count, state,
        and the unit (a new unit is a new kind of amount: the first value an
        app reports after the framework's unitless 0/? is not held back)."""
        return self.message, self.step, self.step_count, self.state, self.unit

    def ended(self, state: State, message: str | None = None) -> "ProgressValue":
        """The terminal value: SUCCEEDED completes a known total; the others
        keep the last real value and carry the error (never a fake 100 %)."""
        value = self._replace(state=state)
        if state is State.SUCCEEDED and value.total is not None:
            value = value._replace(done=value.total)
        if message is not None:
            value = value._replace(message=message)
        return value


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _finite(name: str, x: Any) -> float:
    if not _is_number(x):
        raise TypeError(f"progress {name} must be a number, got {type(x).__name__}")
    try:
        f = float(x)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f):
        raise ValueError(f"progress {name} must be finite, got {x!r}")
    if f < 0:
        raise ValueError(f"progress {name} must be >= 0, got {x!r}")
    return f


def _count(name: str, x: Any) -> int:
    if not isinstance(x, int) or isinstance(x, bool):
        raise TypeError(f"progress {name} must be an int, got {type(x).__name__}")
    if not 0 <= x <= MAX_UINT32:
        raise ValueError(f"progress {name} must be in [0, {MAX_UINT32}], got {x}")
    return x


def check_value(done: Any, total: Any, unit: Any, message: Any, step: Any, step_count: Any) -> None:
    """Raise TypeError or ValueError, naming the field, unless the value is valid."""
    d = _finite("done", done)
    if total is not None and d > _finite("total", total):
        raise ValueError(f"progress done must be <= total, got {done!r}/{total!r}")
    for name, text in (("unit", unit), ("message", message)):
        if not isinstance(text, str):
            raise TypeError(f"progress {name} must be a str, got {type(text).__name__}")
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"progress {name} is not valid Unicode: {text!r}") from None
    s, n = _count("step", step), _count("step_count", step_count)
    if n == 0 and s != 0:
        raise ValueError(f"progress step must be 0 when step_count is 0, got {s}")
    if n and s >= n:
        raise ValueError(f"progress step must be < step_count, got {s} of {n}")


INITIAL = ProgressValue()

__all__ = ["INITIAL", "MAX_UINT32", "ProgressValue", "State", "check_value"]
