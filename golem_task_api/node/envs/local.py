"""The embedded default: each app server is a plain local process."""

from pathlib import Path

from golem_task_api.client.local_process import LocalProcessService
from golem_task_api.node.envs.base import DOCKER_ENV_IDS, AppSpec, ProcessEnvironment, Role

LOOPBACK = "127.0.0.1"


class LocalEnvironment(ProcessEnvironment):
    """`python -m APP --work-dir D --host 127.0.0.1 ROLE 0`, no isolation.

    Output goes to a file per service under `log_dir` (the node's work dir),
    and its last lines stay in memory for error messages.
    """

    stands_in_for = DOCKER_ENV_IDS

    @property
    def env_id(self) -> str:
        return "local"

    def service(
        self, app: AppSpec, work_dir: Path, role: Role, *, log_path: Path | None = None
    ) -> LocalProcessService:
        return LocalProcessService(
            app.module, work_dir, host=LOOPBACK, env=app.env, cwd=app.cwd,
            **self.service_options(app, role, log_path),
        )


__all__ = ["LOOPBACK", "LocalEnvironment"]
