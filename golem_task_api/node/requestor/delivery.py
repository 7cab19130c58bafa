"""Copying a finished task's `task_outputs/` into the user's output dir.

File by file, each through a hidden temp file renamed into place, so the
output dir never holds a partly written result under its real name. Doing
it again (after a crash mid-way) gives the same result: delivery is
idempotent, and the task counts as completed only once every file is in.
"""

import os
import shutil
from pathlib import Path

TEMP_SUFFIX = ".golem-part"


def output_files(task_outputs: Path) -> list[Path]:
    """The files under `task_outputs`, relative, sorted (dirs are recreated)."""
    return sorted(
        path.relative_to(task_outputs)
        for path in task_outputs.rglob("*")
        if path.is_file() and not path.name.endswith(TEMP_SUFFIX)
    )


def deliver(task_outputs: Path, output_dir: Path) -> list[Path]:
    """Copy every file of `task_outputs` into `output_dir`; the copies' paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    delivered = []
    for relative in output_files(task_outputs):
        target = output_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}{TEMP_SUFFIX}")
        shutil.copy2(task_outputs / relative, temp)
        os.replace(temp, target)
        delivered.append(target)
    return delivered


__all__ = ["TEMP_SUFFIX", "deliver", "output_files"]
