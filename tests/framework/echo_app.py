"""A small app for the framework's tests, with knobs to misbehave.

Run as a process: `python -m tests.framework.echo_app [--work-dir D] requestor|provider PORT`.
In-process tests use the handler classes directly and steer them through
their attributes; process tests steer them through the params.

Requestor: a task of `max_subtasks_count` subtasks; subtask i gets params
{"index": i} and one resource file; Verify copies the result into
task_outputs. All state is in `echo_state.json` in the task dir, so a
restarted server carries on.

Provider params (all optional):
  entered: a file to create as soon as compute starts
  hold: wait (cancellably) until this file exists
  grandchild: start a sleeping child process, write its pid to this file, hold
    (keep_output: the child inherits the app's stdout and stderr)
  orphan: start such a child (with the app's stdout), then compute as usual
  output: return this path as it is (no file is written)
  block_thread: create this file, then block in Executor.run (uninterruptible)
  print: write this many characters to stdout, without a newline
  raise: raise RuntimeError with this message
  otherwise: write {subtask_id}/result.txt and return its relative path.
"""

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from golem_task_api.dirutils import ProviderTaskDir, RequestorTaskDir
from golem_task_api.entrypoint import run_app
from golem_task_api.enums import VerifyResult
from golem_task_api.envs import create_docker_cpu_task
from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler, RequestorAppHandler
from golem_task_api.structs import Infrastructure, Subtask, Task
from golem_task_api.threading import Executor

STATE_FILE = "echo_state.json"
BENCHMARK_SCORE = 42.5
PROVIDER_BENCHMARK_SCORE = 7.25
HOLD_LIMIT = 60.0


def _wait_for_file(path: str, limit: float = HOLD_LIMIT) -> bool:
    """Block (in a worker thread) until `path` exists; False after `limit` s."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


async def _hold_until(path: str, limit: float = HOLD_LIMIT) -> None:
    """Wait (cancellably) until `path` exists."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        await asyncio.sleep(0.005)


def _touch(path: str | None, text: str = "") -> None:
    if path:
        Path(path).write_text(text)


def _start_child(pid_file: str, keep_output: bool) -> None:
    """A sleeping child process; its pid goes to `pid_file` (written atomically)."""
    output = None if keep_output else subprocess.DEVNULL
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
    )
    _touch(pid_file + ".tmp", str(child.pid))
    os.replace(pid_file + ".tmp", pid_file)


class EchoRequestor(RequestorAppHandler):
    def __init__(self) -> None:
        # Shared with the test that built it (InlineTaskApiService shares handlers).
        self.calls: list[tuple[str, str]] = []
        self.fail: dict[str, BaseException] = {}
        self.block: dict[str, threading.Event] = {}
        self.entered: defaultdict[str, threading.Event] = defaultdict(threading.Event)
        self.next_verdict: tuple[VerifyResult, str | None] | None = None
        self.next_resources: list[str] | None = None
        self.next_task: Any = None
        self.next_params: Any = None

    async def _enter(self, method: str, key: str) -> None:
        self.calls.append((method, key))
        self.entered[method].set()
        gate = self.block.get(method)
        if gate is not None:
            await Executor.run(gate.wait, HOLD_LIMIT)
        exc = self.fail.get(method)
        if exc is not None:
            raise exc

    @staticmethod
    def _load(task_dir: Path) -> dict[str, Any]:
        return json.loads((task_dir / STATE_FILE).read_text())

    @staticmethod
    def _save(task_dir: Path, state: dict[str, Any]) -> None:
        tmp = task_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(task_dir / STATE_FILE)

    async def create_task(
        self, task_work_dir: RequestorTaskDir, max_subtasks_count: int, task_params: dict
    ) -> Task:
        await self._enter("create_task", task_work_dir.name)
        _touch(task_params.get("entered"))
        if "journal" in task_params:
            # a file the app keeps open (buffered, never flushed by the app)
            self.journal = open(task_params["journal"], "a")  # noqa: SIM115
            self.journal.write(f"created {task_work_dir.name}\n")
        hold = task_params.get("hold")
        if hold:
            await Executor.run(_wait_for_file, hold)
        if "raise" in task_params:
            raise RuntimeError(task_params["raise"])
        self._save(task_work_dir, {
            "max": max_subtasks_count,
            "params": task_params,
            "free": list(range(max_subtasks_count)),
            "issued": {},
            "verified": [],
        })
        if self.next_task is not None:
            return self.next_task  # type: ignore[no-any-return]
        return create_docker_cpu_task("golemfactory/echo", "1.0", Infrastructure(128.0))

    async def next_subtask(
        self, task_work_dir: RequestorTaskDir, subtask_id: str, opaque_node_id: str
    ) -> Subtask | None:
        await self._enter("next_subtask", subtask_id)
        state = self._load(task_work_dir)
        if not state["free"]:
            return None
        index = state["free"].pop(0)
        state["issued"][subtask_id] = index
        self._save(task_work_dir, state)
        if self.next_resources is not None:
            return Subtask(params={"index": index}, resources=self.next_resources)
        name = f"part_{index}.in"
        (task_work_dir.subtask_inputs_dir / name).write_text(str(index))
        params = self.next_params if self.next_params is not None else {"index": index}
        return Subtask(params=params, resources=[name])

    async def verify(
        self, task_work_dir: RequestorTaskDir, subtask_id: str
    ) -> tuple[VerifyResult, str | None]:
        await self._enter("verify", subtask_id)
        state = self._load(task_work_dir)
        index = state["issued"][subtask_id]
        if self.next_verdict is not None:
            verdict, self.next_verdict = self.next_verdict, None
            return verdict
        results = sorted(task_work_dir.subtask_outputs_dir(subtask_id).glob("*"))
        if len(results) != 1:
            state["free"].append(index)
            self._save(task_work_dir, state)
            return VerifyResult.FAILURE, f"expected one result file, got {len(results)}"
        target = task_work_dir.task_outputs_dir / f"result_{index}.txt"
        target.write_bytes(results[0].read_bytes())
        state["verified"].append(subtask_id)
        self._save(task_work_dir, state)
        return VerifyResult.SUCCESS, None

    async def discard_subtasks(
        self, task_work_dir: RequestorTaskDir, subtask_ids: list[str]
    ) -> list[str]:
        await self._enter("discard_subtasks", ",".join(subtask_ids))
        state = self._load(task_work_dir)
        discarded = []
        for subtask_id in subtask_ids:
            if subtask_id in state["verified"]:
                index = state["issued"][subtask_id]
                (task_work_dir.task_outputs_dir / f"result_{index}.txt").unlink()
                state["verified"].remove(subtask_id)
                state["free"].append(index)
                discarded.append(subtask_id)
        self._save(task_work_dir, state)
        return discarded

    async def run_benchmark(self, work_dir: Path) -> float:
        await self._enter("run_benchmark", str(work_dir))
        return BENCHMARK_SCORE

    async def has_pending_subtasks(self, task_work_dir: RequestorTaskDir) -> bool:
        await self._enter("has_pending_subtasks", task_work_dir.name)
        return bool(self._load(task_work_dir)["free"])

    async def abort_task(self, task_work_dir: RequestorTaskDir) -> None:
        await self._enter("abort_task", task_work_dir.name)

    async def abort_subtask(self, task_work_dir: RequestorTaskDir, subtask_id: str) -> None:
        await self._enter("abort_subtask", subtask_id)
        state = self._load(task_work_dir)
        if subtask_id in state["issued"] and subtask_id not in state["verified"]:
            state["free"].append(state["issued"][subtask_id])
            self._save(task_work_dir, state)


