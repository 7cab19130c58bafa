"""Clients of the two app services, and the services that start apps."""

from golem_task_api.client.app_client import AppClient, ShutdownException
from golem_task_api.client.channel import CONNECTION_TIMEOUT
from golem_task_api.client.local_process import LocalProcessService
from golem_task_api.client.provider import ProviderAppClient
from golem_task_api.client.requestor import RequestorAppClient
from golem_task_api.client.service import TaskApiService

__all__ = [
    "CONNECTION_TIMEOUT",
    "AppClient",
    "LocalProcessService",
    "ProviderAppClient",
    "RequestorAppClient",
    "ShutdownException",
    "TaskApiService",
]
