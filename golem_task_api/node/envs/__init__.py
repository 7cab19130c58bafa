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
from golem_task_api.node.envs.docker import DockerEnvironment, DockerLimits, GpuConfig
from golem_task_api.node.envs.local import LocalEnvironment
from golem_task_api.node.envs.sandbox import SandboxEnvironment
from golem_task_api.node.envs.warm import WarmProcessService, WarmStartEnvironment

__all__ = [
    "AppSpec",
    "Availability",
    "DockerEnvironment",
    "DockerImage",
    "DockerLimits",
    "Environment",
    "GpuConfig",
    "LocalEnvironment",
    "NoEnvironment",
    "Role",
    "SandboxEnvironment",
    "WarmProcessService",
    "WarmStartEnvironment",
    "pick_environment",
]
