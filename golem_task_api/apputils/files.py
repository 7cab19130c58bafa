"""Files of a task: written so that a reader (or a crash) never sees half of
one, and found where a node left them."""

import os
import tempfile
from pathlib import Path

from golem_task_api.dirutils import RequestorTaskDir
from golem_task_api.errors import InvalidArgument


def write_atomically(path: Path, data: bytes | str, *, mode: int = 0o644) -> None:
    """Replace `path` with `data` in one step (a temp file in the same dir, renamed).

    A node copying a task's outputs, or a requestor restarted after a crash,
    finds the old file or the new one, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp makes it private; nodes may run as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def input_file(inputs_dir: Path, name: str, what: str) -> Path:
    """The file `name` (from the params) in `inputs_dir`, resolved.

    For task_inputs or subtask_inputs: a name that leads outside the dir,
    also through a symlink, or that is not a file there, is refused with
    InvalidArgument "`what` 'name' is not in `inputs_dir`'s name".
    """
    inputs = Path(inputs_dir).resolve()
    path = (inputs / name).resolve()
    if not (path.is_relative_to(inputs) and path.is_file()):
        raise InvalidArgument(f"{what} {name!r} is not in {inputs.name}")
    return path


def subtask_result_file(task_dir: RequestorTaskDir, subtask_id: str, name: str) -> Path:
    """A subtask's result file `name` as the node delivered it, for Verify.

    `subtask_outputs/<subtask_id>/<name>`, unless the node delivered that one
    file under another name: then the single file there. When no such file
    can be told apart, the expected path (the caller reports it missing).
    """
    outputs = task_dir.subtask_outputs_dir(subtask_id)
    expected = outputs / name
    if expected.exists() or not outputs.is_dir():
        return expected
    files = [p for p in outputs.iterdir() if p.is_file()]
    return files[0] if len(files) == 1 else expected


__all__ = ["input_file", "subtask_result_file", "write_atomically"]
