"""Environments: how the node starts an app's server (design.md, layer 4)."""

from golem_task_api.node.envs.base import (
    AppSpec,
    Availability,
    DockerImage,
    Environment,
    NoEnvironment,
    Role,
    pick_environment,
)
from golem_task_api.node.envs.local import LocalEnvironment
from golem_task_api.node.envs.warm import WarmProcessService, WarmStartEnvironment

__all__ = [
    "AppSpec",
    "Availability",
    "DockerImage",
    "Environment",
    "LocalEnvironment",
    "NoEnvironment",
    "Role",
    "WarmProcessService",
    "WarmStartEnvironment",
    "pick_environment",
]
