"""A whole node in the test process (real requestor and provider processes, real
SQLite), the journal test app, its gates, and a check that nothing is left running."""

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from golem_task_api.node.app_catalog import app_in, find_app
from golem_task_api.node.local_node import LocalNode, LocalNodeConfig
from golem_task_api.node.requestor.context import ManagerConfig
from golem_task_api.node.requestor.events import NodeEvent
from golem_task_api.node.state import AppRef, TaskRow

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
JOURNAL_APP_DIR = HERE / "journal_app"
# Every wait that should end much sooner is bounded by this: a test fails, never hangs.
BOUND = 30.0
PYC_CACHE = Path(tempfile.gettempdir()) / "golem-task-api-test-pyc"


def app_environment(gates: Path) -> dict[str, str]:
    """The node's (and so the apps') environment: a bytecode cache kept between runs
    (this sandbox sets PYTHONDONTWRITEBYTECODE), the gate dir of the journal app."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYC_CACHE)
    env["JOURNAL_GATES"] = str(gates)
    env.pop("JOURNAL_FORGE", None)
    pythonpath = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + pythonpath if pythonpath else "")
    return env


class Gates:
    """The journal app's gate files: hold its computes or its Verify calls."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def hold(self, what: str) -> None:
        (self.path / f"hold-{what}").write_text("")

    def release(self, what: str) -> None:
        (self.path / f"hold-{what}").unlink(missing_ok=True)

    def markers(self, kind: str) -> dict[str, int]:
        """subtask id -> pid of `computing-*` or `verifying-*` markers."""
        found = {}
        for path in self.path.glob(f"{kind}-*"):
            text = path.read_text().strip()
            if text.isdigit():
                found[path.name.removeprefix(f"{kind}-")] = int(text)
        return found

    def clear(self, kind: str) -> None:
        for path in self.path.glob(f"{kind}-*"):
            path.unlink(missing_ok=True)

    async def wait(self, kind: str, count: int = 1, timeout: float = BOUND) -> dict[str, int]:
        return await wait_for(lambda: (m := self.markers(kind)) and len(m) >= count and m,
                              timeout, f"{count} {kind} marker(s)")

    def wait_sync(self, kind: str, count: int = 1, timeout: float = BOUND) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.markers(kind)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"no {count} {kind} marker(s) within {timeout} s")


async def wait_for(check: Callable[[], Any], timeout: float = BOUND, what: str = "") -> Any:
    """Poll `check` until it gives something true (with a deadline, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


class Recorder:
    """Every event of a node, and waits on them."""

    def __init__(self) -> None:
        self.events: list[NodeEvent] = []

    def __call__(self, event: NodeEvent) -> None:
        self.events.append(event)

    def named(self, name: str) -> list[NodeEvent]:
        return [e for e in self.events if e.name == name]

    async def wait(self, name: str, count: int = 1, timeout: float = BOUND) -> list[NodeEvent]:
        return await wait_for(lambda: len(self.named(name)) >= count and self.named(name),
                              timeout, f"{count} {name} event(s)")


def processes_mentioning(
    text: str, since: float, owner: Path | None = None
) -> list[psutil.Process]:
    """Processes started since `since` whose command line holds `text`; with
    `owner`, not those whose journal gates are another test's (a test run or a
    bench going on beside this one must not be taken for a leftover)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "create_time", "status"]):
        try:
            info = process.info
            if info["status"] == psutil.STATUS_ZOMBIE or info["create_time"] < since - 1:
                continue
            named = any(text in part for part in info["cmdline"] or ())
            if process.pid == os.getpid() or not named:
                continue
            if owner is not None:
                gates = process.environ().get("JOURNAL_GATES")
                if gates is not None and not Path(gates).is_relative_to(owner):
                    continue
            found.append(process)
        except psutil.Error:
            continue
    return found


def assert_nothing_left(
    markers: list[str], since: float, timeout: float = 10.0, owner: Path | None = None
) -> None:
    """No process started by the test (see `processes_mentioning`) that names one
    of `markers` runs any more."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for m in markers for p in processes_mentioning(m, since, owner)]
        if not left:
            return
        if time.monotonic() > deadline:
            described = [f"{p.pid}: {' '.join(p.cmdline())[:200]}" for p in left
                         if p.is_running()]
            for process in left:
                with contextlib.suppress(psutil.Error):
                    process.kill()
            if described:
                raise AssertionError(f"processes left running: {described}")
            return
        time.sleep(0.05)


@pytest.fixture
def gates(tmp_path: Path) -> Gates:
    return Gates(tmp_path / "gates")


@pytest.fixture
def env(gates: Gates, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test process's environment, which the in-process node hands to its apps."""
    environment = app_environment(gates.path)
    for key in list(os.environ):
        if key not in environment:
            monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    return environment


@pytest.fixture
def journal_app() -> AppRef:
    return app_in(JOURNAL_APP_DIR)


@pytest.fixture
def tutorial_app() -> AppRef:
    return find_app(str(REPO_ROOT / "apps" / "tutorial"))


@pytest.fixture
def no_leftovers(tmp_path: Path) -> Iterator[None]:
    since = time.time()
    yield
    assert_nothing_left([str(tmp_path), "tests.node.taskmanager.journal_app"], since,
                        owner=tmp_path)


NodeFactory = Callable[..., Any]


@pytest.fixture
async def make_node(
    tmp_path: Path, env: dict[str, str], no_leftovers: None
) -> AsyncIterator[Callable[..., Any]]:
    """Started local nodes on tmp_path/work (stopped at the end); each with a Recorder."""
    started: list[LocalNode] = []

    async def make(
        providers: int = 1, slots: int | None = None, *, warm_start: bool = True,
        manager: ManagerConfig | None = None,
    ) -> tuple[LocalNode, Recorder]:
        config = LocalNodeConfig(
            providers=providers, slots=slots or providers, warm_start=warm_start,
            manager=manager or ManagerConfig(progress_interval=0.05),
            provider_update_interval=0.05,
        )
        node = LocalNode(tmp_path / "work", config)
        recorder = Recorder()
        node.events.subscribe(recorder)
        await node.start()
        started.append(node)
        return node, recorder

    yield make
    for node in reversed(started):
        await node.stop()


def input_file(tmp_path: Path, data: bytes = b"journal test data") -> Path:
    path = tmp_path / "input.txt"
    path.write_bytes(data)
    return path


__all__ = [
    "BOUND",
    "JOURNAL_APP_DIR",
    "REPO_ROOT",
    "Gates",
    "Recorder",
    "app_environment",
    "assert_nothing_left",
    "input_file",
    "processes_mentioning",
    "wait_for",
]


def submit_parts(
    node: LocalNode, app: AppRef, tmp_path: Path, parts: int, seed: str, **kwargs: Any
) -> TaskRow:
    """A journal app task of `parts` parts, one subtask each, on the input file;
    its output goes to tmp_path/out. `kwargs` go to submit (timeouts)."""
    return node.manager.submit(
        app=app, params={"parts": parts, "seed": seed}, inputs=[input_file(tmp_path)],
        max_subtasks=parts, output_dir=tmp_path / "out", **kwargs,
    )  # fmt: skip


def gone(pid: int) -> bool:
    """No such process, or a zombie (it runs nothing)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
