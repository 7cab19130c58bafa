"""App definition files: what a node finds in its apps dir."""

import os
import tempfile
from pathlib import Path

from golem_task_api.apputils.app_definition.model import AppDefinitionBase, AppDefinitionError


def save_app_to_json_file(app_def: AppDefinitionBase, json_file: Path) -> None:
    """Write `app_def` to `json_file`, creating its dir.

    Atomically: a node scanning the dir never reads a half-written file.
    """
    json_file = Path(json_file)
    json_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=json_file.parent, prefix=f".{json_file.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(app_def.to_json())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; nodes may run as another user
        os.replace(tmp, json_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_app_from_json_file(json_file: Path) -> AppDefinitionBase:
    try:
        text = Path(json_file).read_text(encoding="utf-8")
    except OSError as e:
        raise AppDefinitionError(f"cannot read app definition {json_file}: {e}") from e
    try:
        return AppDefinitionBase.from_json(text)
    except AppDefinitionError as e:
        raise AppDefinitionError(f"{json_file}: {e}") from e


__all__ = ["load_app_from_json_file", "save_app_to_json_file"]
