"""The execution store: SQLite (WAL), every state change a compare-and-set.

A transition names the state(s) it expects; the UPDATE matches only rows in
one of them, so a late write from a background task (a run that finishes
after its execution was cancelled) changes nothing and raises
`StateConflict` instead of overwriting. Transitions the state machine never
allows raise `IllegalTransition` before the database is touched. Each change
bumps the version and appends a history row in the same transaction.

Calls are short and synchronous: the node calls them from its event loop.
"""

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from golem_task_api.errors import AlreadyExists
from golem_task_api.node.compute.benchmarks import BenchmarkScore
from golem_task_api.node.compute.capacity import Resources
from golem_task_api.node.compute.execution import Execution
from golem_task_api.node.compute.offers import (
    Offer,
    SubtaskWork,
    offer_from_json,
    offer_to_json,
    work_from_json,
    work_to_json,
)
from golem_task_api.node.compute.states import (
    TERMINAL_STATES,
    ExecutionNotFound,
    ExecutionState,
    FailureKind,
    StateConflict,
    check_transition,
)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    execution_id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    requestor_id TEXT NOT NULL,
    offer TEXT NOT NULL,
    cpu INTEGER NOT NULL,
    memory_mib INTEGER NOT NULL,
    gpu INTEGER NOT NULL,
    timeout REAL,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    seq INTEGER UNIQUE,
    queue_deadline REAL,
    work TEXT,
    result_path TEXT,
    published TEXT,
    failure TEXT,
    retryable INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_state ON executions (state);
