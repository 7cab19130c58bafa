"""The app's own per-part fields: a frozen dataclass subclass of Part."""

from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from golem_task_api.apputils.task import SubtaskStatus
from golem_task_api.apputils.task.database import DBTaskManager, Part
from golem_task_api.apputils.task.errors import PartNotFound


@dataclass(frozen=True, kw_only=True)
class PowPart(Part):
    input_data: str | None = None
    difficulty: float = 0.0
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class FramePart(Part):
    frame: int  # no default: parts must be made with make_part


def test_defaults(tmp_path: Path) -> None:
    with DBTaskManager(tmp_path, part_model=PowPart) as manager:
        manager.create_task(2)
        assert manager.get_parts() == [PowPart(num=0), PowPart(num=1)]


def test_make_part_and_save_part(tmp_path: Path) -> None:
    with DBTaskManager(tmp_path, part_model=PowPart) as manager:
        manager.create_task(3, lambda num: PowPart(num=num, input_data=f"in{num}", difficulty=num))
        part = manager.get_part(1)
        assert part == PowPart(num=1, input_data="in1", difficulty=1.0)
        assert part is not None
        manager.save_part(replace(part, difficulty=7.5, tags=["a", "b"]))
        assert manager.get_part(1) == PowPart(
            num=1, input_data="in1", difficulty=7.5, tags=["a", "b"]
        )


def test_data_travels_with_the_part(tmp_path: Path) -> None:
    with DBTaskManager(tmp_path, part_model=PowPart) as manager:
        manager.create_task(1, lambda num: PowPart(num=num, input_data="x"))
        started = manager.start_next_subtask("s")
        assert started == PowPart(
            num=0, subtask_id="s", status=SubtaskStatus.COMPUTING, input_data="x"
        )


def test_save_part_keeps_state_columns(tmp_path: Path) -> None:
    with DBTaskManager(tmp_path, part_model=PowPart) as manager:
        manager.create_task(1)
        stale = manager.get_part(0)
        assert stale is not None
        manager.start_subtask(0, "s")
        # A part read before the subtask started cannot undo it when saved.
        manager.save_part(replace(stale, difficulty=2.0))
        assert manager.get_part(0) == PowPart(
            num=0, subtask_id="s", status=SubtaskStatus.COMPUTING, difficulty=2.0
        )


def test_data_survives_reopening(tmp_path: Path) -> None:
    with DBTaskManager(tmp_path, part_model=PowPart) as manager:
        manager.create_task(1, lambda num: PowPart(num=num, input_data="é ✓", tags=["x"]))
    with DBTaskManager(tmp_path, part_model=PowPart) as manager:
        assert manager.get_part(0) == PowPart(num=0, input_data="é ✓", tags=["x"])


def test_fields_added_and_removed_between_versions(tmp_path: Path) -> None:
    @dataclass(frozen=True, kw_only=True)
    class V1(Part):
        old: str = ""
        kept: int = 0

    @dataclass(frozen=True, kw_only=True)
    class V2(Part):
        kept: int = 0
        new: str = "default"

    with DBTaskManager(tmp_path, part_model=V1) as v1:
        v1.create_task(1, lambda num: V1(num=num, old="gone", kept=5))
    with DBTaskManager(tmp_path, part_model=V2) as v2:
        assert v2.get_part(0) == V2(num=0, kept=5, new="default")


def test_required_fields_need_make_part(tmp_path: Path) -> None:
    with DBTaskManager(tmp_path, part_model=FramePart) as manager:
        with pytest.raises(TypeError, match="pass make_part"):
            manager.create_task(2)
        assert manager.get_parts() == []
        manager.create_task(2, lambda num: FramePart(num=num, frame=10 + num))
        assert [p.frame for p in manager.get_parts()] == [10, 11]


def test_stored_part_missing_a_required_field(tmp_path: Path) -> None:
    with DBTaskManager(tmp_path) as manager:
        manager.create_task(1)
    with (
        DBTaskManager(tmp_path, part_model=FramePart) as manager,
        pytest.raises(TypeError, match=r"part 0 in .* does not fit FramePart"),
    ):
        manager.get_part(0)


def test_make_part_must_return_the_right_part(tmp_path: Path) -> None:
    with DBTaskManager(tmp_path, part_model=PowPart) as manager:
        with pytest.raises(ValueError, match=r"make_part\(1\) must return a PowPart with num=1"):
            manager.create_task(2, lambda num: PowPart(num=0))
        with pytest.raises(ValueError, match="must return a PowPart"):
            manager.create_task(1, lambda num: Part(num=num))  # type: ignore[arg-type,return-value]
        assert manager.get_parts() == []


def test_values_must_be_json(tmp_path: Path) -> None:
    with DBTaskManager(tmp_path, part_model=PowPart) as manager:
        with pytest.raises(TypeError, match=r"PowPart.input_data = PosixPath\('x'\) is not JSON"):
            manager.create_task(1, lambda num: PowPart(num=num, input_data=Path("x")))  # type: ignore[arg-type]
        manager.create_task(1)
        with pytest.raises(TypeError, match="tags"):
            manager.save_part(PowPart(num=0, tags=[object()]))  # type: ignore[list-item]


def test_save_part_checks_type_and_num(tmp_path: Path) -> None:
    with DBTaskManager(tmp_path, part_model=PowPart) as manager:
        manager.create_task(1)
        with pytest.raises(TypeError, match="expected a PowPart, got Part"):
            manager.save_part(Part(num=0))  # type: ignore[arg-type]
        with pytest.raises(PartNotFound, match="no part 3"):
            manager.save_part(PowPart(num=3))


def test_part_model_must_be_a_part_dataclass(tmp_path: Path) -> None:
    class Undecorated(Part):
        extra: int = 0

    with pytest.raises(TypeError, match="must be decorated with @dataclass"):
        DBTaskManager(tmp_path, part_model=Undecorated)
    with pytest.raises(TypeError, match="must be Part or a subclass"):
        DBTaskManager(tmp_path, part_model=dict)  # type: ignore[type-var]


def test_subclass_must_stay_frozen() -> None:
    with pytest.raises(TypeError, match="non-frozen"):

        @dataclass(kw_only=True)
        class Mutable(Part):  # type: ignore[misc]  # mypy sees it too
            extra: int = 0
