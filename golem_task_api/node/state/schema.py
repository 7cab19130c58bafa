"""The tables of node.db, and the one place that creates or upgrades them."""

import sqlite3

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    app_key TEXT NOT NULL,
    app_json TEXT NOT NULL,
    params_json TEXT NOT NULL,
    inputs_json TEXT NOT NULL,
    max_subtasks INTEGER NOT NULL,
    output_dir TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    env_id TEXT,
    prerequisites_json TEXT,
    min_memory_mib REAL NOT NULL DEFAULT 0,
    timeout REAL,
    subtask_timeout REAL,
    deadline REAL,
    providers INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    progress_done REAL,
    progress_total REAL,
    progress_unit TEXT NOT NULL DEFAULT '',
    progress_message TEXT NOT NULL DEFAULT '',
    abort_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state);
CREATE TABLE IF NOT EXISTS subtasks (
    subtask_id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks (task_id),
    number INTEGER NOT NULL,
    node_id TEXT NOT NULL,
    state TEXT NOT NULL,
    execution_id TEXT,
    params_json TEXT,
    resources_json TEXT NOT NULL DEFAULT '[]',
    result_path TEXT,
    reason TEXT,
    retry_of TEXT,
    verify_calls INTEGER NOT NULL DEFAULT 0,
    verdict_reported INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    progress_done REAL,
    progress_total REAL,
    progress_unit TEXT NOT NULL DEFAULT '',
    progress_message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS subtasks_by_task ON subtasks (task_id, state);
CREATE INDEX IF NOT EXISTS subtasks_by_execution ON subtasks (execution_id);
CREATE TABLE IF NOT EXISTS excluded_nodes (
    task_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (task_id, node_id)
);
CREATE TABLE IF NOT EXISTS requests (
    request_id INTEGER PRIMARY KEY AUTOINCREMENT,
    op TEXT NOT NULL,
    task_id TEXT NOT NULL,
    args_json TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    done_at REAL,
    result TEXT
);
"""


class SchemaError(RuntimeError):
    """node.db was written by a newer version of this package."""


def migrate(conn: sqlite3.Connection) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"node.db has schema version {version}, newer than this package's"
            f" {SCHEMA_VERSION}: upgrade golem-task-api, or use another --work-dir"
        )
    if version == SCHEMA_VERSION:
        return
    conn.executescript(_SCHEMA)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


__all__ = ["SCHEMA_VERSION", "SchemaError", "migrate"]
