"""Running `python -m golem_task_api.node.cli` as a subprocess, as a user does."""

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.node.taskmanager.conftest import (
    BOUND,
    JOURNAL_APP_DIR,
    REPO_ROOT,
    Gates,
    app_environment,
    assert_nothing_left,
)
from tests.node.taskmanager.journal_app import read_journal

CLI = [sys.executable, "-m", "golem_task_api.node.cli"]


class Cli:
    """The CLI on one work dir, with the journal app's gates in its environment."""

    def __init__(self, tmp_path: Path, gates: Gates) -> None:
        self.tmp_path = tmp_path
        self.work_dir = tmp_path / "work"
        self.gates = gates
        self.env = app_environment(gates.path)
        self.events = tmp_path / "events.jsonl"
        self._started: list[subprocess.Popen[str]] = []

    def args(self, *words: str) -> list[str]:
        return [*CLI, *words, "--work-dir", str(self.work_dir)]

    def run(self, *words: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.args(*words), check=False, env=self.env, cwd=REPO_ROOT, capture_output=True,
            text=True, timeout=timeout,
        )

    def start(self, *words: str) -> "subprocess.Popen[str]":
        process = subprocess.Popen(
            self.args(*words), env=self.env, cwd=REPO_ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        self._started.append(process)
        return process

    def run_journal(self, *extra: str, parts: int = 3, seed: str = "cli", **params: object
                    ) -> "subprocess.Popen[str]":
        data = self.tmp_path / "input.txt"
        data.write_bytes(b"journal test data")
        task_params = {"parts": parts, "seed": seed, **params}
        return self.start(
            "run", str(JOURNAL_APP_DIR), "--params", json.dumps(task_params), "--input",
            str(data), "--subtasks", str(parts), "--output", str(self.output),
            "--events", str(self.events), *extra,
        )

    @property
    def output(self) -> Path:
        return self.tmp_path / "out"

    def event_names(self) -> list[str]:
        return [next(iter(e["kind"])) for e in self.read_events()]

    def read_events(self) -> list[dict[str, object]]:
        if not self.events.exists():
            return []
        lines = self.events.read_text().splitlines()
        # A node killed mid-write may leave the last line torn.
        return [json.loads(line) for line in lines if line.endswith("}")]

    def wait_event(self, name: str, count: int = 1, timeout: float = BOUND) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.read_events() if name in e["kind"]]  # type: ignore[operator]
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"no {count} {name} event(s) within {timeout} s")

    def task_id(self) -> str:
        created = self.wait_event("task_created")
        return str(created[0]["task_id"])

    def journal(self, task_id: str) -> list[dict[str, object]]:
        return read_journal(self.work_dir / "apps" / "journal_app" / task_id / "journal.jsonl")

    def finish(
        self, process: "subprocess.Popen[str]", timeout: float = 90.0
    ) -> tuple[int, str, str]:
        stdout, stderr = process.communicate(timeout=timeout)
        return process.returncode, stdout, stderr

    def kill(self, process: "subprocess.Popen[str]") -> None:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=BOUND)

    def close(self) -> None:
        for process in self._started:
            if process.poll() is None:
                process.kill()
                process.communicate()


@pytest.fixture
def gates(tmp_path: Path) -> Gates:
    return Gates(tmp_path / "gates")


@pytest.fixture
def cli(tmp_path: Path, gates: Gates) -> Iterator[Cli]:
    since = time.time()
    runner = Cli(tmp_path, gates)
    try:
        yield runner
    finally:
        runner.close()
        assert_nothing_left([str(tmp_path), "tests.node.taskmanager.journal_app"], since,
                            owner=tmp_path)


def verdicts(journal: Sequence[dict[str, object]]) -> dict[object, list[object]]:
    found: dict[object, list[object]] = {}
    for entry in journal:
        if entry.get("op") == "verify":
            found.setdefault(entry["part"], []).append(entry["verdict"])
    return found


__all__ = ["Cli", "verdicts"]
