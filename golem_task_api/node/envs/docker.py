"""`docker_cpu` / `docker_gpu`: an app's image, run as a Golem node runs it.

The container (anchor-golem.md 2.3): the image `image:tag` from the app's
prerequisites, the command `requestor PORT` or `provider PORT` (nothing
else: the work dir is the image's default `/golem/work`), the work dir bound
there read-write, `--user` the host uid, the port published with the same
number on the host (on loopback here: only this node dials it), memory and
CPU limits, the bridge network, Golem's 19 dropped capabilities. `docker run`
stays attached: its output carries the announce line and the logs, and it
passes SIGTERM on to the app (`--sig-proxy`), so `stop()` is `docker stop`;
SIGKILL (and any leftover) ends with `docker rm --force`.
"""

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from golem_task_api.client.process_service import (
    START_TIMEOUT,
    STOP_GRACE,
    Launched,
    ProcessService,
    SubprocessLaunch,
)
from golem_task_api.constants import WORK_DIR
from golem_task_api.entrypoint import parse_command
from golem_task_api.envs.constants import DOCKER_CPU_ENV_ID, DOCKER_GPU_ENV_ID
from golem_task_api.node.envs.base import (
    AppSpec,
    Availability,
    DockerImage,
    ProcessEnvironment,
    Role,
)
from golem_task_api.node.envs.local import LOOPBACK

CONTAINER_WORK_DIR = "/" + WORK_DIR.strip("/")
# DockerCPUEnvironment.DROPPED_KERNEL_CAPABILITIES in Golem.
DROPPED_CAPABILITIES = (
    "audit_control", "audit_write", "mac_admin", "mac_override", "mknod", "net_admin",
    "net_bind_service", "net_raw", "setfcap", "setpcap", "sys_admin", "sys_boot",
    "sys_chroot", "sys_module", "sys_nice", "sys_pacct", "sys_resource", "sys_time",
    "sys_tty_config",
)
NETWORK_MODE = "bridge"
DEFAULT_MEMORY_MIB = 1024
_CHECK_TIMEOUT = 15.0
_REMOVE_TIMEOUT = 30.0


@dataclass(frozen=True)
class DockerLimits:
    """Memory in MiB; the first `cpu_count` CPUs of this node (None: all)."""

    memory_mib: int = DEFAULT_MEMORY_MIB
    cpu_count: int | None = None

    def cpuset(self) -> str | None:
        if self.cpu_count is None:
            return None
        cpus = sorted(os.sched_getaffinity(0))[: max(1, self.cpu_count)]
        return ",".join(map(str, cpus))


@dataclass(frozen=True)
class GpuConfig:
    """What `docker_gpu` adds: the nvidia runtime and its variables."""

    vendor: str = "NVIDIA"
    visible_devices: str = "all"
    driver_capabilities: str = "compute,utility"
    requirements: Mapping[str, str] = field(default_factory=dict, hash=False)

    def env(self) -> dict[str, str]:
        env = {
            "GPU_ENABLED": "1",
            "GPU_VENDOR": self.vendor,
            "NVIDIA_VISIBLE_DEVICES": self.visible_devices,
            "NVIDIA_DRIVER_CAPABILITIES": self.driver_capabilities,
        }
        env.update({f"NVIDIA_REQUIRE_{k.upper()}": v for k, v in self.requirements.items()})
        return env


def docker_run_argv(
    image: DockerImage,
    role: str,
    port: int,
    work_dir: Path,
    *,
    name: str,
    docker: str = "docker",
    limits: DockerLimits | None = None,
    gpu: GpuConfig | None = None,
    user: str | None = None,
    publish_host: str = LOOPBACK,
) -> list[str]:
    """The `docker run` command line of one app server."""
    source = str(Path(work_dir).resolve())
    if "," in source:
        raise ValueError(f"a work dir for Docker cannot contain a comma: {source}")
    limits = limits or DockerLimits()
    argv = [
        docker, "run", "--rm", "--name", name, "--sig-proxy=true",
        "--user", user or f"{os.getuid()}:{os.getgid()}",
        "--mount", f"type=bind,source={source},target={CONTAINER_WORK_DIR}",
        "--publish", f"{publish_host}:{port}:{port}/tcp",
        "--network", NETWORK_MODE,
        "--memory", f"{limits.memory_mib}m",
    ]
    cpuset = limits.cpuset()
    if cpuset is not None:
        argv += ["--cpuset-cpus", cpuset]
    for capability in DROPPED_CAPABILITIES:
        argv += ["--cap-drop", capability]
    if gpu is not None:
        argv += ["--runtime", "nvidia"]
        for key, value in gpu.env().items():
            argv += ["--env", f"{key}={value}"]
    return [*argv, image.reference, role, str(port)]


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on now (the container needs the same on both sides)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


