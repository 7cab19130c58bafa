"""The event stream: order, indices, the JSON-lines form, timestamps, slow listeners."""

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from golem_task_api.node.workgen import (
    Event,
    EventBus,
    EventStream,
    JsonLinesWriter,
    LocalDirProvider,
    Progress,
    ProgressArgs,
    ProgressCallback,
    ProviderPool,
    Script,
    Task,
    WorkContext,
    execute_tasks,
)
from golem_task_api.node.workgen.events import (
    CommandFinished,
    CommandStarted,
    Dropped,
    TaskAccepted,
    TaskStarted,
)
from tests.node.workgen.conftest import drain, kinds, of_kind, outcomes
from tests.waiting import BOUND, poll

EVERY_KIB = ProgressArgs(interval=None, step=1024)
EVERY_UNIT = ProgressArgs(interval=None, step=1)
Worker = AsyncGenerator[Script, list[Any]]


async def upload_and_run(ctx: WorkContext, tasks: AsyncIterator[Task[int, int]]) -> Worker:
    async for task in tasks:
        script = ctx.new_script()
        script.send_bytes(b"x" * 3000, "x.bin", progress=EVERY_KIB)
        script.run("true")
        yield script
        task.accept_result(task.data)


def kib_pool(tmp_path: Path, count: int = 1) -> ProviderPool:
    return ProviderPool(
        LocalDirProvider(f"p{i}", tmp_path / f"p{i}", chunk_size=1024) for i in range(count)
    )


async def test_events_tell_what_happened_in_order(
    tmp_path: Path, bus: EventBus, events: EventStream
) -> None:
    (task,) = await outcomes(
        execute_tasks(upload_and_run, [Task(1, task_id="t1")], kib_pool(tmp_path), events=bus)
    )
    seen = drain(events)
    assert [e.seq for e in seen] == list(range(len(seen)))
    assert kinds(seen) == [
        "worker_started",
        "task_started",
        "script_started",
        "command_started",
        "progress",
        "progress",
        "progress",
        "progress",
        "command_finished",
        "command_started",
        "command_finished",
        "script_finished",
        "task_accepted",
        "worker_finished",
    ]
    batch = seen[2].batch_id
    assert batch is not None
    for event in seen[2:12]:
        assert (event.batch_id, event.task_id, event.provider_id) == (batch, "t1", "p0")
    assert [e.index for e in seen[3:11]] == [0, 0, 0, 0, 0, 0, 1, 1]
    assert [e.index for e in seen[:3] + seen[11:]] == [None] * 6
    assert [e.kind for e in seen[4:8]] == [
        Progress(done, 3000, unit="Bytes") for done in (0, 1024, 2048, 3000)
    ]
    assert seen[8].kind == CommandFinished("send_bytes", 0)
    assert seen[12].kind == TaskAccepted(1)
    assert seen[0].provider_id == seen[-1].provider_id == "p0"
    assert task.accepted


async def test_events_as_json_lines(tmp_path: Path, bus: EventBus, events: EventStream) -> None:
    log = tmp_path / "events.jsonl"
    async with JsonLinesWriter(bus, log) as writer:
        await outcomes(
            execute_tasks(upload_and_run, [Task(1)], kib_pool(tmp_path / "w"), events=bus)
        )
    seen = drain(events)
    lines = log.read_text().splitlines()
    assert writer.written == len(lines) == len(seen)
    assert writer.dropped == 0
    decoded = [json.loads(line) for line in lines]
    assert decoded == [event.to_json() for event in seen]
    assert [Event.from_json(d).to_json() for d in decoded] == decoded
    progress = [d for d in decoded if "progress" in d["kind"]]
    assert progress[1] == {
        "seq": progress[1]["seq"],
        "batch_id": progress[1]["batch_id"],
        "index": 0,
        "timestamp": progress[1]["timestamp"],
        "task_id": progress[1]["task_id"],
        "provider_id": "p0",
        "kind": {
            "progress": {
                "step": [0, 1],
                "message": None,
                "progress": [1024, 3000],
                "unit": "Bytes",
            }
        },
    }
    assert all(d["timestamp"].endswith("Z") for d in decoded)
    assert decoded[-1]["kind"] == {"worker_finished": {"error": None}}


async def test_timestamps_are_taken_when_the_event_happens(
    pool: ProviderPool, bus: EventBus, events: EventStream
) -> None:
    first = bus.emit(TaskStarted(1))
    await poll(lambda: datetime.now(UTC) > first.timestamp, "the clock to move on")
    second = bus.emit(TaskStarted(2))
    assert first.timestamp < second.timestamp <= datetime.now(UTC)

    accepting: list[datetime] = []

    async def worker(ctx: WorkContext, tasks: AsyncIterator[Task[int, int]]) -> Worker:
        async for task in tasks:
            yield ctx.new_script()
            await poll(lambda: datetime.now(UTC) > second.timestamp, "the clock")
            accepting.append(datetime.now(UTC))
            task.accept_result(0)

    await outcomes(execute_tasks(worker, [Task(0)], pool, events=bus))
    (accepted,) = of_kind(drain(events), TaskAccepted)
    assert accepting[0] <= accepted.timestamp <= datetime.now(UTC)
    stamps = [e.timestamp for e in drain(events)]
    assert stamps == sorted(stamps)


