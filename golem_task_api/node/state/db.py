"""`NodeDB`: every state change of the task manager, one SQLite transaction each.

WAL with synchronous=NORMAL: a committed change survives the node process
being killed at any moment (SIGKILL loses nothing the OS already has; only a
power cut may lose the last transactions). Other processes (`status`,
`abort`) read while the node writes, and write small requests it picks up.

One connection per process, used from the event loop's thread only.
"""

import json
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from golem_task_api.node.state.models import (
    UNFINISHED_TASK_STATES,
    UNSETTLED_SUBTASK_STATES,
    AppRef,
    Progress,
    SubtaskRow,
    SubtaskState,
    TaskRow,
    TaskState,
)
from golem_task_api.node.state.schema import migrate

BUSY_TIMEOUT_MS = 10_000
_UNSET: Any = object()


class TaskNotFound(LookupError):
    pass


class AmbiguousTaskId(LookupError):
    pass


class Request(NamedTuple):
    """A request another process left for the running node (e.g. abort)."""

    request_id: int
    op: str
    task_id: str
    args: dict[str, Any]
    created_at: float
    done_at: float | None
    result: str | None


class NodeDB:
    def __init__(self, path: Path, *, create: bool = True) -> None:
        path = Path(path)
        if not create and not path.exists():
            raise FileNotFoundError(f"no node database at {path}")
        self.path = path
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if self._conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        migrate(self._conn)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _write(self, sql: str, params: Iterable[Any] = ()) -> int:
        return self._conn.execute(sql, tuple(params)).rowcount

    # --- meta -------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def delete_meta(self, key: str) -> None:
        self._write("DELETE FROM meta WHERE key = ?", (key,))

    # --- tasks ------------------------------------------------------------------

    def add_task(self, task: TaskRow) -> TaskRow:
        now = time.time()
        self._write(
            "INSERT INTO tasks (task_id, app_key, app_json, params_json, inputs_json,"
            " max_subtasks, output_dir, state, timeout, subtask_timeout, providers,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                task.task_id, task.app.key, task.app.to_json(), json.dumps(task.params),
                json.dumps(task.inputs), task.max_subtasks, task.output_dir, task.state.value,
                task.timeout, task.subtask_timeout, task.providers, now, now,
            ),
        )
        return self.get_task(task.task_id)

    def task(self, task_id: str) -> TaskRow | None:
        row = self._conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return None if row is None else _task(row)

    def get_task(self, task_id: str) -> TaskRow:
        task = self.task(task_id)
        if task is None:
            raise TaskNotFound(f"no task {task_id!r} in {self.path}")
        return task

    def find_task(self, prefix: str) -> TaskRow:
        """The task whose id is `prefix` or starts with it (as git finds commits)."""
        exact = self.task(prefix)
        if exact is not None:
            return exact
        rows = self._conn.execute(
            "SELECT * FROM tasks WHERE substr(task_id, 1, ?) = ? ORDER BY created_at LIMIT 11",
            (len(prefix), prefix),
        ).fetchall()
        if not rows:
            raise TaskNotFound(f"no task {prefix!r} in {self.path}")
        if len(rows) > 1:
            listed = ", ".join(r["task_id"] for r in rows[:10])
            raise AmbiguousTaskId(f"{prefix!r} names {len(rows)} tasks ({listed}): give more of it")
        return _task(rows[0])

    def tasks(self, states: Collection[TaskState] | None = None) -> list[TaskRow]:
        if states is None:
            rows = self._conn.execute("SELECT * FROM tasks ORDER BY created_at").fetchall()
        else:
            marks = ",".join("?" * len(states))
            rows = self._conn.execute(
                f"SELECT * FROM tasks WHERE state IN ({marks}) ORDER BY created_at",
                [s.value for s in states],
            ).fetchall()
        return [_task(row) for row in rows]

    def unfinished_tasks(self) -> list[TaskRow]:
        return self.tasks(UNFINISHED_TASK_STATES)

    def update_task(
        self,
        task_id: str,
        *,
        state: TaskState | None = None,
        error: str | None = _UNSET,
        env_id: str | None = _UNSET,
        prerequisites: Mapping[str, Any] | None = _UNSET,
        min_memory_mib: float | None = None,
        deadline: float | None = _UNSET,
        providers: int | None = None,
        abort_requested: bool | None = None,
    ) -> None:
        now = time.time()
        sets: dict[str, Any] = {"updated_at": now}
        if state is not None:
            sets["state"] = state.value
            sets["finished_at"] = now if state.finished else None
        if error is not _UNSET:
            sets["error"] = error
        if env_id is not _UNSET:
            sets["env_id"] = env_id
        if prerequisites is not _UNSET:
            sets["prerequisites_json"] = (
                None if prerequisites is None else json.dumps(dict(prerequisites))
            )
        if min_memory_mib is not None:
            sets["min_memory_mib"] = min_memory_mib
        if deadline is not _UNSET:
            sets["deadline"] = deadline
        if providers is not None:
            sets["providers"] = providers
        if abort_requested is not None:
            sets["abort_requested"] = int(abort_requested)
        columns = ", ".join(f"{name} = ?" for name in sets)
        changed = self._write(
            f"UPDATE tasks SET {columns} WHERE task_id = ?", [*sets.values(), task_id]
        )
        if not changed:
            raise TaskNotFound(f"no task {task_id!r} in {self.path}")

    # --- subtasks ---------------------------------------------------------------

    def add_subtask(self, subtask: SubtaskRow) -> None:
        now = time.time()
        self._write(
            "INSERT INTO subtasks (subtask_id, task_id, number, node_id, state, execution_id,"
            " params_json, resources_json, retry_of, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                subtask.subtask_id, subtask.task_id, subtask.number, subtask.node_id,
                subtask.state.value, subtask.execution_id,
                None if subtask.params is None else json.dumps(subtask.params),
                json.dumps(subtask.resources), subtask.retry_of, now, now,
            ),
        )

    def delete_subtask(self, subtask_id: str) -> None:
        self._write("DELETE FROM subtasks WHERE subtask_id = ?", (subtask_id,))

    def update_subtask(
        self,
        subtask_id: str,
        *,
        state: SubtaskState | None = None,
        execution_id: str | None = _UNSET,
        params: Mapping[str, Any] | None = _UNSET,
        resources: list[str] | None = None,
        result_path: str | None = _UNSET,
        reason: str | None = _UNSET,
        retry_of: str | None = _UNSET,
        verdict_reported: bool | None = None,
        count_verify_call: bool = False,
    ) -> None:
        now = time.time()
        sets: dict[str, Any] = {"updated_at": now}
        if state is not None:
            sets["state"] = state.value
            if state.settled:
                sets["finished_at"] = now
        if execution_id is not _UNSET:
            sets["execution_id"] = execution_id
        if params is not _UNSET:
            sets["params_json"] = None if params is None else json.dumps(dict(params))
        if resources is not None:
            sets["resources_json"] = json.dumps(resources)
        if result_path is not _UNSET:
            sets["result_path"] = result_path
        if reason is not _UNSET:
            sets["reason"] = reason
        if retry_of is not _UNSET:
            sets["retry_of"] = retry_of
        if verdict_reported is not None:
            sets["verdict_reported"] = int(verdict_reported)
        columns = ", ".join(f"{name} = ?" for name in sets)
        if count_verify_call:
            columns += ", verify_calls = verify_calls + 1"
        self._write(
            f"UPDATE subtasks SET {columns} WHERE subtask_id = ?", [*sets.values(), subtask_id]
        )

    def subtask(self, subtask_id: str) -> SubtaskRow | None:
        row = self._conn.execute(
            "SELECT * FROM subtasks WHERE subtask_id = ?", (subtask_id,)
        ).fetchone()
        return None if row is None else _subtask(row)

    def subtasks(
        self, task_id: str, states: Collection[SubtaskState] | None = None
    ) -> list[SubtaskRow]:
        if states is None:
            rows = self._conn.execute(
                "SELECT * FROM subtasks WHERE task_id = ? ORDER BY number", (task_id,)
            ).fetchall()
        else:
            marks = ",".join("?" * len(states))
            rows = self._conn.execute(
                f"SELECT * FROM subtasks WHERE task_id = ? AND state IN ({marks})"
                " ORDER BY number",
                [task_id, *(s.value for s in states)],
            ).fetchall()
        return [_subtask(row) for row in rows]

    def unsettled_subtasks(self, task_id: str) -> list[SubtaskRow]:
        return self.subtasks(task_id, UNSETTLED_SUBTASK_STATES)

    def subtask_by_execution(self, execution_id: str) -> SubtaskRow | None:
        row = self._conn.execute(
            "SELECT * FROM subtasks WHERE execution_id = ? ORDER BY created_at DESC LIMIT 1",
            (execution_id,),
        ).fetchone()
        return None if row is None else _subtask(row)

    def next_subtask_number(self, task_id: str) -> int:
        row = self._conn.execute(
            "SELECT max(number) FROM subtasks WHERE task_id = ?", (task_id,)
        ).fetchone()
        return int(row[0] or 0) + 1

    def subtask_counts(self, task_ids: Collection[str] | None = None) -> dict[str, dict[str, int]]:
        """task id -> subtask state -> how many."""
        if task_ids is None:
            rows = self._conn.execute(
                "SELECT task_id, state, count(*) FROM subtasks GROUP BY task_id, state"
            ).fetchall()
        else:
            marks = ",".join("?" * len(task_ids))
            rows = self._conn.execute(
                f"SELECT task_id, state, count(*) FROM subtasks WHERE task_id IN ({marks})"
                " GROUP BY task_id, state",
                list(task_ids),
            ).fetchall()
        counts: dict[str, dict[str, int]] = {}
        for task_id, state, count in rows:
            counts.setdefault(task_id, {})[state] = int(count)
        return counts

    # --- exclusions -------------------------------------------------------------

    def exclude_node(self, task_id: str, node_id: str, reason: str) -> None:
        self._write(
            "INSERT OR IGNORE INTO excluded_nodes (task_id, node_id, reason, at)"
            " VALUES (?, ?, ?, ?)",
            (task_id, node_id, reason, time.time()),
        )

    def excluded_nodes(self, task_id: str) -> dict[str, str]:
        rows = self._conn.execute(
            "SELECT node_id, reason FROM excluded_nodes WHERE task_id = ? ORDER BY at", (task_id,)
        ).fetchall()
        return {str(r[0]): str(r[1]) for r in rows}

    # --- progress ---------------------------------------------------------------

    def save_progress(
        self, tasks: Mapping[str, Progress], subtasks: Mapping[str, Progress]
    ) -> None:
        """The latest values, all in one transaction (they come often)."""
        if not tasks and not subtasks:
            return
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE tasks SET progress_done = ?, progress_total = ?, progress_unit = ?,"
                " progress_message = ? WHERE task_id = ?",
                [(p.done, p.total, p.unit, p.message, key) for key, p in tasks.items()],
            )
            conn.executemany(
                "UPDATE subtasks SET progress_done = ?, progress_total = ?, progress_unit = ?,"
                " progress_message = ? WHERE subtask_id = ?",
                [(p.done, p.total, p.unit, p.message, key) for key, p in subtasks.items()],
            )

    # --- requests from other processes --------------------------------------------

    def add_request(self, op: str, task_id: str, args: Mapping[str, Any] | None = None) -> int:
        cursor = self._conn.execute(
            "INSERT INTO requests (op, task_id, args_json, created_at) VALUES (?, ?, ?, ?)",
            (op, task_id, json.dumps(dict(args or {})), time.time()),
        )
        return int(cursor.lastrowid or 0)

    def pending_requests(self) -> list[Request]:
        rows = self._conn.execute(
            "SELECT * FROM requests WHERE done_at IS NULL ORDER BY request_id"
        ).fetchall()
        return [_request(row) for row in rows]

    def request(self, request_id: int) -> Request | None:
        row = self._conn.execute(
            "SELECT * FROM requests WHERE request_id = ?", (request_id,)
        ).fetchone()
        return None if row is None else _request(row)

    def finish_request(self, request_id: int, result: str) -> None:
        self._write(
            "UPDATE requests SET done_at = ?, result = ? WHERE request_id = ?",
            (time.time(), result, request_id),
        )


