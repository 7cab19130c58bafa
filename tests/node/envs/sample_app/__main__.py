"""`python -m tests.node.envs.sample_app [--work-dir D] [--host H] requestor|provider PORT`.

Follows the warm-start convention: `main(argv)` runs only under the
`__name__` guard. Provider params (all optional) steer Compute:

  signal: a FIFO; a line "entered PID" is written to it when compute starts
  grandchild: start a sleeping child process first (this word in its argv),
      its pid on the signal line
  ignore_term: from now on ignore SIGTERM (the node must SIGKILL it)
  hold: then wait (cancellably) for ever
  write: try to create this file; the result says what happened
  connect: [host, port]: try a TCP connection; the result says what happened
  raise: raise RuntimeError with this message
The result file, `{subtask_id}/result.json`, describes the process.
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from golem_task_api.dirutils import ProviderTaskDir, RequestorTaskDir
from golem_task_api.entrypoint import run_app
from golem_task_api.enums import VerifyResult
from golem_task_api.handlers import ProviderAppHandler, RequestorAppHandler
from golem_task_api.structs import Subtask, Task

HOLD_LIMIT = 60.0
GRANDCHILD = "import sys, time; print('up', flush=True); time.sleep(60)"


def _try(action: Any) -> str:
    try:
        action()
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return "ok"


def _connect(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=2.0):
        pass


def describe() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "sid": os.getsid(0),
        "argv": sys.argv[1:],
        "argv0": os.path.basename(sys.argv[0]),
        "cwd": os.getcwd(),
        "env": os.environ.get("SAMPLE_APP_MARK"),
        "threads_at_compute": threading.active_count(),
        "main_module": getattr(sys.modules["__main__"], "__name__", None),
        "stdin_is_devnull": os.path.samestat(os.fstat(0), os.stat(os.devnull)),
    }


class SampleProvider(ProviderAppHandler):
    async def compute(
        self, task_work_dir: ProviderTaskDir, subtask_id: str, subtask_params: dict[str, Any]
    ) -> Path:
        if "raise" in subtask_params:
            raise RuntimeError(subtask_params["raise"])
        result = describe()
        if "write" in subtask_params:
            result["write"] = _try(lambda: Path(subtask_params["write"]).write_text("escaped"))
        if "connect" in subtask_params:
            host, port = subtask_params["connect"]
            result["connect"] = _try(lambda: _connect(host, int(port)))
        if subtask_params.get("ignore_term"):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        line = f"entered {os.getpid()}"
        if "grandchild" in subtask_params:
            # Running (its command line set, not just forked) once it says so;
            # its stderr is ours, so it holds the app's output pipe open.
            child = subprocess.Popen([
                sys.executable, "-c", GRANDCHILD, str(subtask_params["grandchild"]),
            ], stdout=subprocess.PIPE)
            assert child.stdout is not None
            child.stdout.readline()
            line += f" {child.pid}"
        if "signal" in subtask_params:
            with open(subtask_params["signal"], "w") as fifo:
                fifo.write(line + "\n")
        if subtask_params.get("hold"):
            await asyncio.sleep(HOLD_LIMIT)
        print(f"computed {subtask_id}", flush=True)
        out = task_work_dir / subtask_id / "result.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result))
        return out

    async def run_benchmark(self, work_dir: Path) -> float:
        return 3.5


class SampleRequestor(RequestorAppHandler):
    async def create_task(
        self, task_work_dir: RequestorTaskDir, max_subtasks_count: int, task_params: dict[str, Any]
    ) -> Task:
        return Task(env_id="docker_cpu", prerequisites={"image": "sample", "tag": "1"})

    async def next_subtask(
        self, task_work_dir: RequestorTaskDir, subtask_id: str, opaque_node_id: str
    ) -> Subtask | None:
        return Subtask(params={"n": 1}, resources=[])

    async def verify(
        self, task_work_dir: RequestorTaskDir, subtask_id: str
    ) -> tuple[VerifyResult, str | None]:
        return VerifyResult.SUCCESS, None

    async def discard_subtasks(
        self, task_work_dir: RequestorTaskDir, subtask_ids: list[str]
    ) -> list[str]:
        return subtask_ids

    async def run_benchmark(self, work_dir: Path) -> float:
        return 2.5

    async def has_pending_subtasks(self, task_work_dir: RequestorTaskDir) -> bool:
        return True

    async def abort_task(self, task_work_dir: RequestorTaskDir) -> None:
        pass

    async def abort_subtask(self, task_work_dir: RequestorTaskDir, subtask_id: str) -> None:
        pass


def main(argv: list[str] | None = None) -> None:
    run_app(requestor_handler=SampleRequestor(), provider_handler=SampleProvider(), argv=argv)


if __name__ == "__main__":
    main()
