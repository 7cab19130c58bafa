"""Checking task and subtask params strictly.

Each refusal is an InvalidArgument (the node shows its message to the person
who wrote the params) that names the param and says what would be accepted.
"""

from collections.abc import Collection, Mapping

from golem_task_api.errors import InvalidArgument


def refuse_unknown(
    params: Mapping[str, object], known: Collection[str], what: str = "task params"
) -> None:
    """Refuse `params` with a key not in `known` (a typo would otherwise be ignored)."""
    unknown = set(params) - set(known)
    if unknown:
        raise InvalidArgument(
            f"unknown {what}: {', '.join(sorted(unknown))}"
            f" (known: {', '.join(sorted(known))})"
        )


def integer(value: object, what: str, low: int, high: int) -> int:
    """`value`, which must be an integer (not a bool) from `low` to `high`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{what} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise InvalidArgument(f"{what} must be {low}-{high}, got {value}")
    return value


__all__ = ["integer", "refuse_unknown"]
