"""What the task database returns: parts (with the app's own fields) and subtasks.

A task is split into a fixed number of *parts*; each attempt to compute a part
is a *subtask* with its own id. A part's status is the status of its current
(latest) subtask, or WAITING before its first one.

Extra per-part data: subclass `Part` as a frozen dataclass and give the
manager the subclass::

    @dataclass(frozen=True, kw_only=True)
    class FramePart(Part):
        frame: int = 0
        crop: list[float] = field(default_factory=list)

    manager = DBTaskManager(task_dir, part_model=FramePart)
    manager.create_task(4, lambda num: FramePart(num=num, frame=num // 2))
    part = manager.get_part(0)             # a FramePart, typed as one
    manager.save_part(replace(part, frame=7))

The extra fields are stored together as one JSON object per part, so they hold
JSON values (str, int, float, bool, None, and lists and dicts of those; a tuple
comes back as a list). Adding a field with a default later is safe for tasks
already in progress; a stored field the class no longer has is ignored.
"""

import dataclasses
from dataclasses import dataclass

from golem_task_api.apputils.task.status import SubtaskStatus


@dataclass(frozen=True, kw_only=True)
class Part:
    num: int
    subtask_id: str | None = None
    status: SubtaskStatus = SubtaskStatus.WAITING


@dataclass(frozen=True, kw_only=True)
class Subtask:
    id: str
    part_num: int
    status: SubtaskStatus


PART_FIELDS = frozenset(f.name for f in dataclasses.fields(Part))


def extra_field_names(part_model: type[Part]) -> tuple[str, ...]:
    """The app's own fields of `part_model`, checked to be usable."""
    if not (isinstance(part_model, type) and issubclass(part_model, Part)):
        raise TypeError(f"part_model must be Part or a subclass of it, got {part_model!r}")
    # Without its own @dataclass the subclass's annotations are not fields
    # at all, and its values would silently never be stored.
    if "__dataclass_fields__" not in vars(part_model):
        raise TypeError(
            f"{part_model.__name__} must be decorated with @dataclass(frozen=True, kw_only=True)"
        )
    return tuple(f.name for f in dataclasses.fields(part_model) if f.name not in PART_FIELDS)


__all__ = ["Part", "Subtask", "SubtaskStatus"]
