"""Helpers for app developers: task database, child processes, logging, app definitions.

Submodules are imported by name (`apputils.task.database`, `apputils.process`,
`apputils.start_logging`, `apputils.app_definition`); this package imports none
of them, so using one does not pull in the others.
"""

import datetime


def datetime_utc() -> datetime.datetime:
    """The current time, timezone-aware, in UTC (kept from the original package)."""
    return datetime.datetime.now(tz=datetime.UTC)


__all__ = ["datetime_utc"]