async def run_docker(docker: str, *args: str, timeout: float = _CHECK_TIMEOUT) -> tuple[int, str]:
    """(exit code, output) of a docker command; -1 if it did not answer in time."""
    process = await asyncio.create_subprocess_exec(
        docker, *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -1, f"docker {' '.join(args)} did not answer in {timeout:g} s"
    assert process.returncode is not None
    return process.returncode, out.decode("utf-8", "replace").strip()


class DockerLaunch(SubprocessLaunch):
    """An attached `docker run`; its container is removed when it is released."""

    docker: str = "docker"
    container: str = ""

    async def release(self) -> None:
        await super().release()
        # --rm removes a container that exits; this is for one whose client
        # was killed while it ran.
        with contextlib.suppress(Exception):
            await run_docker(self.docker, "rm", "--force", self.container,
                             timeout=_REMOVE_TIMEOUT)


class DockerService(ProcessService):
    """One app server in a container, reached on a loopback port."""

    def __init__(
        self,
        image: DockerImage,
        work_dir: Path,
        *,
        docker: str = "docker",
        limits: DockerLimits | None = None,
        gpu: GpuConfig | None = None,
        name_prefix: str = "golem-task-api",
        log_path: Path | None = None,
        start_timeout: float = START_TIMEOUT,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        super().__init__(
            work_dir, host=LOOPBACK, log_path=log_path,
            start_timeout=start_timeout, stop_grace=stop_grace,
        )
        self.image = image
        self._docker = docker
        self._limits = limits
        self._gpu = gpu
        self._name_prefix = name_prefix
        self._role = ""
        self._port = 0
        self.container: str | None = None

    def command_line(self, role: str, port: int) -> list[str]:
        assert self.container is not None
        return docker_run_argv(
            self.image, role, port, self._work_dir, name=self.container, docker=self._docker,
            limits=self._limits, gpu=self._gpu,
        )

    async def start(self, command: str, port: int) -> tuple[str, int]:
        if self.running():
            raise RuntimeError("this service already runs a container")
        role, port, _extra = parse_command(command.split())
        # The host port must equal the container's: choose one for port 0.
        self._role, self._port = role, port or free_port()
        self.container = f"{self._name_prefix}-{role}-{secrets.token_hex(6)}"
        return await super().start(f"{role} {self._port}", self._port)

    async def _launch(self, args: list[str]) -> Launched:
        launched = await DockerLaunch.spawn(self.command_line(self._role, self._port))
        launched.docker, launched.container = self._docker, self.container or ""
        return launched

    def _address(self, port: int) -> tuple[str, int]:
        return LOOPBACK, self._port


class DockerEnvironment(ProcessEnvironment):
    """`docker_cpu`, or `docker_gpu` with a `GpuConfig`: needs a reachable engine."""

    def __init__(
        self,
        log_dir: Path | None = None,
        *,
        gpu: GpuConfig | None = None,
        docker: str = "docker",
        limits: DockerLimits | None = None,
        start_timeout: float = START_TIMEOUT,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        super().__init__(log_dir, start_timeout=start_timeout, stop_grace=stop_grace)
        self.gpu = gpu
        self.docker = docker
        self.limits = limits or DockerLimits()

    @property
    def env_id(self) -> str:
        return DOCKER_GPU_ENV_ID if self.gpu is not None else DOCKER_CPU_ENV_ID

    async def _check_availability(self) -> Availability:
        if shutil.which(self.docker) is None:
            return Availability.no(f"{self.docker} is not installed")
        code, output = await run_docker(self.docker, "version", "--format", "{{.Server.Version}}")
        if code != 0:
            last = output.splitlines()[-1] if output else f"exit code {code}"
            return Availability.no(f"no reachable Docker engine: {last}")
        if self.gpu is not None:
            code, runtimes = await run_docker(self.docker, "info", "--format",
                                              "{{json .Runtimes}}")
            if code != 0 or "nvidia" not in runtimes:
                return Availability.no("the Docker engine has no nvidia runtime")
        return Availability.yes()

    def unsupported_reason(self, app: AppSpec, role: Role) -> str | None:
        if app.image is None:
            return f"{app.name} has no Docker image (prerequisites image and tag)"
        return None

    async def ensure_image(self, image: DockerImage, *, pull: bool = True) -> None:
        """Installing the prerequisites: the image is there, or pulled."""
        code, _ = await run_docker(self.docker, "image", "inspect", image.reference)
        if code == 0:
            return
        if not pull:
            raise LookupError(f"no Docker image {image.reference} here")
        code, output = await run_docker(self.docker, "pull", image.reference, timeout=3600.0)
        if code != 0:
            raise LookupError(f"cannot pull {image.reference}: {output}")

    def service(
        self, app: AppSpec, work_dir: Path, role: Role, *, log_path: Path | None = None
    ) -> DockerService:
        if app.image is None:
            raise ValueError(self.unsupported_reason(app, role))
        return DockerService(
            app.image, work_dir, docker=self.docker, limits=self.limits, gpu=self.gpu,
            name_prefix=f"golem-task-api-{app.name}", **self.service_options(app, role, log_path),
        )


__all__ = [
    "CONTAINER_WORK_DIR",
    "DROPPED_CAPABILITIES",
    "DockerEnvironment",
    "DockerLimits",
    "DockerService",
    "GpuConfig",
    "docker_run_argv",
]
