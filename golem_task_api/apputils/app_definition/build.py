"""Building an app definition file from a config (the original's `task-api-config.json`).

The config is a JSON object with fields of the definition; the original kept
`requestor_env`, `max_benchmark_score`, `market_strategy` (and sometimes
`name` and `requestor_prereq`) there and took the rest from setup.py. Here
anything missing from the config is given as an override (or on the command
line): typically the name, the version, and the image tag of the release.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict, Unpack

from golem_task_api.apputils.app_definition.files import save_app_to_json_file
from golem_task_api.apputils.app_definition.model import AppDefinitionBase, AppDefinitionError

CONFIG_FILE_NAME = "task-api-config.json"


class Overrides(TypedDict, total=False):
    """Fields that replace the config's; `image` and `tag` replace one key of the prereq."""

    name: str
    requestor_env: str
    requestor_prereq: dict[str, str]
    max_benchmark_score: float
    version: str
    description: str
    author: str
    license: str
    market_strategy: str
    image: str
    tag: str


def read_config(config: Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return dict(config)
    try:
        data = json.loads(Path(config).read_text(encoding="utf-8"))
    except OSError as e:
        raise AppDefinitionError(f"cannot read config {config}: {e}") from e
    except json.JSONDecodeError as e:
        raise AppDefinitionError(f"config {config} is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise AppDefinitionError(f"config {config} must hold a JSON object")
    return data


def definition_from_config(
    config: Path | Mapping[str, Any], **overrides: Unpack[Overrides]
) -> AppDefinitionBase:
    values = read_config(config)
    changes: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    image, tag = changes.pop("image", None), changes.pop("tag", None)
    values.update(changes)
    if image is not None or tag is not None:
        prereq = dict(values.get("requestor_prereq") or {})
        if image is not None:
            prereq["image"] = image
        if tag is not None:
            prereq["tag"] = tag
        values["requestor_prereq"] = prereq
    return AppDefinitionBase.from_dict(values)


def build_app_definition(
    config: Path | Mapping[str, Any], out_dir: Path, **overrides: Unpack[Overrides]
) -> Path:
    """Write `out_dir/{name}_{version}_{id}.json` from `config` and `overrides`; return its path."""
    definition = definition_from_config(config, **overrides)
    path = Path(out_dir) / definition.file_name
    save_app_to_json_file(definition, path)
    return path


__all__ = [
    "CONFIG_FILE_NAME",
    "Overrides",
    "build_app_definition",
    "definition_from_config",
    "read_config",
]
