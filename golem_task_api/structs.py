"""Values that handlers return and clients receive, compared by value."""

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Infrastructure:
    # None means "no requirement"; on the wire that is 0.
    min_memory_mib: float | None = None


@dataclass
class Task:
    env_id: str
    prerequisites: dict[str, Any]
    inf_requirements: Infrastructure = field(default_factory=Infrastructure)


@dataclass
class Subtask:
    params: dict[str, Any]
    resources: list[str]


__all__ = ["Infrastructure", "Subtask", "Task"]
