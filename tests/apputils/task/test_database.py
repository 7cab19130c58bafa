import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from golem_task_api.apputils.database import DatabaseClosed
from golem_task_api.apputils.task import SubtaskStatus, TaskManager
from golem_task_api.apputils.task.database import DBTaskManager, Part, Subtask
from golem_task_api.apputils.task.errors import (
    PartNotComputable,
    PartNotFound,
    SubtaskAlreadyExists,
    TaskAlreadyCreated,
)
from golem_task_api.errors import InvalidArgument, status_of

WAITING = SubtaskStatus.WAITING
COMPUTING = SubtaskStatus.COMPUTING
VERIFYING = SubtaskStatus.VERIFYING
SUCCESS = SubtaskStatus.SUCCESS
FAILURE = SubtaskStatus.FAILURE
ABORTED = SubtaskStatus.ABORTED


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[DBTaskManager[Part]]:
    with DBTaskManager(tmp_path) as m:
        yield m


def test_is_a_task_manager(manager: DBTaskManager[Part]) -> None:
    assert isinstance(manager, TaskManager)


@pytest.mark.parametrize(
    ("status", "computable"),
    [(WAITING, True), (COMPUTING, False), (VERIFYING, False), (SUCCESS, False),
     (FAILURE, True), (ABORTED, True)],
)
def test_status_is_computable(status: SubtaskStatus, computable: bool) -> None:
    assert status.is_computable() is computable


def test_status_values_are_the_originals() -> None:
    assert SubtaskStatus.default() is WAITING
    assert [s.value for s in SubtaskStatus] == [
        None, "computing", "verifying", "success", "failure", "aborted"
    ]


def test_database_file_is_task_db_in_wal_mode(tmp_path: Path) -> None:
    with DBTaskManager(tmp_path) as m:
        m.create_task(1)
        assert m.database.path == tmp_path / "task.db"
        other = sqlite3.connect(tmp_path / "task.db")
        try:
            assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            other.close()


def test_create_task(manager: DBTaskManager[Part]) -> None:
    manager.create_task(4)
    assert manager.get_subtasks_statuses(range(4)) == {i: (WAITING, None) for i in range(4)}
    assert manager.get_parts() == [Part(num=i) for i in range(4)]


def test_create_task_twice(manager: DBTaskManager[Part]) -> None:
    manager.create_task(2)
    with pytest.raises(TaskAlreadyCreated, match="already has 2 parts") as info:
        manager.create_task(3)
    assert status_of(info.value)[0] is grpc.StatusCode.ALREADY_EXISTS
    assert len(manager.get_parts()) == 2


@pytest.mark.parametrize("count", [0, -1, True, 2.0, "3"])
def test_create_task_needs_a_positive_count(manager: DBTaskManager[Part], count: object) -> None:
    with pytest.raises(InvalidArgument, match="at least one part"):
        manager.create_task(count)  # type: ignore[arg-type]
    assert manager.get_parts() == []


def test_get_part(manager: DBTaskManager[Part]) -> None:
    assert manager.get_part(0) is None
    manager.create_task(2)
    assert manager.get_part(0) == Part(num=0)
    assert manager.get_part(1) == Part(num=1)
    assert manager.get_part(2) is None
    assert manager.get_part(-1) is None


def test_get_part_follows_its_current_subtask(manager: DBTaskManager[Part]) -> None:
    manager.create_task(1)
    manager.start_subtask(0, "s1")
    assert manager.get_part(0) == Part(num=0, subtask_id="s1", status=COMPUTING)
    manager.update_subtask_status("s1", FAILURE)
    manager.start_subtask(0, "s2")
    assert manager.get_part(0) == Part(num=0, subtask_id="s2", status=COMPUTING)


def test_get_part_num(manager: DBTaskManager[Part]) -> None:
    manager.create_task(2)
    manager.start_subtask(0, "subtask_0")
    manager.start_subtask(1, "subtask_1")
    assert manager.get_part_num("subtask_0") == 0
    assert manager.get_part_num("subtask_1") == 1
    manager.update_subtask_status("subtask_0", ABORTED)
    manager.update_subtask_status("subtask_1", ABORTED)
    manager.start_subtask(0, "subtask_2")
    manager.start_subtask(1, "subtask_3")
    assert manager.get_part_num("subtask_2") == 0
    assert manager.get_part_num("subtask_3") == 1
    # An earlier attempt still names its part (a late Verify of it must find it).
    assert manager.get_part_num("subtask_0") == 0
    assert manager.get_part_num("unknown") is None


