"""Finding apps: an app's dir, or a name looked up in `./apps/` and the bundled apps.

An app is a Python package runnable as `python -m MODULE` (it has a
`__main__.py`), usually with its definition in `task-api-config.json`. Its
module name is found from the dir: the dir's name, prefixed with each parent
that is a package too (`apps/tutorial` -> `apps.tutorial`, importable from
the dir above `apps`).
"""

import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from golem_task_api.apputils.app_definition.model import AppDefinitionBase, AppDefinitionError
from golem_task_api.node.state.models import AppRef

CONFIG_FILE = "task-api-config.json"


class AppNotFound(LookupError):
    """No app by that name or dir; the message says where it was looked for."""


def bundled_apps_dir() -> Path | None:
    """The dir of the `apps` package installed with golem_task_api, if any."""
    spec = importlib.util.find_spec("apps")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def search_dirs(cwd: Path | None = None) -> list[Path]:
    """Where app names are looked up, first match wins: ./apps, then the bundled apps."""
    dirs = [(cwd or Path.cwd()) / "apps"]
    bundled = bundled_apps_dir()
    if bundled is not None and bundled.resolve() not in [d.resolve() for d in dirs]:
        dirs.append(bundled)
    return dirs


def find_app(name_or_dir: str, *, dirs: Iterable[Path] | None = None) -> AppRef:
    """The app in dir `name_or_dir`, or named so in one of `dirs` (default `search_dirs()`)."""
    given = Path(name_or_dir).expanduser()
    if given.is_dir():
        return app_in(given)
    looked = []
    if "/" not in name_or_dir and name_or_dir not in ("", ".", ".."):
        for base in search_dirs() if dirs is None else dirs:
            candidate = base / name_or_dir
            looked.append(str(candidate))
            if candidate.is_dir() and (candidate / "__main__.py").is_file():
                return app_in(candidate)
    where = f" (looked in {', '.join(looked)})" if looked else ""
    known = ", ".join(ref.key for ref in list_apps(dirs)) or "none"
    raise AppNotFound(f"no app {name_or_dir!r}{where}; apps found: {known}")


def app_in(path: Path) -> AppRef:
    """The app whose package is the dir `path`."""
    path = path.resolve()
    if not (path / "__main__.py").is_file():
        raise AppNotFound(
            f"{path} is not an app: it has no __main__.py (an app runs as python -m PACKAGE)"
        )
    parts = [path.name]
    root = path.parent
    while (root / "__init__.py").is_file():
        parts.insert(0, root.name)
        root = root.parent
    key = path.name
    if not key or key.startswith(".") or not all(p.isidentifier() for p in parts):
        raise AppNotFound(f"{path} cannot be run as a Python module ({'.'.join(parts)!r})")
    return AppRef(
        key=key,
        module=".".join(parts),
        cwd=str(root),
        path=str(path),
        definition=read_definition(path),
    )


def read_definition(path: Path) -> dict[str, Any] | None:
    """The app's `task-api-config.json`, checked; None if it has none."""
    config = path / CONFIG_FILE
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
        return AppDefinitionBase.from_dict(data).to_dict()
    except (OSError, ValueError, TypeError) as exc:
        raise AppDefinitionError(f"{config}: {exc}") from exc


def list_apps(dirs: Iterable[Path] | None = None) -> list[AppRef]:
    """Every app found in `dirs` (default `search_dirs()`), one per name, sorted."""
    found: dict[str, AppRef] = {}
    for base in search_dirs() if dirs is None else dirs:
        if not base.is_dir():
            continue
        for candidate in sorted(base.iterdir()):
            if candidate.name in found or not (candidate / "__main__.py").is_file():
                continue
            try:
                found[candidate.name] = app_in(candidate)
            except (AppNotFound, AppDefinitionError):
                continue
    return [found[key] for key in sorted(found)]


__all__ = [
    "CONFIG_FILE",
    "AppNotFound",
    "app_in",
    "bundled_apps_dir",
    "find_app",
    "list_apps",
    "read_definition",
    "search_dirs",
]
