"""The arguments of every command (argparse only: nothing heavy is imported here)."""

import argparse

from golem_task_api.node.workdir import ENV_VAR

DESCRIPTION = """\
Run Task API apps on this machine: a requestor app splits the task, local
compute nodes run one provider process per subtask, every result is
verified, and the task's outputs land in a folder. State is kept in the
work dir, so an interrupted or crashed node resumes where it stopped.
"""

EPILOG = f"""\
work dir: --work-dir, else ${ENV_VAR}, else the per-user data dir
(~/.local/share/golem-task-api). Exit codes: 0 done, 1 the task failed,
timed out or was aborted, 2 bad input (nothing started), 3 another node
runs on the work dir, 130 interrupted (the task is left to resume).

example:
  golem-task-api run tutorial --params '{{"difficulty": 12, "search_space": 400000,
      "resources": ["data.bin"]}}' --input data.bin --subtasks 4 --output out/tutorial
"""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--work-dir", default=argparse.SUPPRESS, metavar="DIR",
        help=f"the node's work dir (database, app dirs, logs); default ${ENV_VAR} or the"
             " per-user data dir",
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
        help="log what the node does to stderr too (it always goes to WORK_DIR/logs/node.log)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="golem-task-api", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run", parents=[common], help="run a task to its end and deliver its outputs",
        description="Run a task of APP: live progress, then the outputs in --output"
                    " (its path is printed on stdout).",
    )
    run.add_argument("app", metavar="APP",
                     help="the app's dir, or its name (looked up in ./apps and the bundled apps)")
    run.add_argument("--params", required=True, metavar="FILE|JSON",
                     help="the task params: a JSON object, or a file holding one")
    run.add_argument("--input", nargs="+", default=[], metavar="FILE",
                     help="input files, copied into the task's task_inputs/")
    run.add_argument("--subtasks", type=_positive_int, required=True, metavar="N",
                     help="the most subtasks the app may split the task into")
    run.add_argument("--output", required=True, metavar="DIR",
                     help="where the task's outputs are delivered")
    run.add_argument("--providers", type=_positive_int, default=1, metavar="K",
                     help="local compute nodes to run (the machine's cores split between"
                          " them; default 1)")
    run.add_argument("--slots", type=_positive_int, default=None, metavar="N",
                     help="CPU slots of all nodes together (default: the machine's cores)")
    run.add_argument("--timeout", type=_positive_float, default=None, metavar="S",
                     help="the whole task's timeout, in seconds (default: none)")
    run.add_argument("--subtask-timeout", type=_positive_float, default=None, metavar="S",
                     help="each subtask's timeout from its issue to its downloaded result")
    run.add_argument("--events", default=None, metavar="FILE",
                     help="append every event to FILE as JSON lines")
    run.add_argument("--cold", action="store_true",
                     help="start every provider as a new process (no warm start)")
    run.add_argument("--cluster", default=None, metavar="ADDRESS",
                     help="run the subtasks on a Dask cluster: its scheduler's address"
                          " (tcp://host:8786), or local:N for N local worker processes;"
                          " each worker is a compute node (needs the cluster extra)")
    run.add_argument("--plain", action="store_true",
                     help="plain progress lines even on a terminal")

    resume = commands.add_parser(
        "resume", parents=[common], help="continue every unfinished task",
        description="Continue every unfinished task and deliver each into the output dir"
                    " it was started with.",
    )
    resume.add_argument("--providers", type=_positive_int, default=None, metavar="K",
                        help="local compute nodes (default: as many as the tasks had)")
    resume.add_argument("--slots", type=_positive_int, default=None, metavar="N")
    resume.add_argument("--events", default=None, metavar="FILE")
    resume.add_argument("--cold", action="store_true")
    resume.add_argument("--cluster", default=None, metavar="ADDRESS",
                        help="as for run: the Dask cluster to compute on")
    resume.add_argument("--plain", action="store_true")

    status = commands.add_parser(
        "status", parents=[common], help="tasks and their subtasks, from the database",
        description="The tasks (or one task and its subtasks), read from the node's"
                    " database: works while a node runs and after.",
    )
    status.add_argument("task", nargs="?", metavar="TASK",
                        help="a task id, or the start of one")
    status.add_argument("--all", action="store_true",
                        help="with TASK: every subtask, not only the running and failed ones")

    abort = commands.add_parser(
        "abort", parents=[common], help="abort a task",
        description="Abort a task: the running node stops its subtasks, or, with no node"
                    " running, the task is marked aborted and its app told.",
    )
    abort.add_argument("task", metavar="TASK")

    restart = commands.add_parser(
        "restart", parents=[common], help="compute some subtasks of a task again",
        description="Discard subtasks (DiscardSubtasks): the app computes their parts again;"
                    " a completed task then runs again at the next `resume`.",
    )
    restart.add_argument("task", metavar="TASK")
    restart.add_argument("subtasks", nargs="*", metavar="SUBTASK",
                         help="subtask numbers (#3 or 3) or ids; default: every verified one")

    apps = commands.add_parser(
        "apps", parents=[common], help="the apps found, with their definitions",
    )
    apps.add_argument("--json", action="store_true", help="as JSON")

    benchmark = commands.add_parser(
        "benchmark", parents=[common], help="run an app's provider benchmark on the local nodes",
    )
    benchmark.add_argument("app", metavar="APP")
    benchmark.add_argument("--providers", type=_positive_int, default=1, metavar="K")
    return parser


__all__ = ["build_parser"]
