"""The seam between the node and the ways it starts app servers.

An `Environment` turns an app (`AppSpec`), a work dir and a role into a
`TaskApiService`; the node picks one environment per app and per role with
`pick_environment`.
"""

import abc
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, TypedDict

from golem_task_api.client.process_service import START_TIMEOUT, STOP_GRACE
from golem_task_api.client.service import TaskApiService
from golem_task_api.envs.constants import DOCKER_CPU_ENV_ID, DOCKER_GPU_ENV_ID

Role = Literal["requestor", "provider"]
ROLES: tuple[Role, ...] = ("requestor", "provider")

# What a local environment can stand in for: it runs the app's Python module
# where a Golem node would run the app's image.
DOCKER_ENV_IDS = frozenset({DOCKER_CPU_ENV_ID, DOCKER_GPU_ENV_ID})


@dataclass(frozen=True)
class DockerImage:
    """An app's Docker prerequisites: exactly `image` and `tag`."""

    image: str
    tag: str

    def __post_init__(self) -> None:
        if not self.image or not self.tag:
            raise ValueError(
                f"a Docker image needs a name and a tag, got {self.image!r}:{self.tag!r}"
            )

    @classmethod
    def from_prerequisites(cls, prerequisites: Mapping[str, object]) -> "DockerImage":
        # Golem parses them as DockerPrerequisites(**dict): any other key makes
        # providers refuse the task, so refuse it here first.
        keys = set(prerequisites)
        if keys != {"image", "tag"}:
            raise ValueError(
                f"Docker prerequisites must have exactly the keys image and tag, got {sorted(keys)}"
            )
        image, tag = prerequisites["image"], prerequisites["tag"]
        if not isinstance(image, str) or not isinstance(tag, str):
            raise ValueError("Docker prerequisites: image and tag must be strings")
        return cls(image, tag)

    def to_prerequisites(self) -> dict[str, str]:
        return {"image": self.image, "tag": self.tag}

    @property
    def reference(self) -> str:
        return f"{self.image}:{self.tag}"


