"""Task and subtask params of the tutorial app, checked strictly."""

from dataclasses import asdict, dataclass
from typing import Any

from apps.tutorial.pow import MAX_NONCE
from golem_task_api.errors import InvalidArgument

# Results are JSON lists of nonces: keep them to a size a node can move.
MAX_DIFFICULTY = 256


def _int(params: dict[str, Any], key: str, low: int, high: int) -> int:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{key} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise InvalidArgument(f"{key} must be {low}-{high}, got {value}")
    return value


@dataclass(frozen=True)
class TaskParams:
    difficulty: int
    search_space: int
    data_file: str

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "TaskParams":
        unknown = set(params) - {"difficulty", "search_space", "resources"}
        if unknown:
            raise InvalidArgument(f"unknown task params: {', '.join(sorted(unknown))}")
        resources = params.get("resources", ["data.bin"])
        if (
            not isinstance(resources, list)
            or len(resources) != 1
            or not isinstance(resources[0], str)
        ):
            raise InvalidArgument(f"resources must be a list of one file name, got {resources!r}")
        return cls(
            difficulty=_int(params, "difficulty", 0, MAX_DIFFICULTY),
            search_space=_int(params, "search_space", 1, MAX_NONCE),
            data_file=resources[0],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "difficulty": self.difficulty,
            "search_space": self.search_space,
            "resources": [self.data_file],
        }


@dataclass(frozen=True)
class SubtaskParams:
    """One contiguous range [start, end) of the search space."""

    start: int
    end: int
    difficulty: int
    data_file: str

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "SubtaskParams":
        start = _int(params, "start", 0, MAX_NONCE - 1)
        end = _int(params, "end", start + 1, MAX_NONCE)
        data_file = params.get("data_file")
        if not isinstance(data_file, str) or not data_file:
            raise InvalidArgument(f"data_file must be a file name, got {data_file!r}")
        return cls(start, end, _int(params, "difficulty", 0, MAX_DIFFICULTY), data_file)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def size(self) -> int:
        return self.end - self.start


def split_range(search_space: int, parts: int) -> list[tuple[int, int]]:
    """[0, search_space) in at most `parts` contiguous ranges, sizes within 1."""
    parts = max(1, min(parts, search_space))
    base, extra = divmod(search_space, parts)
    ranges = []
    start = 0
    for index in range(parts):
        end = start + base + (1 if index < extra else 0)
        ranges.append((start, end))
        start = end
    return ranges
