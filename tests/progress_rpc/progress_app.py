"""A provider app for the progress tests, steered by its subtask params.

Run as a process: `python -m tests.progress_rpc.progress_app [--work-dir D]
[--host H] provider PORT`; in-process tests use `ProgressProvider` directly
and can look at its attributes (InlineTaskApiService shares handlers).

Params (all optional; applied in this order):
  entered: a file to create as soon as compute starts
  report: [done, total] reported with report() (unit "Items") at the start
  values: a list of report() argument lists, reported one after the other
      on the event loop (a burst: no stream can run in between)
  shell: a /bin/sh script run as a child process (the app's environment,
      so with GOLEM_PROGRESS_FILE); a non-zero exit raises
  reports: N reports of i/N (unit "Items", i = 1..N) from a worker thread
      (Executor.run); its RSS before and after goes into the result
  done_file: created when those reports are done
  spin: report a growing count from a worker thread until the server shuts
      down; then create the file `spin` names
  hold: wait (cancellably) until this file exists
  raise: raise RuntimeError with this message
  invalid: raise InvalidArgument with this message
otherwise compute writes {subtask_id}/result.json and returns its path.
"""

import asyncio
import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from golem_task_api import progress
from golem_task_api.dirutils import ProviderTaskDir
from golem_task_api.entrypoint import run_app
from golem_task_api.errors import InvalidArgument
from golem_task_api.handlers import ProviderAppHandler
from golem_task_api.threading import Executor

HOLD_LIMIT = 60.0


def rss_bytes() -> int:
    """This process's resident set size now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _report_many(count: int) -> dict[str, int]:
    before = rss_bytes()
    for i in range(1, count + 1):
        progress.report(i, count, "Items")
    return {"rss_before": before, "rss_after": rss_bytes()}


def _spin(stopped_file: str) -> int:
    done = 0
    while not Executor.is_shutting_down():
        done += 1
        progress.report(done, unit="Items")
        if done % 1000 == 0:
            time.sleep(0.001)  # leave the GIL to the server now and then
    Path(stopped_file).write_text(str(done))
    return done


def _kill_tree(pid: int) -> None:
    """Kill a child process and all of its descendants."""
    with contextlib.suppress(psutil.Error):
        parent = psutil.Process(pid)
        for process in [*parent.children(recursive=True), parent]:
            with contextlib.suppress(psutil.Error):
                process.kill()


async def _hold_until(path: str, limit: float = HOLD_LIMIT) -> None:
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        await asyncio.sleep(0.005)


class ProgressProvider(ProviderAppHandler):
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.cancelled = threading.Event()
        self.progress_files: list[str | None] = []

    async def compute(
        self, task_work_dir: ProviderTaskDir, subtask_id: str, subtask_params: dict[str, Any]
    ) -> Path:
        params = subtask_params
        self.progress_files.append(os.environ.get(progress.GOLEM_PROGRESS_FILE))
        self.entered.set()
        if params.get("entered"):
            Path(params["entered"]).write_text(str(os.getpid()))
        result: dict[str, Any] = {"subtask_id": subtask_id}
        try:
            if "report" in params:
                done, total = params["report"]
                progress.report(done, total, "Items")
            for args in params.get("values", []):
                progress.report(*args)
            if "shell" in params:
                child = await asyncio.create_subprocess_exec(
                    "/bin/sh", "-c", params["shell"], stdin=asyncio.subprocess.DEVNULL
                )
                try:
                    code = await child.wait()
                finally:
                    if child.returncode is None:  # cancelled: leave nothing behind
                        _kill_tree(child.pid)
                        await asyncio.shield(child.wait())
                if code:
                    raise RuntimeError(f"the script exited with code {code}")
            if "reports" in params:
                result["memory"] = await Executor.run(_report_many, params["reports"])
                if params.get("done_file"):
                    Path(params["done_file"]).write_text("done")
            if "spin" in params:
                result["spun"] = await Executor.run(_spin, params["spin"])
            if "hold" in params:
                await _hold_until(params["hold"])
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        if "raise" in params:
            raise RuntimeError(params["raise"])
        if "invalid" in params:
            raise InvalidArgument(params["invalid"])
        output = Path(subtask_id) / "result.json"
        (task_work_dir / output).parent.mkdir(parents=True, exist_ok=True)
        (task_work_dir / output).write_text(json.dumps(result))
        return output

    async def run_benchmark(self, work_dir: Path) -> float:
        return 1.0


def main() -> None:
    run_app(provider_handler=ProgressProvider())


if __name__ == "__main__":
    main()
