"""One SQLite file, one connection, safe to share between threads and coroutines."""

import logging
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_BUSY_TIMEOUT = 5.0

logger = logging.getLogger(__name__)


class DatabaseClosed(RuntimeError):
    """The database was used after `close()`."""


class SQLiteDatabase:
    """A SQLite database file in WAL mode behind one connection and one lock.

    Every statement runs under the lock, so one instance can be used from the
    event loop and from worker threads at once; `transaction()` makes a
    read-then-write sequence atomic, also against other connections to the
    same file (other managers, other processes), because it takes SQLite's
    write lock up front (`BEGIN IMMEDIATE`).
    """

    def __init__(self, path: Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Re-entrant: an app may wrap its own statements and a manager's
        # method in one `transaction()`; the nested one becomes a savepoint.
        self._lock = threading.RLock()
        self._depth = 0
        # The lock, not sqlite3's thread check, is what serialises use, and
        # transactions are explicit (isolation_level=None: no implicit BEGIN).
        conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if str(mode).lower() != "wal":
                # Some filesystems (network mounts) refuse WAL; it still works,
                # with readers and the writer blocking each other.
                logger.warning("%s: journal mode stays %s, not WAL", path, mode)
            conn.execute("PRAGMA foreign_keys = ON")
            # A verified result must survive a crash of the whole machine:
            # the node will not send that subtask again.
            conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn
        # Apps often make a manager per call and drop it; the connection (and
        # its file handles) goes with the object, without a ResourceWarning.
        self._finalizer = weakref.finalize(self, conn.close)

    @property
    def closed(self) -> bool:
        return self._conn is None

    def close(self) -> None:
        with self._lock:
            self._conn = None
            self._finalizer()

    def __enter__(self) -> "SQLiteDatabase":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise DatabaseClosed(f"database {self.path} is closed")
        return self._conn

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, held for a read (each statement sees a committed state)."""
        with self._lock:
            yield self._connection()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside a write transaction: committed on exit, rolled back on error."""
        with self._lock:
            conn = self._connection()
            savepoint = f"sp{self._depth}"
            conn.execute(f"SAVEPOINT {savepoint}" if self._depth else "BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield conn
            except BaseException:
                self._depth -= 1
                # Some errors (disk full, I/O) make SQLite roll back by itself.
                if conn.in_transaction:
                    if self._depth:
                        conn.execute(f"ROLLBACK TO {savepoint}")
                        conn.execute(f"RELEASE {savepoint}")
                    else:
                        conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            conn.execute(f"RELEASE {savepoint}" if self._depth else "COMMIT")


__all__ = ["DEFAULT_BUSY_TIMEOUT", "DatabaseClosed", "SQLiteDatabase"]
