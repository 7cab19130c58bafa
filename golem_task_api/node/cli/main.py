"""The command line: parse, pick the command, map its outcome to an exit code."""

import importlib
import sys
from collections.abc import Sequence

from golem_task_api.node.cli.common import EXIT_USAGE, UsageError
from golem_task_api.node.cli.parser import build_parser

# command -> module of golem_task_api.node.cli with `command(args) -> int`
COMMANDS = {
    "run": "run",
    "resume": "resume",
    "status": "status",
    "abort": "abort",
    "restart": "restart",
    "apps": "apps",
    "benchmark": "benchmark",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    module = importlib.import_module(f"golem_task_api.node.cli.{COMMANDS[args.command]}")
    try:
        code: int = module.command(args)
    except UsageError as exc:
        print(f"golem-task-api {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return code


__all__ = ["COMMANDS", "main"]
