"""The provider app of the progress benchmarks, built on the public API.

    python -m bench.apps.progress_app [--poll] [--profile FILE] [run_app arguments...]

Compute params:
  writer: a spec for `bench.apps.progress_writer`, run as a child process
      (it inherits GOLEM_PROGRESS_FILE) and waited for;
  stream: {"seconds": s, "thread": bool, "pause": s or null}: report with a
      new message each time ("event i"), so that every report must be sent,
      for s seconds: from the event loop, yielding after each report (thread
      false), or from a worker thread (Executor.run), in a tight loop (pause
      null) or sleeping `pause` seconds after each report (0: just letting
      the event loop have the GIL);
  sleep: s: await asyncio.sleep(s) first (a computation that lasts, and
      reports nothing).
The result file holds {"reports": how many reports were made}.

`--poll`: the progress-file watcher polls (every 50 ms) instead of using
inotify: patched in, in this process only, by hiding inotify
(`golem_task_api.progress._inotify`) — no environment variable or server
option chooses it. `--profile FILE`: cProfile the server from start to
stop, stats dumped to FILE.
"""
# ruff: noqa: PLC0415 - the framework is imported only after the patches

import asyncio
import cProfile
import json
import sys
import time
from pathlib import Path
from typing import Any


def main() -> None:
    argv = sys.argv[1:]
    if "--poll" in argv:
        argv.remove("--poll")
        from golem_task_api.progress import _inotify

        _inotify._FUNCTIONS = None  # available() is False: the watcher polls
    profile_path = None
    if "--profile" in argv:
        at = argv.index("--profile")
        profile_path = argv[at + 1]
        del argv[at : at + 2]

    from golem_task_api import progress
    from golem_task_api.dirutils import ProviderTaskDir
    from golem_task_api.entrypoint import run_app
    from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler
    from golem_task_api.threading import Executor

    def report_for(seconds: float, pause: float | None) -> int:
        deadline = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < deadline:
            i += 1
            progress.report(i, message=f"event {i}")
            if pause is not None:
                time.sleep(pause)  # lets the event loop have the GIL
        return i

    class BenchProvider(ProviderAppHandler):
        async def compute(
            self, task_work_dir: ProviderTaskDir, subtask_id: str, subtask_params: dict[str, Any]
        ) -> Path:
            reports = 0
            if "sleep" in subtask_params:
                await asyncio.sleep(subtask_params["sleep"])
            if "writer" in subtask_params:
                child = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.apps.progress_writer",
                    json.dumps(subtask_params["writer"]),
                )
                if await child.wait():
                    raise RuntimeError("the writer failed")
                reports = subtask_params["writer"]["count"]
            if "stream" in subtask_params:
                spec = subtask_params["stream"]
                if spec.get("thread"):
                    reports = await Executor.run(
                        report_for, spec["seconds"], spec.get("pause")
                    ) or 0
                else:
                    deadline = time.perf_counter() + spec["seconds"]
                    while time.perf_counter() < deadline:
                        reports += 1
                        progress.report(reports, message=f"event {reports}")
                        await asyncio.sleep(0)
            path = task_work_dir / f"{subtask_id}.json"
            path.write_text(json.dumps({"reports": reports}))
            return path

        async def run_benchmark(self, work_dir: Path) -> float:
            return 1.0

    class Profiled(AppLifecycleHandler):
        def __init__(self) -> None:
            super().__init__()
            self.profiler = cProfile.Profile()

        async def on_before_startup(self) -> None:
            await super().on_before_startup()
            self.profiler.enable()

        async def on_after_shutdown(self) -> None:
            self.profiler.disable()
            self.profiler.dump_stats(profile_path)
            await super().on_after_shutdown()

    run_app(
        provider_handler=BenchProvider(),
        provider_lifecycle_handler=Profiled() if profile_path else None,
        argv=argv,
    )


if __name__ == "__main__":
    main()
