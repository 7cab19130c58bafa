"""`golem-task-api status` with 10,000 subtasks in node.db.

A real node.db, filled through `NodeDB` (the node's own API): 5 tasks of
2,000 subtasks each (3 completed; 2 running, with subtasks issued, computing,
verifying, failed, rejected and timed out among the verified ones; progress
values set), then, in interleaved rounds whose order rotates:

- **Ours**: the console script `golem-task-api status --work-dir D` (the
  tasks table) and `golem-task-api status TASK --work-dir D` (one running
  task of 2,000 subtasks, its running and failed ones listed), each a whole
  command in a fresh process, as a user runs it; and the in-process part of
  each (imports, then `main([...])`, timed inside that process).
- **Baselines**: `python -c pass` (the start-up every Python command pays),
  and a process that imports sqlite3, opens the same node.db and runs the
  query the tasks table needs (`SELECT task_id, state, count(*) FROM subtasks
  GROUP BY task_id, state`) and prints its rows: the floor for a status
  written in Python over this database.
- **Target**: the whole `status` command < 100 ms (median); the ratio to
  the raw sqlite3 process is printed beside it. `status` must not import
  gRPC (checked here too, and by tests/node/cli/test_run.py).

    python -m bench node_status
    python -m bench.node_status [--rounds N] [--subtasks N] [--tasks N]
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import REPO_ROOT, Summary, child_env, paired_ratios, print_table
from golem_task_api.node.state import (
    AppRef,
    NodeDB,
    Progress,
    SubtaskRow,
    SubtaskState,
    TaskRow,
    TaskState,
)
from golem_task_api.node.workdir import NodeDirs

TARGET_MS = 100.0
DEFAULT_ROUNDS = 20
DEFAULT_SUBTASKS = 10_000
DEFAULT_TASKS = 5
S = SubtaskState
CLI = str(Path(sys.executable).with_name("golem-task-api"))
APP = AppRef(key="tutorial", module="apps.tutorial", cwd=str(REPO_ROOT),
             path=str(REPO_ROOT / "apps" / "tutorial"),
             definition={"name": "golem-task-api/tutorial", "requestor_env": "docker_cpu"})
RAW_QUERY = "SELECT task_id, state, count(*) FROM subtasks GROUP BY task_id, state"

# Timed inside the process: the imports, then the command. stdout goes to
# /dev/null (the terminal's cost is not the command's); the figures to stderr.
IN_PROCESS = """\
import sys, time
t0 = time.perf_counter()
from golem_task_api.node.cli import main
t1 = time.perf_counter()
code = main(sys.argv[1:])
t2 = time.perf_counter()
assert 'grpc' not in sys.modules, 'status imported grpc'
sys.stderr.write(f"{t1 - t0} {t2 - t1}\\n")
sys.exit(code)
"""
RAW = f"""\
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
for row in conn.execute({RAW_QUERY!r}).fetchall():
    print(*row)
