"""The embedded default: each app server is a plain local process."""

from pathlib import Path

from golem_task_api.client.local_process import START_TIMEOUT, STOP_GRACE, LocalProcessService
from golem_task_api.node.envs.base import (
    DOCKER_ENV_IDS,
    AppSpec,
    Environment,
    Role,
    default_log_path,
)

LOOPBACK = "127.0.0.1"


class LocalEnvironment(Environment):
    """`python -m APP --work-dir D --host 127.0.0.1 ROLE 0`, no isolation.

    Output goes to a file per service under `log_dir` (the node's work dir),
    and its last lines stay in memory for error messages.
    """

    stands_in_for = DOCKER_ENV_IDS

    def __init__(
        self,
        log_dir: Path | None = None,
        *,
        start_timeout: float = START_TIMEOUT,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        super().__init__()
        self.log_dir = log_dir
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace

    @property
    def env_id(self) -> str:
        return "local"

    def service(
        self, app: AppSpec, work_dir: Path, role: Role, *, log_path: Path | None = None
    ) -> LocalProcessService:
        return LocalProcessService(
            app.module,
            work_dir,
            host=LOOPBACK,
            env=app.env,
            cwd=app.cwd,
            log_path=log_path or default_log_path(self.log_dir, app, role),
            start_timeout=self.start_timeout,
            stop_grace=self.stop_grace,
        )


__all__ = ["LOOPBACK", "LocalEnvironment"]