@dataclass(frozen=True)
class AppSpec:
    """What the environments need to know about an app.

    `module` is run as `python -m MODULE` (from `cwd`, with `env`, both the
    node's own when None); `image` is what the Docker environments run;
    `warm_start=False` keeps the warm-start environment from forking it.
    """

    name: str
    module: str
    image: DockerImage | None = None
    warm_start: bool = True
    cwd: Path | None = None
    env: Mapping[str, str] | None = field(default=None, hash=False)

    @classmethod
    def from_module(cls, module: str, **kwargs: object) -> "AppSpec":
        return cls(name=module.rsplit(".", 1)[-1], module=module, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_definition(
        cls, definition: "AppDefinitionLike", module: str, **kwargs: object
    ) -> "AppSpec":
        """From an app definition (apputils.app_definition): its name and image."""
        image = None
        if definition.requestor_env in DOCKER_ENV_IDS:
            image = DockerImage.from_prerequisites(definition.requestor_prereq)
        return cls(name=definition.name, module=module, image=image, **kwargs)  # type: ignore[arg-type]


class AppDefinitionLike(Protocol):
    """What `AppSpec.from_definition` reads of an app definition."""

    name: str
    requestor_env: str
    requestor_prereq: dict[str, str]


@dataclass(frozen=True)
class Availability:
    """Whether an environment works on this machine, and if not, why."""

    available: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.available

    @classmethod
    def yes(cls) -> "Availability":
        return cls(True)

    @classmethod
    def no(cls, reason: str) -> "Availability":
        return cls(False, reason)


class NoEnvironment(RuntimeError):
    """No environment can run this app in this role; the message says why."""


class Environment(abc.ABC):
    """A way to start app servers: each `service()` is one `TaskApiService`."""

    # Task env ids (CreateTask's env_id) this environment can run besides its own.
    stands_in_for: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self._availability: Availability | None = None

    @property
    @abc.abstractmethod
    def env_id(self) -> str:
        """This environment's id, e.g. `local` or `docker_cpu`."""

    def env_ids(self) -> frozenset[str]:
        return self.stands_in_for | {self.env_id}

    async def availability(self, *, refresh: bool = False) -> Availability:
        """Checked once (it may run a program), then remembered."""
        if self._availability is None or refresh:
            self._availability = await self._check_availability()
        return self._availability

    async def _check_availability(self) -> Availability:
        return Availability.yes()

    def unsupported_reason(self, app: AppSpec, role: Role) -> str | None:
        """None if this environment can run `app` in `role`, else why not."""
        return None

    @abc.abstractmethod
    def service(
        self, app: AppSpec, work_dir: Path, role: Role, *, log_path: Path | None = None
    ) -> TaskApiService:
        """A service that starts `app`'s server for `role` on `work_dir`.

        Nothing runs until the client calls `start()` (through
        `ProviderAppClient.create` or `RequestorAppClient.create`).
        """

    async def aclose(self) -> None:  # noqa: B027 - most environments keep nothing
        """Release what the environment keeps (e.g. template processes)."""


class ServiceOptions(TypedDict):
    """What every process service of an environment gets from it."""

    log_path: Path | None
    start_timeout: float
    stop_grace: float


class ProcessEnvironment(Environment):
    """An environment whose services are app processes (`ProcessService`).

    Each service logs to a file of its own under `log_dir` (none when None),
    waits `start_timeout` for the app to serve and gives it `stop_grace`
    between SIGTERM and SIGKILL.
    """

    def __init__(self, log_dir: Path | None = None, *,
                 start_timeout: float = START_TIMEOUT, stop_grace: float = STOP_GRACE) -> None:
        super().__init__()
        self.log_dir = log_dir
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace

    def service_options(
        self, app: AppSpec, role: str, log_path: Path | None = None
    ) -> ServiceOptions:
        """`log_path` (by default a new file under `log_dir`) and the two bounds."""
        return ServiceOptions(
            log_path=log_path or default_log_path(self.log_dir, app, role),
            start_timeout=self.start_timeout,
            stop_grace=self.stop_grace,
        )


async def pick_environment(
    environments: Sequence[Environment],
    app: AppSpec,
    role: Role,
    *,
    task_env_id: str | None = None,
) -> Environment:
    """The first environment, in the node's order of preference, that can run it.

    `task_env_id` is the env id a task asks for (CreateTask's env_id); None
    accepts any. Raises `NoEnvironment` with every environment's reason.
    """
    reasons = []
    for env in environments:
        if task_env_id is not None and task_env_id not in env.env_ids():
            reasons.append(f"{env.env_id}: does not run {task_env_id} tasks")
            continue
        available = await env.availability()
        if not available:
            reasons.append(f"{env.env_id}: {available.reason}")
            continue
        unsupported = env.unsupported_reason(app, role)
        if unsupported is not None:
            reasons.append(f"{env.env_id}: {unsupported}")
            continue
        return env
    raise NoEnvironment(
        f"no environment can run {app.name} as {role}: " + ("; ".join(reasons) or "none configured")
    )


_log_seq = itertools.count(1)


def default_log_path(log_dir: Path | None, app: AppSpec, role: str) -> Path | None:
    """`LOG_DIR/APP/ROLE-TIME-N.log`: one file per service, never reused."""
    if log_dir is None:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(log_dir) / app.name / f"{role}-{stamp}-{next(_log_seq):05d}.log"


__all__ = [
    "DOCKER_ENV_IDS",
    "ROLES",
    "AppSpec",
    "Availability",
    "DockerImage",
    "Environment",
    "NoEnvironment",
    "ProcessEnvironment",
    "Role",
    "ServiceOptions",
    "default_log_path",
    "pick_environment",
]