conn.close()
"""


def fill(work_dir: Path, subtasks: int, tasks: int) -> list[str]:
    """node.db with `subtasks` subtasks over `tasks` tasks; the task ids."""
    dirs = NodeDirs(work_dir)
    dirs.create()
    db = NodeDB(dirs.db_path)
    ids = []
    per_task = subtasks // tasks
    try:
        for t in range(tasks):
            task_id = f"{t:02d}" + "7e5f" * 7 + f"{t:02d}"
            running = t >= tasks - 2
            db.add_task(TaskRow(
                task_id=task_id, app=APP, params={"difficulty": 12, "search_space": 400_000},
                inputs=[], max_subtasks=per_task, output_dir=str(work_dir / f"out{t}"),
            ))
            db.update_task(task_id, state=TaskState.RUNNING, env_id="docker_cpu",
                           prerequisites={"image": "golem-task-api/tutorial", "tag": "1.0"})
            with db.transaction():
                for n in range(1, per_task + 1):
                    subtask_id = f"{t:04d}{n:06d}" + "ab" * 11
                    db.add_subtask(SubtaskRow(
                        subtask_id=subtask_id, task_id=task_id, number=n,
                        node_id=f"node-{n % 2 + 1}", state=S.ISSUED,
                        params={"start": n * 1000, "end": (n + 1) * 1000},
                        resources=["data.bin"],
                    ))
                    db.update_subtask(subtask_id, state=subtask_state(n, per_task, running),
                                      execution_id=f"e{t}-{n}", reason=reason(n))
            progress = {task_id: Progress(per_task - 60 if running else per_task, per_task,
                                          "Ranges")}
            db.save_progress(progress, {})
            if not running:
                db.update_task(task_id, state=TaskState.COMPLETED)
            else:
                db.exclude_node(task_id, "node-3", "forged a result")
            ids.append(task_id)
    finally:
        db.close()
    return ids


def subtask_state(n: int, per_task: int, running: bool) -> SubtaskState:
    if n % 97 == 0:
        return S.REJECTED
    if n % 89 == 0:
        return S.FAILED
    if n % 211 == 0:
        return S.TIMED_OUT
    if running and n > per_task - 60:
        return (S.COMPUTING, S.VERIFYING, S.DOWNLOADED, S.ISSUED)[n % 4]
    return S.VERIFIED


def reason(n: int) -> str | None:
    if n % 97 == 0:
        return "part 3: the result does not match the expected nonces " * 2
    if n % 89 == 0:
        return "the provider exited with code 1: Traceback (most recent call last): ..."
    return None


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of a whole process; its stderr."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv} exited with {done.returncode}: {done.stderr[-2000:]}")
    return elapsed, done.stderr


def measure(rounds: int, subtasks: int, tasks: int) -> None:
    env = child_env()
    root = Path(tempfile.mkdtemp(prefix="bench-node-status-"))
    try:
        work_dir = root / "work"
        start = time.perf_counter()
        task_ids = fill(work_dir, subtasks, tasks)
        db_path = NodeDirs(work_dir).db_path
        print(f"node.db: {subtasks} subtasks in {tasks} tasks, {db_path.stat().st_size // 1024}"
              f" KiB, filled through NodeDB in {time.perf_counter() - start:.1f} s")
        task = task_ids[-1]
        where = ["--work-dir", str(work_dir)]
        sides: dict[str, list[str]] = {
            "status": [CLI, "status", *where],
            f"status {task[:8]}": [CLI, "status", task[:8], *where],
            "status in-process": [sys.executable, "-c", IN_PROCESS, "status", *where],
            f"status {task[:8]} in-process": [
                sys.executable, "-c", IN_PROCESS, "status", task[:8], *where],
            "baseline: python -c pass": [sys.executable, "-c", "pass"],
            "baseline: raw sqlite3 query": [sys.executable, "-c", RAW, str(db_path)],
        }
        walls: dict[str, list[float]] = {name: [] for name in sides}
        parts: dict[str, tuple[list[float], list[float]]] = {}
        names = list(sides)
        for i in range(-1, rounds):  # one unmeasured round: page cache, bytecode cache
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                wall, stderr = timed(sides[name], env)
                if i < 0:
                    continue
                walls[name].append(wall)
                if name.endswith("in-process"):
                    imports, command = (float(v) for v in stderr.split()[-2:])
                    parts.setdefault(name, ([], []))
                    parts[name][0].append(imports)
                    parts[name][1].append(command)
        report(walls, parts, rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.1f}"


def report(walls: dict[str, list[float]], parts: dict[str, tuple[list[float], list[float]]],
           rounds: int) -> None:
    raw = walls["baseline: raw sqlite3 query"]
    print(f"\nWhole processes, {rounds} interleaved rounds (ms; ratio = median of the ratios"
          " to the raw sqlite3 process of the same round)")
    rows = []
    for name, values in walls.items():
        s = Summary.of(values)
        ratio = Summary.of(paired_ratios(values, raw))
        target = ""
        if name == "status":
            target = f"< {TARGET_MS:.0f} ms " + (
                "ok" if 1000 * s.median < TARGET_MS else "ABOVE TARGET")
        rows.append([name, ms(s.median), f"{ms(s.p10)}..{ms(s.p90)}", f"{ratio.median:.2f}x",
                     target])
    print_table(["command", "median", "p10..p90", "vs raw sqlite3", "target"], rows)
    print("\nIn-process (ms, medians): importing the CLI, then main([...])")
    rows = []
    for name, (imports, commands) in parts.items():
        rows.append([name, ms(statistics.median(imports)), ms(statistics.median(commands))])
    print_table(["command", "imports", "command"], rows)
    status = statistics.median(walls["status"])
    floor = statistics.median(walls["baseline: python -c pass"])
    raw_median = statistics.median(raw)
    print(f"\nstatus: {ms(status)} ms, of which {ms(status - floor)} ms beyond the bare"
          f" interpreter start ({ms(floor)} ms); raw sqlite3 query process {ms(raw_median)}"
          f" ms: ratio {status / raw_median:.2f}x")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.node_status",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help=f"interleaved rounds (default {DEFAULT_ROUNDS})")
    parser.add_argument("--subtasks", type=int, default=DEFAULT_SUBTASKS,
                        help=f"subtasks in node.db (default {DEFAULT_SUBTASKS})")
    parser.add_argument("--tasks", type=int, default=DEFAULT_TASKS,
                        help=f"tasks they are spread over (default {DEFAULT_TASKS})")
    args = parser.parse_args([] if argv is None else argv)
    if args.tasks < 3:
        parser.error("--tasks must be at least 3 (2 of them running)")
    if not Path(CLI).is_file():
        sys.exit(f"no console script at {CLI}: pip install -e . first")
    measure(args.rounds, args.subtasks, args.tasks)


if __name__ == "__main__":
    main(sys.argv[1:])