class EchoProvider(ProviderAppHandler):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.entered = threading.Event()
        self.cancelled = threading.Event()

    async def compute(
        self, task_work_dir: ProviderTaskDir, subtask_id: str, subtask_params: dict
    ) -> Path:
        self.calls.append(("compute", subtask_id))
        self.entered.set()
        params = subtask_params
        _touch(params.get("entered"), str(os.getpid()))
        if "journal" in params:
            # a file the app keeps open (buffered, never flushed by the app)
            self.journal = open(params["journal"], "a")  # noqa: SIM115
            self.journal.write(f"computed {subtask_id}\n")
        try:
            if "orphan" in params:
                # a child that outlives the computation, holding the app's stdout
                _start_child(params["orphan"], keep_output=True)
            if "grandchild" in params:
                _start_child(params["grandchild"], keep_output=params.get("keep_output", False))
                await asyncio.Event().wait()  # until cancelled
            if "hold" in params:
                await _hold_until(params["hold"])
            if "block_thread" in params:
                # blocking work that cannot be interrupted (a C library call)
                _touch(params["block_thread"])
                await Executor.run(time.sleep, HOLD_LIMIT * 10)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        if "print" in params:
            # output without a newline, as progress bars with \r write it
            sys.stdout.write("\r" + "#" * int(params["print"]))
            sys.stdout.flush()
        if "raise" in params:
            raise RuntimeError(params["raise"])
        if "output" in params:
            return Path(params["output"])
        result = task_work_dir / subtask_id / "result.txt"
        result.parent.mkdir(parents=True, exist_ok=True)
        result.write_text(json.dumps({"subtask_id": subtask_id, "params": params}))
        return result.relative_to(task_work_dir)

    async def run_benchmark(self, work_dir: Path) -> float:
        self.calls.append(("run_benchmark", str(work_dir)))
        return PROVIDER_BENCHMARK_SCORE


class SlowStop(AppLifecycleHandler):
    """Stops only after ECHO_APP_STOP_DELAY seconds: an app that does not stop in time."""

    async def on_before_shutdown(self) -> None:
        await super().on_before_shutdown()
        await asyncio.sleep(float(os.environ.get("ECHO_APP_STOP_DELAY", "0")))


if __name__ == "__main__":
    run_app(
        requestor_handler=EchoRequestor(),
        provider_handler=EchoProvider(),
        requestor_lifecycle_handler=SlowStop(),
        provider_lifecycle_handler=SlowStop(),
        default_work_dir=Path.cwd(),
    )
