"""Environment ids (proto/envs.proto), checked against the descriptor by a test."""

DOCKER_CPU_ENV_ID = "docker_cpu"
DOCKER_GPU_ENV_ID = "docker_gpu"

__all__ = ["DOCKER_CPU_ENV_ID", "DOCKER_GPU_ENV_ID"]
