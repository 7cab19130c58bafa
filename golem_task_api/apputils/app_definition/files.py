"""App definition files: what a node finds in its apps dir."""

from pathlib import Path

from golem_task_api.apputils.app_definition.model import AppDefinitionBase, AppDefinitionError
from golem_task_api.apputils.files import write_atomically


def save_app_to_json_file(app_def: AppDefinitionBase, json_file: Path) -> None:
    """Write `app_def` to `json_file`, creating its dir.

    Atomically: a node scanning the dir never reads a half-written file.
    """
    write_atomically(Path(json_file), app_def.to_json())


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