def test_get_current_part(manager: DBTaskManager[Part]) -> None:
    manager.create_task(2)
    manager.start_subtask(1, "first")
    assert manager.get_current_part("first") == Part(num=1, subtask_id="first", status=COMPUTING)
    manager.update_subtask_status("first", FAILURE)
    assert manager.get_current_part("first") == Part(num=1, subtask_id="first", status=FAILURE)
    manager.start_subtask(1, "second")
    # A later attempt replaced it: a late call about "first" finds no part.
    assert manager.get_current_part("first") is None
    assert manager.get_current_part("second") == Part(num=1, subtask_id="second", status=COMPUTING)
    assert manager.get_current_part("unknown") is None


def test_get_subtask(manager: DBTaskManager[Part]) -> None:
    manager.create_task(1)
    assert manager.get_subtask("subtask") is None
    manager.start_subtask(0, "subtask")
    assert manager.get_subtask("subtask") == Subtask(id="subtask", part_num=0, status=COMPUTING)


def test_start_subtask(manager: DBTaskManager[Part]) -> None:
    manager.create_task(1)
    manager.start_subtask(0, "subtask")
    assert manager.get_subtasks_statuses([0]) == {0: (COMPUTING, "subtask")}
    assert manager.get_next_computable_part_num() is None


@pytest.mark.parametrize("status", [COMPUTING, VERIFYING, SUCCESS])
def test_start_subtask_on_a_busy_part(manager: DBTaskManager[Part], status: SubtaskStatus) -> None:
    manager.create_task(1)
    manager.start_subtask(0, "first")
    manager.update_subtask_status("first", status)
    with pytest.raises(PartNotComputable, match=f"part 0 is {status.name}") as info:
        manager.start_subtask(0, "second")
    assert isinstance(info.value, RuntimeError)  # what the original raised
    assert status_of(info.value)[0] is grpc.StatusCode.FAILED_PRECONDITION
    assert manager.get_subtask("second") is None
    assert manager.get_subtasks_statuses([0]) == {0: (status, "first")}


@pytest.mark.parametrize("status", [WAITING, FAILURE, ABORTED])
def test_start_subtask_again_after(manager: DBTaskManager[Part], status: SubtaskStatus) -> None:
    manager.create_task(1)
    manager.start_subtask(0, "first")
    manager.update_subtask_status("first", status)
    manager.start_subtask(0, "second")
    assert manager.get_subtasks_statuses([0]) == {0: (COMPUTING, "second")}
    assert manager.get_subtask("first") == Subtask(id="first", part_num=0, status=status)


def test_start_subtask_with_a_used_id(manager: DBTaskManager[Part]) -> None:
    manager.create_task(2)
    manager.start_subtask(0, "subtask")
    with pytest.raises(SubtaskAlreadyExists, match="already used for part 0") as info:
        manager.start_subtask(1, "subtask")
    assert status_of(info.value)[0] is grpc.StatusCode.ALREADY_EXISTS
    assert manager.get_subtasks_statuses([1]) == {1: (WAITING, None)}


def test_start_subtask_on_a_missing_part(manager: DBTaskManager[Part]) -> None:
    manager.create_task(1)
    with pytest.raises(PartNotFound, match="no part 5"):
        manager.start_subtask(5, "subtask")
    assert manager.get_subtask("subtask") is None


@pytest.mark.parametrize("subtask_id", ["", None, 7])
def test_start_subtask_needs_an_id(manager: DBTaskManager[Part], subtask_id: object) -> None:
    manager.create_task(1)
    with pytest.raises(InvalidArgument, match="non-empty string"):
        manager.start_subtask(0, subtask_id)  # type: ignore[arg-type]


def test_status_transitions(manager: DBTaskManager[Part]) -> None:
    manager.create_task(1)
    assert manager.get_next_computable_part_num() == 0
    assert manager.get_next_computable_part_num() == 0  # asking does not take it
    manager.start_subtask(0, "s")
    expected_next = {VERIFYING: None, SUCCESS: None, ABORTED: 0, FAILURE: 0, WAITING: 0,
                     COMPUTING: None}
    for status, next_num in expected_next.items():
        assert manager.update_subtask_status("s", status) is True
        assert manager.get_subtasks_statuses([0]) == {0: (status, "s")}
        assert manager.get_next_computable_part_num() == next_num


def test_update_subtask_status_accepts_raw_values(manager: DBTaskManager[Part]) -> None:
    manager.create_task(1)
    manager.start_subtask(0, "s")
    manager.update_subtask_status("s", "verifying")  # type: ignore[arg-type]
    assert manager.get_subtasks_statuses([0]) == {0: (VERIFYING, "s")}
    with pytest.raises(ValueError, match="not a valid SubtaskStatus"):
        manager.update_subtask_status("s", "done")  # type: ignore[arg-type]


