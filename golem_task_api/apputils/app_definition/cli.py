"""`python -m golem_task_api.apputils.app_definition CONFIG_JSON --out DIR [...]`."""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from golem_task_api.apputils.app_definition.build import (
    CONFIG_FILE_NAME,
    build_app_definition,
)
from golem_task_api.apputils.app_definition.model import AppDefinitionError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m golem_task_api.apputils.app_definition",
        description="Write an app definition file for Golem nodes; print its path.",
    )
    parser.add_argument(
        "config", type=Path, help=f"JSON config with definition fields (e.g. {CONFIG_FILE_NAME})"
    )
    parser.add_argument("--out", type=Path, default=Path("dist"), help="output dir (default: dist)")
    for option in ("name", "version", "description", "author", "license", "requestor-env",
                   "market-strategy"):
        parser.add_argument(f"--{option}", help="overrides the config's value")
    parser.add_argument("--max-benchmark-score", type=float, help="overrides the config's value")
    parser.add_argument("--image", help="Docker image of the requestor prerequisites")
    parser.add_argument("--tag", help="Docker image tag of the requestor prerequisites")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides: dict[str, Any] = {
        key: value for key, value in vars(args).items() if key not in ("config", "out")
    }
    try:
        path = build_app_definition(args.config, args.out, **overrides)
    except (AppDefinitionError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


__all__ = ["main"]
