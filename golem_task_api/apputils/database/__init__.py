"""SQLite storage for apps (the task database, and any tables an app adds).

The original package bound one module-global peewee proxy here, re-bound by
every manager: a handler that awaited between opening its task's database and
using it could write into another task's file. Each `SQLiteDatabase` here owns
its own connection; there is no global.
"""

from golem_task_api.apputils.database.sqlite import (
    DEFAULT_BUSY_TIMEOUT,
    DatabaseClosed,
    SQLiteDatabase,
)

__all__ = ["DEFAULT_BUSY_TIMEOUT", "DatabaseClosed", "SQLiteDatabase"]