def test_update_unknown_subtask(manager: DBTaskManager[Part]) -> None:
    manager.create_task(2)
    assert manager.update_subtask_status("subtask", VERIFYING) is False
    assert manager.get_subtasks_statuses([0, 1]) == {0: (WAITING, None), 1: (WAITING, None)}


def test_abort_task(manager: DBTaskManager[Part]) -> None:
    manager.create_task(5)
    for i in range(4):
        manager.start_subtask(i, f"subtask_{i}")
    manager.update_subtask_status("subtask_1", VERIFYING)
    manager.update_subtask_status("subtask_2", SUCCESS)
    manager.update_subtask_status("subtask_3", FAILURE)
    manager.abort_task()
    assert manager.get_subtasks_statuses(range(5)) == {
        0: (ABORTED, "subtask_0"),
        1: (ABORTED, "subtask_1"),
        2: (SUCCESS, "subtask_2"),
        3: (ABORTED, "subtask_3"),
        4: (WAITING, None),
    }


def test_abort_task_leaves_earlier_attempts(manager: DBTaskManager[Part]) -> None:
    manager.create_task(1)
    manager.start_subtask(0, "old")
    manager.update_subtask_status("old", FAILURE)
    manager.start_subtask(0, "new")
    manager.abort_task()
    assert manager.get_subtask("old") == Subtask(id="old", part_num=0, status=FAILURE)
    assert manager.get_subtask("new") == Subtask(id="new", part_num=0, status=ABORTED)


def test_abort_subtask(manager: DBTaskManager[Part]) -> None:
    manager.create_task(3)
    for num, status in enumerate([COMPUTING, VERIFYING, SUCCESS]):
        manager.start_subtask(num, f"s{num}")
        manager.update_subtask_status(f"s{num}", status)
    assert manager.abort_subtask("s0") is True
    assert manager.abort_subtask("s1") is True
    # A verified subtask stays verified; an unknown one changes nothing.
    assert manager.abort_subtask("s2") is False
    assert manager.abort_subtask("unknown") is False
    assert [p.status for p in manager.get_parts()] == [ABORTED, ABORTED, SUCCESS]


def test_abort_subtask_leaves_a_later_attempt(manager: DBTaskManager[Part]) -> None:
    manager.create_task(1)
    manager.start_subtask(0, "first")
    manager.update_subtask_status("first", FAILURE)
    manager.start_subtask(0, "second")
    assert manager.abort_subtask("first") is False
    assert manager.get_subtask("first") == Subtask(id="first", part_num=0, status=FAILURE)
    assert manager.get_part(0) == Part(num=0, subtask_id="second", status=COMPUTING)


def test_get_subtasks_statuses_of_missing_parts(manager: DBTaskManager[Part]) -> None:
    manager.create_task(4)
    assert manager.get_subtasks_statuses([9, 10, 11]) == {}
    assert manager.get_subtasks_statuses([]) == {}
    assert manager.get_subtasks_statuses([3, 4]) == {3: (WAITING, None)}


def test_get_subtasks_statuses_of_many_parts(manager: DBTaskManager[Part]) -> None:
    manager.create_task(1500)
    manager.start_subtask(1234, "s")
    statuses = manager.get_subtasks_statuses(n for n in range(2000))
    assert len(statuses) == 1500
    assert statuses[1234] == (COMPUTING, "s")
    assert statuses[1499] == (WAITING, None)


def test_next_computable_is_the_lowest(manager: DBTaskManager[Part]) -> None:
    manager.create_task(3)
    manager.start_subtask(0, "a")
    manager.start_subtask(2, "c")
    assert manager.get_next_computable_part_num() == 1
    manager.start_subtask(1, "b")
    assert manager.get_next_computable_part_num() is None
    manager.update_subtask_status("c", FAILURE)
    assert manager.get_next_computable_part_num() == 2


def test_start_next_subtask(manager: DBTaskManager[Part]) -> None:
    manager.create_task(2)
    assert manager.start_next_subtask("a") == Part(num=0, subtask_id="a", status=COMPUTING)
    assert manager.start_next_subtask("b") == Part(num=1, subtask_id="b", status=COMPUTING)
    assert manager.start_next_subtask("c") is None
    assert manager.get_subtask("c") is None
    manager.update_subtask_status("a", ABORTED)
    assert manager.start_next_subtask("c") == Part(num=0, subtask_id="c", status=COMPUTING)
    manager.update_subtask_status("b", FAILURE)
    with pytest.raises(SubtaskAlreadyExists):
        manager.start_next_subtask("a")
    assert manager.get_part(1) == Part(num=1, subtask_id="b", status=FAILURE)


