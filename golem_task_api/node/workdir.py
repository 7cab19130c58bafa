"""The node's work dir: where it is, and what lives in it.

    node.db              the task manager's state (SQLite, WAL)
    node.lock            held (flock) by the node process that runs tasks
    apps/<app>/          each app's requestor work dir (a RequestorDir)
    providers/<node>/    each local compute node's work dir and store
    staging/             files on their way to a compute node
    run/                 process records of requestor apps (for crash cleanup)
    logs/                the apps' output, one file per process

Imported by `golem-task-api status`: standard library only.
"""

import os
import sys
from pathlib import Path
from typing import NamedTuple

ENV_VAR = "GOLEM_TASK_API_WORK_DIR"
APP_NAME = "golem-task-api"


def default_work_dir() -> Path:
    """The per-user data dir: $XDG_DATA_HOME (or ~/.local/share)/golem-task-api."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP_NAME
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / APP_NAME


def resolve_work_dir(given: str | os.PathLike[str] | None = None) -> Path:
    """`given`, else $GOLEM_TASK_API_WORK_DIR, else the per-user default; absolute."""
    if given is None or str(given) == "":
        given = os.environ.get(ENV_VAR) or default_work_dir()
    return Path(given).expanduser().resolve()


class NodeDirs(NamedTuple):  # not a dataclass: see state/models.py
    root: Path

    @property
    def db_path(self) -> Path:
        return self.root / "node.db"

    @property
    def lock_path(self) -> Path:
        return self.root / "node.lock"

    @property
    def apps_dir(self) -> Path:
        return self.root / "apps"

    @property
    def providers_dir(self) -> Path:
        return self.root / "providers"

    @property
    def staging_dir(self) -> Path:
        return self.root / "staging"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def app_dir(self, app_key: str) -> Path:
        return self.apps_dir / app_key

    def provider_dir(self, node_id: str) -> Path:
        return self.providers_dir / node_id

    def create(self) -> None:
        for path in (self.root, self.apps_dir, self.providers_dir, self.staging_dir,
                     self.run_dir, self.logs_dir):
            path.mkdir(parents=True, exist_ok=True)


__all__ = ["APP_NAME", "ENV_VAR", "NodeDirs", "default_work_dir", "resolve_work_dir"]
