"""What the commands share: exit codes, the work dir, messages."""

import argparse
import sys
from pathlib import Path

from golem_task_api.node.workdir import resolve_work_dir

EXIT_OK = 0
EXIT_FAILED = 1      # the task failed, timed out or was aborted
EXIT_USAGE = 2       # bad command line or input: nothing was started
EXIT_BUSY = 3        # another node runs on the work dir
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad command line or input; the message says what to fix (exit 2)."""


def work_dir(args: argparse.Namespace) -> Path:
    return resolve_work_dir(getattr(args, "work_dir", None))


def error(message: str) -> None:
    print(f"golem-task-api: {message}", file=sys.stderr)


__all__ = [
    "EXIT_BUSY",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "error",
    "work_dir",
]
