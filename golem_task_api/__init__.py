"""The Golem Task API: write apps for a compute market, and run them.

The names below are loaded on first use, so that a tool which needs none of
gRPC (e.g. `golem-task-api status`) does not pay for importing it.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from golem_task_api import constants, threading
    from golem_task_api.client import ProviderAppClient, RequestorAppClient, TaskApiService
    from golem_task_api.entrypoint import entrypoint as main
    from golem_task_api.handlers import (
        AppLifecycleHandler,
        ProviderAppHandler,
        RequestorAppHandler,
    )

_LAZY = {
    "AppLifecycleHandler": ("golem_task_api.handlers", "AppLifecycleHandler"),
    "ProviderAppHandler": ("golem_task_api.handlers", "ProviderAppHandler"),
    "RequestorAppHandler": ("golem_task_api.handlers", "RequestorAppHandler"),
    "ProviderAppClient": ("golem_task_api.client", "ProviderAppClient"),
    "RequestorAppClient": ("golem_task_api.client", "RequestorAppClient"),
    "TaskApiService": ("golem_task_api.client", "TaskApiService"),
    "main": ("golem_task_api.entrypoint", "entrypoint"),
    "constants": ("golem_task_api.constants", None),
    "threading": ("golem_task_api.threading", None),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'golem_task_api' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "AppLifecycleHandler",
    "ProviderAppClient",
    "ProviderAppHandler",
    "RequestorAppClient",
    "RequestorAppHandler",
    "TaskApiService",
    "constants",
    "main",
    "threading",
]