CREATE INDEX IF NOT EXISTS executions_requestor ON executions (requestor_id, failure);
CREATE TABLE IF NOT EXISTS execution_history (
    execution_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (execution_id, version)
);
CREATE TABLE IF NOT EXISTS benchmarks (
    key TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    env_id TEXT NOT NULL,
    prerequisites TEXT NOT NULL,
    score REAL NOT NULL,
    measured_at REAL NOT NULL
);
"""

_COLUMNS = (
    "execution_id, offer, cpu, memory_mib, gpu, timeout, state, version, seq,"
    " queue_deadline, work, result_path, published, failure, retryable, reason,"
    " created_at, updated_at"
)


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    from_state: ExecutionState | None
    to_state: ExecutionState
    reason: str
    at: float


class ExecutionStore:
    """One SQLite file of executions, their history and benchmark scores."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Autocommit mode: transactions are explicit (`_transaction`), so a
        # read never holds a lock longer than its statement.
        self._db = sqlite3.connect(self.path, isolation_level=None)
        try:
            self._db.execute("PRAGMA busy_timeout = 5000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} has schema version {version}, newer than this node"
                f" ({SCHEMA_VERSION}): upgrade golem-task-api"
            )
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ExecutionStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- executions --------------------------------------------------------

    def create(
        self,
        execution_id: str,
        offer: Offer,
        usage: Resources,
        *,
        timeout: float | None,
        reason: str = "",
    ) -> Execution:
        """A new execution in state Created, at version 1."""
        now = time.time()
        try:
            with self._transaction():
                self._db.execute(
                    "INSERT INTO executions (execution_id, task_id, requestor_id, offer, cpu,"
                    " memory_mib, gpu, timeout, state, version, reason, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
                    (
                        execution_id,
                        offer.task_id,
                        offer.requestor_id,
                        offer_to_json(offer),
                        usage.cpu,
                        usage.memory_mib,
                        usage.gpu,
                        timeout,
                        ExecutionState.CREATED.value,
                        reason,
                        now,
                        now,
                    ),
                )
                self._add_history(execution_id, 1, None, ExecutionState.CREATED, reason, now)
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"execution {execution_id!r} already exists") from None
        return self.get(execution_id)

    def find(self, execution_id: str) -> Execution | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM executions WHERE execution_id = ?", (execution_id,)
        ).fetchone()
        return None if row is None else _execution(row)

    def get(self, execution_id: str) -> Execution:
        execution = self.find(execution_id)
        if execution is None:
            raise ExecutionNotFound(execution_id)
        return execution

    def executions(
        self, states: Iterable[ExecutionState] | None = None, *, task_id: str | None = None
    ) -> list[Execution]:
        """Executions (in some states, of some task), in arrival order."""
        clauses, args = [], []
        if states is not None:
            wanted = [s.value for s in states]
            clauses.append(f"state IN ({', '.join('?' * len(wanted))})")
            args.extend(wanted)
        if task_id is not None:
            clauses.append("task_id = ?")
            args.append(task_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM executions{where}"
            " ORDER BY seq IS NULL, seq, created_at, execution_id",
            args,
        )
        return [_execution(row) for row in rows]

    def counts(self) -> dict[ExecutionState, int]:
        counts = dict.fromkeys(ExecutionState, 0)
        for state, count in self._db.execute(
            "SELECT state, COUNT(*) FROM executions GROUP BY state"
        ):
            counts[ExecutionState(state)] = count
        return counts

    def rejected_results(self, requestor_id: str) -> int:
        """How many of this requestor's verifications failed here."""
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM executions WHERE requestor_id = ? AND failure = ?",
            (requestor_id, FailureKind.RESULT_REJECTED.value),
        ).fetchone()
        return int(count)

    def transition(
        self,
        execution_id: str,
        expected: ExecutionState | Iterable[ExecutionState],
        new: ExecutionState,
        *,
        reason: str = "",
        failure: FailureKind | None = None,
        retryable: bool = False,
        work: SubtaskWork | None = None,
        queue_deadline: float | None = None,
        result_path: Path | None = None,
        published: str | None = None,
    ) -> Execution:
        """Move the execution from one of `expected` to `new`, or raise.

        Raises `IllegalTransition` when no expected state may become `new`,
        `ExecutionNotFound`, or `StateConflict` when the execution is not in
        an expected state (it moved on, e.g. it was cancelled meanwhile).
        """
        expected_states = (
            frozenset({expected}) if isinstance(expected, ExecutionState) else frozenset(expected)
        )
        if not expected_states:
            raise ValueError("a transition needs at least one expected state")
        for state in expected_states:
            check_transition(state, new)
        updates: dict[str, Any] = {"state": new.value, "reason": reason}
        if new is ExecutionState.FAILED:
            updates["failure"] = (failure or FailureKind.RUN_ERROR).value
            updates["retryable"] = int(retryable)
        if work is not None:
            updates["work"] = work_to_json(work)
        if queue_deadline is not None:
            updates["queue_deadline"] = queue_deadline
        if result_path is not None:
            updates["result_path"] = str(result_path)
        if published is not None:
            updates["published"] = published
        return self._compare_and_set(execution_id, expected_states, new, updates)

    def _compare_and_set(
        self,
        execution_id: str,
        expected: frozenset[ExecutionState],
        new: ExecutionState,
        updates: dict[str, Any],
    ) -> Execution:
        now = time.time()
        assignments = ", ".join(f"{name} = ?" for name in updates)
        if new is ExecutionState.BID_ACCEPTED:
            # The queue's arrival order, assigned in the same statement so that
            # two acceptances can never share a number.
            assignments += ", seq = (SELECT COALESCE(MAX(seq), 0) + 1 FROM executions)"
        expected_values = [s.value for s in expected]
        with self._transaction():
            row = self._db.execute(
                f"UPDATE executions SET {assignments}, version = version + 1, updated_at = ?"
                f" WHERE execution_id = ? AND state IN ({', '.join('?' * len(expected))})"
                f" RETURNING {_COLUMNS}",
                [*updates.values(), now, execution_id, *expected_values],
            ).fetchone()
            if row is None:
                raise self._conflict(execution_id, expected, new)
            execution = _execution(row)
            self._add_history(
                execution_id,
                execution.version,
                next(iter(expected)) if len(expected) == 1 else None,
                new,
                updates["reason"],
                now,
            )
        return execution

    def _conflict(
        self, execution_id: str, expected: frozenset[ExecutionState], new: ExecutionState
    ) -> Exception:
        current = self.find(execution_id)
        if current is None:
            return ExecutionNotFound(execution_id)
        wanted = " or ".join(sorted(s.value for s in expected))
        what = "is terminal" if current.state in TERMINAL_STATES else "moved on"
        return StateConflict(
            execution_id,
            current.state,
            f"execution {execution_id!r} is {current.state.value}, not {wanted}: it {what},"
            f" so it does not become {new.value}",
        )

    def _add_history(
        self,
        execution_id: str,
        version: int,
        from_state: ExecutionState | None,
        to_state: ExecutionState,
        reason: str,
        at: float,
    ) -> None:
        self._db.execute(
            "INSERT INTO execution_history VALUES (?, ?, ?, ?, ?, ?)",
            (
                execution_id,
                version,
                None if from_state is None else from_state.value,
                to_state.value,
                reason,
                at,
            ),
        )

    def history(self, execution_id: str) -> list[HistoryEntry]:
        rows = self._db.execute(
            "SELECT version, from_state, to_state, reason, at FROM execution_history"
            " WHERE execution_id = ? ORDER BY version",
            (execution_id,),
        )
        return [
            HistoryEntry(v, None if f is None else ExecutionState(f), ExecutionState(t), r, a)
            for v, f, t, r, a in rows
        ]

    def prune(self, finished_before: float) -> int:
        """Forget terminal executions last changed before `finished_before`."""
        terminal = [s.value for s in TERMINAL_STATES]
        marks = ", ".join("?" * len(terminal))
        with self._transaction():
            self._db.execute(
                "DELETE FROM execution_history WHERE execution_id IN (SELECT execution_id"
                f" FROM executions WHERE state IN ({marks}) AND updated_at < ?)",
                [*terminal, finished_before],
            )
            cursor = self._db.execute(
                f"DELETE FROM executions WHERE state IN ({marks}) AND updated_at < ?",
                [*terminal, finished_before],
            )
        return cursor.rowcount

    # -- benchmarks --------------------------------------------------------

    def get_benchmark(self, key: str) -> BenchmarkScore | None:
        row = self._db.execute(
            "SELECT key, app_id, env_id, prerequisites, score, measured_at FROM benchmarks"
            " WHERE key = ?",
            (key,),
        ).fetchone()
        return None if row is None else _benchmark(row)

    def put_benchmark(self, score: BenchmarkScore) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO benchmarks VALUES (?, ?, ?, ?, ?, ?)",
            (
                score.key,
                score.app_id,
                score.env_id,
                json.dumps(dict(score.prerequisites), sort_keys=True),
                score.score,
                score.measured_at,
            ),
        )

    def benchmarks(self) -> list[BenchmarkScore]:
        rows = self._db.execute(
            "SELECT key, app_id, env_id, prerequisites, score, measured_at FROM benchmarks"
            " ORDER BY app_id, env_id, measured_at"
        )
        return [_benchmark(row) for row in rows]


def _execution(row: tuple[Any, ...]) -> Execution:
    (
        execution_id,
        offer,
        cpu,
        memory,
        gpu,
        timeout,
        state,
        version,
        seq,
        queue_deadline,
        work,
        result_path,
        published,
        failure,
        retryable,
        reason,
        created_at,
        updated_at,
    ) = row
    return Execution(
        execution_id=execution_id,
        offer=offer_from_json(offer),
        usage=Resources(cpu, memory, gpu),
        state=ExecutionState(state),
        version=version,
        created_at=created_at,
        updated_at=updated_at,
        timeout=timeout,
        queue_deadline=queue_deadline,
        seq=seq,
        work=None if work is None else work_from_json(work),
        result_path=None if result_path is None else Path(result_path),
        published=published,
        failure=None if failure is None else FailureKind(failure),
        retryable=bool(retryable),
        reason=reason,
    )


def _benchmark(row: tuple[Any, ...]) -> BenchmarkScore:
    key, app_id, env_id, prerequisites, score, measured_at = row
    return BenchmarkScore(key, app_id, env_id, json.loads(prerequisites), score, measured_at)


__all__ = ["SCHEMA_VERSION", "ExecutionStore", "HistoryEntry"]
