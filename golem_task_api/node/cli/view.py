"""Showing a node at work: live bars on a terminal, plain lines elsewhere.

Both views are event listeners (synchronous, never blocking the node):

- `LiveView` (rich): one bar per task (the app's progress, else subtasks
  verified of wanted), one line per running subtask with what it is doing,
  its progress, rate and time left; failures, rejections, retries and
  exclusions printed above the bars as they happen.
- `PlainView`: one line per lifecycle event and per change of a task's
  progress, for logs and pipes.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

from golem_task_api.node.requestor.events import (
    AppRestarted,
    NodeEvent,
    NodeExcluded,
    Notice,
    SubtaskComputing,
    SubtaskDownloaded,
    SubtaskFailed,
    SubtaskIssued,
    SubtaskRejected,
    SubtaskRetried,
    SubtaskVerified,
    SubtaskVerifying,
    TaskAborted,
    TaskCompleted,
    TaskCreated,
    TaskFailed,
    TaskProgress,
    TaskStarted,
)
from golem_task_api.node.workgen.events import CommandStarted
from golem_task_api.node.workgen.progress import Progress as CommandProgress

_VERBS = {"send_file": "sending", "compute": "computing", "download_file": "downloading"}


def short(task_id: str | None) -> str:
    return (task_id or "")[:8]


def _number(value: float) -> str:
    if value >= 10_000:
        for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if value >= size:
                return f"{value / size:.1f}{suffix}"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _failed(event: NodeEvent, kind: SubtaskFailed, sub: str) -> str:
    again = "; the app will hand it out again" if kind.retry else ""
    state = kind.state.replace("_", " ")
    return f"{sub} on {event.node_id} {state}: {kind.reason}{again}"


_LINES: dict[type, Callable[[NodeEvent, Any, str], str]] = {
    TaskCreated: lambda e, k, s: f"created ({k.app}, at most {k.max_subtasks} subtasks)",
    TaskStarted: lambda e, k, s: f"{'resumed' if k.resumed else 'started'} (env {k.env_id})",
    TaskCompleted: lambda e, k, s: f"completed, {len(k.files)} file(s) in {k.output_dir}",
    TaskFailed: lambda e, k, s: f"{k.state.replace('_', ' ')}: {k.error}",
    TaskAborted: lambda e, k, s: f"aborted: {k.reason}",
    SubtaskIssued: lambda e, k, s: f"{s} issued to {e.node_id}",
    SubtaskRetried: lambda e, k, s: (
        f"{s} on {e.node_id} retries a part that failed on {k.previous_node}"
    ),
    SubtaskVerified: lambda e, k, s: f"{s} verified",
    SubtaskRejected: lambda e, k, s: f"{s} from {e.node_id} rejected ({k.verdict}): {k.reason}",
    SubtaskFailed: _failed,
    NodeExcluded: lambda e, k, s: f"{e.node_id} gets no more subtasks: {k.reason}",
    Notice: lambda e, k, s: k.message,
}


def describe(event: NodeEvent, numbers: dict[str, int]) -> str | None:
    """A line for a lifecycle event a person wants to see; None for the others."""
    kind = event.kind
    if isinstance(kind, AppRestarted):
        return f"requestor app {kind.app} restarted: {kind.reason}"
    line = _LINES.get(type(kind))
    if line is None:
        return None
    number = numbers.get(event.subtask_id or "")
    sub = f"subtask #{number}" if number is not None else "subtask"
    text = line(event, kind, sub)
    return f"task {short(event.task_id)}: {text}" if event.task_id else text


# Shown above the live bars (the rest is visible in the bars themselves).
_LIVE_LINES = (TaskStarted, TaskCompleted, TaskFailed, TaskAborted, SubtaskRetried,
               SubtaskRejected, SubtaskFailed, NodeExcluded, AppRestarted, Notice)


class PlainView:
    """Plain lines (to `stream`), stamped with the time of day."""

    def __init__(self, stream: IO[str], *, progress_every: float = 2.0) -> None:
        self._stream = stream
        self._numbers: dict[str, int] = {}
        self._progress_every = progress_every
        self._last_progress: dict[str, tuple[float, float]] = {}

    def __call__(self, event: NodeEvent) -> None:
        kind = event.kind
        if isinstance(kind, SubtaskIssued) and event.subtask_id:
            self._numbers[event.subtask_id] = kind.number
        if isinstance(kind, TaskProgress):
            self._task_progress(event, kind)
            return
        line = describe(event, self._numbers)
        if line is not None:
            self._write(line)

    def _task_progress(self, event: NodeEvent, kind: TaskProgress) -> None:
        key = event.task_id or ""
        now = time.monotonic()
        last = self._last_progress.get(key)
        final = kind.total is not None and kind.done >= kind.total
        if last is not None and (last[1] == kind.done or (now - last[0] < self._progress_every
                                                           and not final)):
            return
        self._last_progress[key] = (now, kind.done)
        total = "?" if kind.total is None else _number(kind.total)
        amount = f"{_number(kind.done)}/{total} {kind.unit}".rstrip()
        self._write(f"task {short(event.task_id)}: {amount}")

    def _write(self, line: str) -> None:
        self._stream.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        self._stream.flush()


class AmountColumn(ProgressColumn):
    """done/total unit, or done unit while the total is unknown."""

    def render(self, task: Any) -> Text:
        unit = task.fields.get("unit", "")
        total = "?" if task.total is None else _number(task.total)
        text = f"{_number(task.completed)}/{total} {unit}".rstrip()
        return Text(text, style="progress.download")


class RateColumn(ProgressColumn):
    """Units per second, from rich's speed estimate."""

    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "") or "units"
        if not speed:
            return Text("")
        return Text(f"{_number(speed)} {unit}/s", style="progress.data.speed")


