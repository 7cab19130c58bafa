"""Tasks for the Docker environments that Golem providers know."""

from golem_task_api.envs.constants import DOCKER_CPU_ENV_ID, DOCKER_GPU_ENV_ID
from golem_task_api.structs import Infrastructure, Task


def _docker_prerequisites(image: str, tag: str) -> dict[str, str]:
    # Nodes parse the prerequisites as exactly {"image", "tag"}: an extra key
    # makes providers refuse the task, an empty value is a useless image.
    if not image or not tag:
        raise ValueError(f"a Docker image needs a name and a tag, got {image!r}:{tag!r}")
    return {"image": image, "tag": tag}


def create_docker_cpu_task(
    image: str, tag: str, inf: Infrastructure | None = None
) -> Task:
    return Task(
        env_id=DOCKER_CPU_ENV_ID,
        prerequisites=_docker_prerequisites(image, tag),
        inf_requirements=inf if inf is not None else Infrastructure(),
    )


def create_docker_gpu_task(
    image: str, tag: str, inf: Infrastructure | None = None
) -> Task:
    return Task(
        env_id=DOCKER_GPU_ENV_ID,
        prerequisites=_docker_prerequisites(image, tag),
        inf_requirements=inf if inf is not None else Infrastructure(),
    )


__all__ = [
    "DOCKER_CPU_ENV_ID",
    "DOCKER_GPU_ENV_ID",
    "create_docker_cpu_task",
    "create_docker_gpu_task",
]
