"""App definitions: the dataclass Golem nodes read, its id, its file, and a builder.

Build one with `build_app_definition(config, out_dir, **overrides)` or
`python -m golem_task_api.apputils.app_definition CONFIG_JSON --out DIR`.
"""

from golem_task_api.apputils.app_definition.build import (
    CONFIG_FILE_NAME,
    build_app_definition,
    definition_from_config,
)
from golem_task_api.apputils.app_definition.files import (
    load_app_from_json_file,
    save_app_to_json_file,
)
from golem_task_api.apputils.app_definition.model import (
    MARKET_STRATEGIES,
    AppDefinition,
    AppDefinitionBase,
    AppDefinitionError,
    AppId,
)

__all__ = [
    "CONFIG_FILE_NAME",
    "MARKET_STRATEGIES",
    "AppDefinition",
    "AppDefinitionBase",
    "AppDefinitionError",
    "AppId",
    "build_app_definition",
    "definition_from_config",
    "load_app_from_json_file",
    "save_app_to_json_file",
]