@dataclass
class _Running:
    bar: TaskID
    number: int
    node: str
    verb: str = "issued"
    unit: str = ""
    commands: dict[tuple[str | None, int | None], str] = field(default_factory=dict)


class LiveView:
    """rich bars; use as a context manager around the node's work."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress = Progress(
            TextColumn("{task.description}", table_column=Column(no_wrap=True)),
            BarColumn(bar_width=30),
            AmountColumn(table_column=Column(no_wrap=True)),
            RateColumn(table_column=Column(no_wrap=True)),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            auto_refresh=False,
        )
        self._live = Live(self._progress, console=console, refresh_per_second=8,
                          transient=False, redirect_stdout=False, redirect_stderr=False)
        self._tasks: dict[str, TaskID] = {}
        self._running: dict[str, _Running] = {}
        self._numbers: dict[str, int] = {}
        self._handlers: dict[type, Callable[[NodeEvent, Any], None]] = {
            TaskCreated: self._task_seen,
            TaskStarted: self._task_seen,
            TaskProgress: self._task_progress,
            SubtaskIssued: self._issued,
            SubtaskComputing: self._computing,
            CommandStarted: self._command_started,
            CommandProgress: self._command_progress,
            SubtaskDownloaded: self._downloaded,
            SubtaskVerifying: self._verifying,
        }

    def __enter__(self) -> "LiveView":
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for running in list(self._running.values()):
            self._progress.remove_task(running.bar)
        self._running.clear()
        self._live.refresh()
        self._live.stop()

    def __call__(self, event: NodeEvent) -> None:
        kind = event.kind
        if isinstance(kind, SubtaskIssued) and event.subtask_id:
            self._numbers[event.subtask_id] = kind.number
        handler = self._handlers.get(type(kind))
        if handler is not None:
            handler(event, kind)
        if isinstance(kind, _LIVE_LINES):
            line = describe(event, self._numbers)
            if line is not None:
                style = "red" if isinstance(kind, TaskFailed | SubtaskRejected | SubtaskFailed
                                           | NodeExcluded) else None
                self._live.console.print(line, style=style, highlight=False)
        if event.subtask_id and event.subtask_id in self._running and isinstance(
            kind, SubtaskVerified | SubtaskRejected | SubtaskFailed
        ):
            self._progress.remove_task(self._running.pop(event.subtask_id).bar)

    def _task_bar(self, task_id: str | None) -> TaskID:
        key = task_id or ""
        bar = self._tasks.get(key)
        if bar is None:
            bar = self._tasks[key] = self._progress.add_task(
                f"[bold]task {short(task_id)}", total=None, unit=""
            )
        return bar

    def _task_seen(self, event: NodeEvent, kind: Any) -> None:
        self._task_bar(event.task_id)

    def _task_progress(self, event: NodeEvent, kind: TaskProgress) -> None:
        self._progress.update(
            self._task_bar(event.task_id), completed=kind.done, total=kind.total, unit=kind.unit
        )

    def _issued(self, event: NodeEvent, kind: SubtaskIssued) -> None:
        if not event.subtask_id:
            return
        bar = self._progress.add_task(
            self._subtask_label(kind.number, event.node_id or "", "issued"), total=None, unit="",
            start=False,
        )
        self._running[event.subtask_id] = _Running(bar, kind.number, event.node_id or "")

    def _computing(self, event: NodeEvent, kind: SubtaskComputing) -> None:
        self._set_verb(event, "sending")

    def _command_started(self, event: NodeEvent, kind: CommandStarted) -> None:
        running = self._running.get(event.subtask_id or "")
        if running is None:
            return
        verb = _VERBS.get(kind.command, kind.command)
        running.commands[(event.batch_id, event.index)] = verb
        self._set_verb(event, verb)
        # Each command's amount starts over (bytes sent, hashes computed...).
        self._progress.reset(running.bar, total=None, unit="", start=True)

    def _command_progress(self, event: NodeEvent, kind: CommandProgress) -> None:
        running = self._running.get(event.subtask_id or "")
        if running is None:
            return
        self._progress.update(running.bar, completed=kind.done, total=kind.total,
                              unit=kind.unit)

    def _downloaded(self, event: NodeEvent, kind: SubtaskDownloaded) -> None:
        self._set_verb(event, "downloaded")

    def _verifying(self, event: NodeEvent, kind: SubtaskVerifying) -> None:
        verb = "verifying" if kind.attempt == 1 else f"verifying (try {kind.attempt})"
        self._set_verb(event, verb)

    def _set_verb(self, event: NodeEvent, verb: str) -> None:
        running = self._running.get(event.subtask_id or "")
        if running is not None and running.verb != verb:
            running.verb = verb
            self._progress.update(
                running.bar, description=self._subtask_label(running.number, running.node, verb)
            )

    @staticmethod
    def _subtask_label(number: int, node: str, verb: str) -> str:
        return f"  #{number:<4} {node} {verb}"

    def refresh(self) -> None:
        self._live.refresh()


__all__ = ["LiveView", "PlainView", "describe", "short"]
