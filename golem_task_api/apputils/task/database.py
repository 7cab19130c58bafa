"""A task's parts and subtasks, stored in SQLite in the task's own dir.

Each `DBTaskManager` owns one connection to `<task dir>/task.db` (see
`apputils.database`). Make one per task, or one per call as the original apps
do; either way a manager only ever touches its own task's file. It can be used
from the event loop and from worker threads at once.

The tables keep the original package's names and columns, so a requestor
restarted on this package reads the tasks an older version left in progress.
"""

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

from golem_task_api.apputils.database import DEFAULT_BUSY_TIMEOUT, SQLiteDatabase
from golem_task_api.apputils.task.errors import (
    PartNotComputable,
    PartNotFound,
    SubtaskAlreadyExists,
    TaskAlreadyCreated,
)
from golem_task_api.apputils.task.manager import TaskManager
from golem_task_api.apputils.task.models import Part, Subtask, extra_field_names
from golem_task_api.apputils.task.status import SubtaskStatus
from golem_task_api.errors import InvalidArgument

P = TypeVar("P", bound=Part)

DB_FILE_NAME = "task.db"
SCHEMA_VERSION = 1

# `part.subtask_id` is the part's current subtask; earlier attempts stay in
# `subtask` with their final status. `part.data` holds the app's own fields.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS part (
    num INTEGER NOT NULL PRIMARY KEY,
    subtask_id TEXT REFERENCES subtask (id),
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS subtask (
    id TEXT NOT NULL PRIMARY KEY,
    part_id INTEGER NOT NULL REFERENCES part (num),
    status TEXT
);
CREATE INDEX IF NOT EXISTS part_subtask_id ON part (subtask_id);
CREATE INDEX IF NOT EXISTS subtask_part_id ON subtask (part_id);
"""

_PART_SELECT = (
    "SELECT p.num, p.subtask_id, s.status, p.data"
    " FROM part AS p LEFT JOIN subtask AS s ON s.id = p.subtask_id"
)
_RETRYABLE = ", ".join(
    f"'{s.value}'" for s in SubtaskStatus if s.is_computable() and s.value is not None
)
# A status of NULL is WAITING, which is computable too.
_COMPUTABLE = f"(s.id IS NULL OR s.status IS NULL OR s.status IN ({_RETRYABLE}))"
# SQLite's default limit on bound parameters is 999 in older builds.
_CHUNK = 500


def _status(subtask_id: str | None, value: str | None) -> SubtaskStatus:
    return SubtaskStatus(value) if subtask_id is not None else SubtaskStatus.WAITING


def _chunks(values: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


class DBTaskManager(TaskManager, Generic[P]):
    """The parts and subtasks of one task, in `work_dir/task.db`.

    `part_model` is `Part` or a frozen dataclass subclass of it with the app's
    own per-part fields (see `apputils.task.models`).
    """

    @overload
    def __init__(
        self: "DBTaskManager[Part]",
        work_dir: Path,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None: ...

    @overload
    def __init__(
        self,
        work_dir: Path,
        part_model: type[P],
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None: ...

    def __init__(
        self,
        work_dir: Path,
        part_model: type[Any] = Part,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        self._part_model: type[P] = part_model
        self._extra_fields = extra_field_names(part_model)
        self.database = SQLiteDatabase(Path(work_dir) / DB_FILE_NAME, busy_timeout=busy_timeout)
        try:
            self._create_schema()
        except BaseException:
            self.database.close()
            raise

    @property
    def part_model(self) -> type[P]:
        return self._part_model

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> "DBTaskManager[P]":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the original interface --

    def create_task(self, part_count: int, make_part: Callable[[int], P] | None = None) -> None:
        """Store parts 0 … part_count-1, all WAITING.

        `make_part(num)` builds each part with its own data (default: the
        part model's defaults); all parts are stored in one transaction.
        """
        if isinstance(part_count, bool) or not isinstance(part_count, int) or part_count < 1:
            raise InvalidArgument(f"a task needs at least one part, got part_count={part_count!r}")
        rows = [(num, self._encode(self._new_part(num, make_part))) for num in range(part_count)]
        with self.database.transaction() as conn:
            (existing,) = conn.execute("SELECT count(*) FROM part").fetchone()
            if existing:
                raise TaskAlreadyCreated(
                    f"task in {self.database.path.parent} already has {existing} parts"
                )
            conn.executemany("INSERT INTO part (num, subtask_id, data) VALUES (?, NULL, ?)", rows)

    def abort_task(self) -> None:
        with self.database.transaction() as conn:
            conn.execute(
                "UPDATE subtask SET status = ?"
                " WHERE id IN (SELECT subtask_id FROM part WHERE subtask_id IS NOT NULL)"
                " AND status IS NOT ?",
                (SubtaskStatus.ABORTED.value, SubtaskStatus.SUCCESS.value),
            )

    def get_part(self, part_num: int) -> P | None:
        with self.database.reading() as conn:
            row = conn.execute(f"{_PART_SELECT} WHERE p.num = ?", (part_num,)).fetchone()
        return None if row is None else self._decode(row)

    def get_part_num(self, subtask_id: str) -> int | None:
        with self.database.reading() as conn:
            row = conn.execute("SELECT part_id FROM subtask WHERE id = ?", (subtask_id,)).fetchone()
        return None if row is None else int(row[0])

    def get_subtask(self, subtask_id: str) -> Subtask | None:
        with self.database.reading() as conn:
            row = conn.execute(
                "SELECT id, part_id, status FROM subtask WHERE id = ?", (subtask_id,)
            ).fetchone()
        if row is None:
            return None
        return Subtask(id=row[0], part_num=row[1], status=SubtaskStatus(row[2]))

    def start_subtask(self, part_num: int, subtask_id: str) -> None:
        """Record subtask `subtask_id`, COMPUTING, as the current one of part `part_num`.

        Raises PartNotFound, PartNotComputable (the part is being computed,
        verified, or is done), or SubtaskAlreadyExists (the id was used before).
        """
        with self.database.transaction() as conn:
            self._start(conn, part_num, subtask_id)

    def update_subtask_status(self, subtask_id: str, status: SubtaskStatus) -> bool:
        """Set the status of subtask `subtask_id`; False if there is no such subtask.

        Any status may follow any other: the node may discard a verified
        subtask (ABORTED makes its part computable again).
        """
        value = SubtaskStatus(status).value
        with self.database.transaction() as conn:
            cursor = conn.execute("UPDATE subtask SET status = ? WHERE id = ?", (value, subtask_id))
            return cursor.rowcount > 0

    def get_subtasks_statuses(
        self, part_nums: Iterable[int]
    ) -> dict[int, tuple[SubtaskStatus, str | None]]:
        result: dict[int, tuple[SubtaskStatus, str | None]] = {}
        nums = sorted(set(part_nums))
        with self.database.reading() as conn:
            for chunk in _chunks(nums):
                marks = ", ".join("?" * len(chunk))
                for num, subtask_id, status in conn.execute(
                    "SELECT p.num, p.subtask_id, s.status"
                    " FROM part AS p LEFT JOIN subtask AS s ON s.id = p.subtask_id"
                    f" WHERE p.num IN ({marks})",
                    chunk,
                ):
                    result[num] = (_status(subtask_id, status), subtask_id)
        return result

    def get_next_computable_part_num(self) -> int | None:
        with self.database.reading() as conn:
            return self._next_computable(conn)

    # -- additions --

    def start_next_subtask(self, subtask_id: str) -> P | None:
        """Start `subtask_id` on the next computable part, atomically; None if none is.

        Unlike get_next_computable_part_num() followed by start_subtask(), two
        concurrent calls (two NextSubtask RPCs) never pick the same part.
        """
        with self.database.transaction() as conn:
            part_num = self._next_computable(conn)
            if part_num is None:
                return None
            self._start(conn, part_num, subtask_id)
            return self._read_part(conn, part_num)

    def get_current_part(self, subtask_id: str) -> P | None:
        """The part whose current (latest) subtask is `subtask_id`; None if
        there is no such subtask or a later attempt replaced it.

        What Verify, DiscardSubtasks and AbortSubtask act on: a late call
        about an earlier attempt must not touch the part's new one.
        """
        with self.database.reading() as conn:
            row = conn.execute(f"{_PART_SELECT} WHERE p.subtask_id = ?", (subtask_id,)).fetchone()
        return None if row is None else self._decode(row)

    def abort_subtask(self, subtask_id: str) -> bool:
        """ABORTED for `subtask_id` if it is still its part's current subtask
        and not verified (what AbortSubtask does); False if nothing changed."""
        with self.database.transaction() as conn:
            cursor = conn.execute(
                "UPDATE subtask SET status = ?"
                " WHERE id = ? AND id IN (SELECT subtask_id FROM part WHERE subtask_id = ?)"
                " AND status IS NOT ?",
                (SubtaskStatus.ABORTED.value, subtask_id, subtask_id, SubtaskStatus.SUCCESS.value),
            )
            return cursor.rowcount > 0

    def get_parts(self) -> list[P]:
        """All parts, by number."""
        with self.database.reading() as conn:
            rows = conn.execute(f"{_PART_SELECT} ORDER BY p.num").fetchall()
        return [self._decode(row) for row in rows]

    def save_part(self, part: P) -> None:
        """Store the app's own fields of `part` (its num, subtask and status are not changed)."""
        if not isinstance(part, self._part_model):
            raise TypeError(f"expected a {self._part_model.__name__}, got {type(part).__name__}")
        data = self._encode(part)
        with self.database.transaction() as conn:
            cursor = conn.execute("UPDATE part SET data = ? WHERE num = ?", (data, part.num))
            if cursor.rowcount == 0:
                raise PartNotFound(f"task has no part {part.num}")

    def get_part_subtasks(self, part_num: int) -> list[Subtask]:
        """Every subtask started on part `part_num`, oldest first (e.g. to cap retries)."""
        with self.database.reading() as conn:
            rows = conn.execute(
                "SELECT id, part_id, status FROM subtask WHERE part_id = ? ORDER BY rowid",
                (part_num,),
            ).fetchall()
        return [Subtask(id=i, part_num=n, status=SubtaskStatus(s)) for i, n, s in rows]

    def count_parts_by_status(self) -> dict[SubtaskStatus, int]:
        """How many parts are in each status (every status is present, maybe with 0)."""
        counts = dict.fromkeys(SubtaskStatus, 0)
        with self.database.reading() as conn:
            rows = conn.execute(
                "SELECT p.subtask_id IS NULL, s.status, count(*)"
                " FROM part AS p LEFT JOIN subtask AS s ON s.id = p.subtask_id"
                " GROUP BY 1, 2"
            ).fetchall()
        for no_subtask, status, count in rows:
            counts[SubtaskStatus.WAITING if no_subtask else SubtaskStatus(status)] += count
        return counts

    # -- internals --

    def _create_schema(self) -> None:
        # Apps open a manager per call: when the schema is current, only read.
        with self.database.reading() as conn:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version == SCHEMA_VERSION:
            return
        with self.database.transaction() as conn:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.database.path} has schema version {version}, newer than this"
                    f" package's {SCHEMA_VERSION}"
                )
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(part)")}
            if "data" not in columns:  # a database made by the original package
                conn.execute("ALTER TABLE part ADD COLUMN data TEXT NOT NULL DEFAULT '{}'")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _new_part(self, num: int, make_part: Callable[[int], P] | None) -> P:
        if make_part is None:
            try:
                return self._part_model(num=num)
            except TypeError as e:
                raise TypeError(
                    f"{self._part_model.__name__} has fields without defaults:"
                    f" pass make_part to create_task ({e})"
                ) from e
        part = make_part(num)
        if not isinstance(part, self._part_model) or part.num != num:
            raise ValueError(
                f"make_part({num}) must return a {self._part_model.__name__} with num={num},"
                f" got {part!r}"
            )
        return part

    def _encode(self, part: P) -> str:
        values = {name: getattr(part, name) for name in self._extra_fields}
        try:
            return json.dumps(values)
        except (TypeError, ValueError):
            for name, value in values.items():
                try:
                    json.dumps(value)
                except (TypeError, ValueError) as e:
                    raise TypeError(
                        f"{type(part).__name__}.{name} = {value!r} is not JSON-serialisable;"
                        " part fields hold str, int, float, bool, None, lists and dicts"
                    ) from e
            raise

    def _decode(self, row: tuple[Any, ...]) -> P:
        num, subtask_id, status, data = row
        stored = json.loads(data) if data else {}
        extras = {name: stored[name] for name in self._extra_fields if name in stored}
        try:
            return self._part_model(
                num=num, subtask_id=subtask_id, status=_status(subtask_id, status), **extras
            )
        except TypeError as e:
            raise TypeError(
                f"part {num} in {self.database.path} does not fit"
                f" {self._part_model.__name__}: {e}"
            ) from e

    def _read_part(self, conn: sqlite3.Connection, part_num: int) -> P:
        row = conn.execute(f"{_PART_SELECT} WHERE p.num = ?", (part_num,)).fetchone()
        if row is None:
            raise PartNotFound(f"task has no part {part_num}")
        return self._decode(row)

    def _next_computable(self, conn: sqlite3.Connection) -> int | None:
        row = conn.execute(
            f"{_PART_SELECT} WHERE {_COMPUTABLE} ORDER BY p.num LIMIT 1"
        ).fetchone()
        return None if row is None else int(row[0])

    def _start(self, conn: sqlite3.Connection, part_num: int, subtask_id: str) -> None:
        if not isinstance(subtask_id, str) or not subtask_id:
            raise InvalidArgument(f"a subtask id must be a non-empty string, got {subtask_id!r}")
        part = self._read_part(conn, part_num)
        if not part.status.is_computable():
            raise PartNotComputable(
                f"part {part_num} is {part.status.name} (subtask {part.subtask_id}),"
                " it cannot start another subtask"
            )
        used = conn.execute("SELECT part_id FROM subtask WHERE id = ?", (subtask_id,)).fetchone()
        if used is not None:
            raise SubtaskAlreadyExists(
                f"subtask id {subtask_id!r} was already used for part {used[0]}"
            )
        conn.execute(
            "INSERT INTO subtask (id, part_id, status) VALUES (?, ?, ?)",
            (subtask_id, part_num, SubtaskStatus.COMPUTING.value),
        )
        conn.execute("UPDATE part SET subtask_id = ? WHERE num = ?", (subtask_id, part_num))


__all__ = ["DB_FILE_NAME", "DBTaskManager", "Part", "Subtask", "SubtaskStatus"]