def _progress(row: sqlite3.Row) -> Progress | None:
    if row["progress_done"] is None:
        return None
    return Progress(
        float(row["progress_done"]),
        None if row["progress_total"] is None else float(row["progress_total"]),
        row["progress_unit"] or "",
        row["progress_message"] or "",
    )


def _task(row: sqlite3.Row) -> TaskRow:
    prerequisites = row["prerequisites_json"]
    return TaskRow(
        task_id=row["task_id"],
        app=AppRef.from_json(row["app_json"]),
        params=json.loads(row["params_json"]),
        inputs=json.loads(row["inputs_json"]),
        max_subtasks=int(row["max_subtasks"]),
        output_dir=row["output_dir"],
        state=TaskState(row["state"]),
        error=row["error"],
        env_id=row["env_id"],
        prerequisites=None if prerequisites is None else json.loads(prerequisites),
        min_memory_mib=float(row["min_memory_mib"]),
        timeout=row["timeout"],
        subtask_timeout=row["subtask_timeout"],
        deadline=row["deadline"],
        providers=int(row["providers"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        finished_at=row["finished_at"],
        progress=_progress(row),
        abort_requested=bool(row["abort_requested"]),
    )


def _subtask(row: sqlite3.Row) -> SubtaskRow:
    params = row["params_json"]
    return SubtaskRow(
        subtask_id=row["subtask_id"],
        task_id=row["task_id"],
        number=int(row["number"]),
        node_id=row["node_id"],
        state=SubtaskState(row["state"]),
        execution_id=row["execution_id"],
        params=None if params is None else json.loads(params),
        resources=json.loads(row["resources_json"]),
        result_path=row["result_path"],
        reason=row["reason"],
        retry_of=row["retry_of"],
        verify_calls=int(row["verify_calls"]),
        verdict_reported=bool(row["verdict_reported"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        finished_at=row["finished_at"],
        progress=_progress(row),
    )


def _request(row: sqlite3.Row) -> Request:
    return Request(
        request_id=int(row["request_id"]),
        op=row["op"],
        task_id=row["task_id"],
        args=json.loads(row["args_json"]),
        created_at=float(row["created_at"]),
        done_at=row["done_at"],
        result=row["result"],
    )


__all__ = ["AmbiguousTaskId", "NodeDB", "Request", "TaskNotFound"]