def test_get_part_subtasks(manager: DBTaskManager[Part]) -> None:
    manager.create_task(2)
    for attempt in ("z", "y", "x"):
        manager.start_subtask(0, attempt)
        manager.update_subtask_status(attempt, FAILURE)
    manager.start_subtask(1, "other")
    assert [s.id for s in manager.get_part_subtasks(0)] == ["z", "y", "x"]
    assert {s.status for s in manager.get_part_subtasks(0)} == {FAILURE}
    assert manager.get_part_subtasks(7) == []


def test_count_parts_by_status(manager: DBTaskManager[Part]) -> None:
    manager.create_task(6)
    for num, status in enumerate([COMPUTING, VERIFYING, SUCCESS, SUCCESS, FAILURE]):
        manager.start_subtask(num, f"s{num}")
        manager.update_subtask_status(f"s{num}", status)
    assert manager.count_parts_by_status() == {
        WAITING: 1, COMPUTING: 1, VERIFYING: 1, SUCCESS: 2, FAILURE: 1, ABORTED: 0
    }


def test_state_survives_reopening(tmp_path: Path) -> None:
    with DBTaskManager(tmp_path) as first:
        first.create_task(3)
        first.start_subtask(0, "a")
        first.start_subtask(1, "b")
        first.update_subtask_status("a", SUCCESS)
    with DBTaskManager(tmp_path) as second:
        assert second.get_subtasks_statuses(range(3)) == {
            0: (SUCCESS, "a"), 1: (COMPUTING, "b"), 2: (WAITING, None)
        }
        assert second.get_next_computable_part_num() == 2
        with pytest.raises(TaskAlreadyCreated):
            second.create_task(3)


def test_closed_manager(tmp_path: Path) -> None:
    manager = DBTaskManager(tmp_path)
    manager.create_task(1)
    manager.close()
    manager.close()
    assert manager.database.closed
    with pytest.raises(DatabaseClosed, match="is closed"):
        manager.get_part(0)


def test_opens_a_database_of_the_original_package(tmp_path: Path) -> None:
    # The tables as peewee created them for the original Part and Subtask.
    conn = sqlite3.connect(tmp_path / "task.db")
    conn.executescript(
        """
        CREATE TABLE "part" ("num" INTEGER NOT NULL PRIMARY KEY, "subtask_id" VARCHAR(255));
        CREATE INDEX "part_subtask_id" ON "part" ("subtask_id");
        CREATE TABLE "subtask" ("id" VARCHAR(255) NOT NULL PRIMARY KEY, "part_id" INTEGER,
            "status" VARCHAR(255) NOT NULL, FOREIGN KEY ("part_id") REFERENCES "part" ("num"));
        CREATE INDEX "subtask_part_id" ON "subtask" ("part_id");
        INSERT INTO part VALUES (0, 'done'), (1, 'busy'), (2, NULL);
        INSERT INTO subtask VALUES ('done', 0, 'success'), ('busy', 1, 'computing');
        """
    )
    conn.close()
    with DBTaskManager(tmp_path) as manager:
        assert manager.get_subtasks_statuses(range(3)) == {
            0: (SUCCESS, "done"), 1: (COMPUTING, "busy"), 2: (WAITING, None)
        }
        assert manager.start_next_subtask("new") == Part(num=2, subtask_id="new", status=COMPUTING)
        manager.update_subtask_status("busy", VERIFYING)
        assert manager.get_part(1) == Part(num=1, subtask_id="busy", status=VERIFYING)


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    with DBTaskManager(tmp_path) as manager:
        manager.create_task(1)
        with manager.database.transaction() as conn:
            conn.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="schema version 99"):
        DBTaskManager(tmp_path)


def test_app_tables_share_the_transaction(manager: DBTaskManager[Part]) -> None:
    manager.create_task(2)
    with manager.database.transaction() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS sent (subtask_id TEXT, node TEXT)")

    with pytest.raises(ZeroDivisionError), manager.database.transaction() as conn:
        manager.start_subtask(0, "s0")
        conn.execute("INSERT INTO sent VALUES ('s0', 'node')")
        _ = 1 / 0
    assert manager.get_subtask("s0") is None
    with manager.database.reading() as conn:
        assert conn.execute("SELECT count(*) FROM sent").fetchone() == (0,)

    with manager.database.transaction() as conn:
        manager.start_subtask(0, "s0")
        conn.execute("INSERT INTO sent VALUES ('s0', 'node')")
    assert manager.get_subtasks_statuses([0]) == {0: (COMPUTING, "s0")}


def test_failed_method_inside_app_transaction_keeps_the_rest(
    manager: DBTaskManager[Part],
) -> None:
    manager.create_task(1)
    with manager.database.transaction():
        manager.start_subtask(0, "s0")
        with pytest.raises(PartNotComputable):
            manager.start_subtask(0, "s1")
    assert manager.get_subtasks_statuses([0]) == {0: (COMPUTING, "s0")}