async def test_a_listener_that_never_reads_does_not_block_the_job(
    tmp_path: Path, bus: EventBus, events: EventStream
) -> None:
    slow = bus.subscribe(buffer=5)
    tasks: list[Task[int, int]] = [Task(i) for i in range(20)]
    done = await outcomes(
        execute_tasks(upload_and_run, tasks, kib_pool(tmp_path, 3), max_workers=3, events=bus)
    )
    assert len(done) == 20
    everything = drain(events)
    bus.close()
    got = [event async for event in slow]
    real = [e for e in got if not isinstance(e.kind, Dropped)]
    markers = [e.kind for e in got if isinstance(e.kind, Dropped)]
    assert markers, "a 5-event buffer must have overflowed"
    assert sum(m.count for m in markers if isinstance(m, Dropped)) == slow.dropped
    assert len(real) + slow.dropped + slow.superseded == len(everything)
    seqs = [e.seq for e in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # What the slow listener got is what happened, minus the gaps.
    by_seq = {e.seq: e for e in everything}
    assert all(by_seq[e.seq] == e for e in real)


async def test_progress_is_latest_wins_and_gaps_are_marked() -> None:
    bus = EventBus()
    stream = bus.subscribe(buffer=3)
    bus.emit(CommandStarted("send_file", "send_file('a', 'b')"), batch_id="b", index=0)
    for done in range(50):
        bus.emit(Progress(done, 49, unit="Bytes"), batch_id="b", index=0)
    bus.emit(CommandFinished("send_file", 0), batch_id="b", index=0)
    assert [e.kind for e in stream.take_ready()] == [
        CommandStarted("send_file", "send_file('a', 'b')"),
        Progress(49, 49, unit="Bytes"),
        CommandFinished("send_file", 0),
    ]
    assert (stream.superseded, stream.dropped) == (49, 0)

    lost = [bus.emit(TaskStarted(i)) for i in range(5)]
    assert [e.kind for e in stream.take_ready()] == [TaskStarted(0), TaskStarted(1), TaskStarted(2)]
    last = bus.emit(TaskStarted(5))
    marker, after = stream.take_ready()
    assert marker.kind == Dropped(2) and marker.seq == lost[-1].seq
    assert after == last

    bus.emit(TaskStarted(6))
    bus.emit(TaskStarted(7))
    bus.emit(TaskStarted(8))
    bus.emit(TaskStarted(9))
    bus.close()
    assert [e.kind for e in [e async for e in stream]] == [
        TaskStarted(6),
        TaskStarted(7),
        TaskStarted(8),
        Dropped(1),
    ]
    # Later events go nowhere, and a late subscriber's stream is already over.
    bus.emit(TaskStarted(10))
    assert stream.take_ready() == []
    assert [e async for e in bus.subscribe()] == []


async def test_a_waiting_reader_is_woken_by_the_next_event() -> None:
    bus = EventBus()
    stream = bus.subscribe()
    reader = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    assert not reader.done()
    sent = bus.emit(TaskStarted(1))
    async with asyncio.timeout(BOUND):
        assert await reader == sent
    stream.close()
    assert [e async for e in stream] == []


async def test_compute_forwards_the_apps_progress(
    tmp_path: Path, bus: EventBus, events: EventStream
) -> None:
    stages = [
        Progress(0, 2, unit="Frames", message="rendering", step=0, step_count=2),
        Progress(1, 2, unit="Frames", message="rendering", step=0, step_count=2),
        Progress(2, 2, unit="Frames", message="rendering", step=0, step_count=2),
        Progress(0, None, unit="Bytes", message="packing", step=1, step_count=2),
        Progress(4096, None, unit="Bytes", message="packing", step=1, step_count=2),
    ]

    async def compute(subtask_id: str, params: Mapping[str, Any], report: ProgressCallback) -> str:
        for stage in stages:
            report(stage)
        return f"{subtask_id}.zip"

    pool = ProviderPool([LocalDirProvider("p", tmp_path / "p", compute=compute)])

    async def worker(ctx: WorkContext, tasks: AsyncIterator[Task[int, str]]) -> Worker:
        async for task in tasks:
            script = ctx.new_script()
            output = script.compute(f"s{task.data}", {"frames": 2}, progress=EVERY_UNIT)
            script.compute("quiet", {}, progress=None)
            yield script
            task.accept_result(await output)

    (task,) = await outcomes(execute_tasks(worker, [Task(7)], pool, events=bus))
    assert task.result == "s7.zip"
    seen = drain(events)
    progress = [e for e in seen if isinstance(e.kind, Progress)]
    assert [e.kind for e in progress] == stages
    assert {e.index for e in progress} == {0}
    assert progress[3].to_json()["kind"] == {
        "progress": {"step": [1, 2], "message": "packing", "progress": [0, None], "unit": "Bytes"}
    }
