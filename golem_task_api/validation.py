"""The one place where untrusted ids, paths and params are checked.

Every id that becomes a path component goes through `check_id`, every path
that must stay inside a dir through `resolve_inside`, every params JSON
through `parse_params`; all raise `InvalidArgument` with a message that says
what was wrong.
"""

import json
import os
from pathlib import Path
from typing import Any

from golem_task_api.errors import InvalidArgument

# A path component: most filesystems allow 255 bytes.
MAX_ID_BYTES = 255


def check_id(kind: str, value: str) -> str:
    """Return `value` if it is a safe single path component, else raise."""
    if (
        not value
        or value in (".", "..")
        or "/" in value
        or "\\" in value
        or "\x00" in value
        # 63 chars of at most 4 UTF-8 bytes each always fit; encode only above.
        or (len(value) > 63 and len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES)
    ):
        raise InvalidArgument(_bad_id_message(kind, value))
    return value


def _bad_id_message(kind: str, value: str) -> str:
    if not value:
        return f"{kind} is empty"
    shown = value if len(value) <= 80 else value[:77] + "..."
    return (
        f"{kind} {shown!r} is not usable as a directory name: it must be 1-{MAX_ID_BYTES}"
        " bytes, not '.' or '..', without '/', '\\' or NUL"
    )


def parse_params(kind: str, text: str) -> dict[str, Any]:
    """Decode a params JSON that must be an object."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(f"{kind} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(
            f"{kind} must be a JSON object, got {type(value).__name__}: {text[:80]!r}"
        )
    return value


def resolve_inside(base: Path, path: str | os.PathLike[str], kind: str = "path") -> Path:
    """`path` (relative to `base`, or absolute) resolved, if it stays inside `base`.

    Symlinks are followed, so a link that points out of `base` is refused too.
    """
    text = os.fspath(path)
    if not text or "\x00" in text:
        raise InvalidArgument(f"{kind} {text!r} is empty or contains NUL")
    root = base.resolve()
    resolved = (root / text).resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise InvalidArgument(f"{kind} {text!r} leaves its directory {base}")
    return resolved


__all__ = ["MAX_ID_BYTES", "check_id", "parse_params", "resolve_inside"]
