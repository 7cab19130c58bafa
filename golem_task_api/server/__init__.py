"""The two app servers (grpc.aio), with health, reflection and mutual TLS."""

from golem_task_api.server.app_server import AppServer
from golem_task_api.server.provider import ProviderAppServer
from golem_task_api.server.requestor import RequestorAppServer

__all__ = ["AppServer", "ProviderAppServer", "RequestorAppServer"]
