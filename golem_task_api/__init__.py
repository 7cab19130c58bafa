"""The Golem Task API: write apps for a compute market, and run them."""

from golem_task_api import constants, threading
from golem_task_api.client import ProviderAppClient, RequestorAppClient, TaskApiService
from golem_task_api.entrypoint import entrypoint as main
from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler, RequestorAppHandler

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
