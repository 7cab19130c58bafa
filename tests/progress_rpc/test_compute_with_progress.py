"""ComputeWithProgress at the gRPC level: the stream's shape, failures, the
one-request rule, shutdown and cancellation (shared/progress.md)."""

import asyncio
import itertools
import json
import os
import signal
from pathlib import Path

import grpc
import pytest

from apps.tutorial import pow
from golem_task_api.progress.tracker import DEFAULT_STAGE_LOG, dropped_message
from golem_task_api.proto import golem_task_api_pb2 as pb
from tests.progress_rpc.conftest import (
    NEVER,
    OK,
    Outcome,
    State,
    assert_seq,
    assert_terminal_once_last,
    compute_request,
    read_all,
    status_of,
)
from tests.progress_rpc.progress_app import ProgressProvider
from tests.waiting import BOUND, bounded

REPORTS = 300_000


def running(outcome: Outcome) -> list[pb.ProgressEvent]:
    return [e for e in outcome.progress if e.state == State.RUNNING]


def seconds(event: pb.ProgressEvent) -> float:
    return event.time.ToNanoseconds() / 1e9


def assert_ends_with_result(outcome: Outcome) -> None:
    """..., SUCCEEDED, one result, end of stream, OK."""
    assert outcome.code is OK, (outcome.code, outcome.details)
    assert [kind for kind, _ in outcome.items[-2:]] == ["progress", "result"]
    assert len(outcome.results) == 1
    assert outcome.terminal.state == State.SUCCEEDED
    assert_seq(outcome)
    assert_terminal_once_last(outcome)


async def test_a_successful_stream_from_first_event_to_result(inline_provider) -> None:
    provider = await inline_provider()
    interval = 0.05
    outcome = await read_all(provider.compute_with_progress(
        compute_request({"reports": REPORTS}, interval=interval)
    ))
    assert_ends_with_result(outcome)
    first, terminal = outcome.progress[0], outcome.terminal
    # The first event: the snapshot taken as the call starts, before the handler runs.
    assert (first.seq, first.state, first.done) == (0, State.RUNNING, 0.0)
    assert not first.HasField("total")
    # Throttled: a handful of events for a million reports, never two
    # interval-driven events closer than the interval (server timestamps).
    # Sent sooner: the first value with the unit (a new kind of amount),
    # and the final flush, right before the terminal event.
    events = running(outcome)
    assert len(events) < 1000, len(events)
    assert (events[1].done, events[1].unit) == (1, "Items")
    for before, after in itertools.pairwise(events[1:-1]):
        assert seconds(after) - seconds(before) >= interval * 0.9, (before, after)
    dones = [e.done for e in events]
    assert dones == sorted(dones)
    # The flush: the last value reported reaches the client before the end.
    last = events[-1]
    assert (last.done, last.total, last.unit) == (REPORTS, REPORTS, "Items")
    assert terminal.state == State.SUCCEEDED
    assert (terminal.done, terminal.total, terminal.unit) == (REPORTS, REPORTS, "Items")
    result_path = provider.task_dir / outcome.results[0].output_filepath
    assert json.loads(result_path.read_text())["subtask_id"] == "s1"
    await provider.wait_exit()


async def test_the_first_event_comes_at_once_not_after_the_interval(
    inline_provider, tmp_path: Path
) -> None:
    provider = await inline_provider()
    hold = tmp_path / "release"
    call = provider.compute_with_progress(
        compute_request({"report": [3, 10], "hold": str(hold)}, interval=NEVER)
    )
    # With an interval of an hour, only what is sent regardless of it comes:
    # the first event while the handler is still running...
    first = await bounded(call.read(), "the first event")
    assert (first.progress.seq, first.progress.done) == (0, 0.0)
    assert provider.handler.entered.wait(BOUND)
    hold.touch()
    # ...then the flush of the last value, the terminal event and the result.
    outcome = await read_all(call)
    outcome.items.insert(0, ("progress", first.progress))
    outcome.progress.insert(0, first.progress)
    assert_ends_with_result(outcome)
    assert [(v.state, v.done, v.total) for v in outcome.values] == [
        (State.RUNNING, 0, None),
        (State.RUNNING, 3, 10),
        (State.SUCCEEDED, 10, 10),
    ]


async def test_update_step_sends_when_done_moved_by_the_step(inline_provider) -> None:
    provider = await inline_provider()
    step = REPORTS / 10
    outcome = await read_all(provider.compute_with_progress(
        compute_request({"reports": REPORTS}, interval=NEVER, step=step)
    ))
    assert_ends_with_result(outcome)
    dones = [e.done for e in running(outcome)]
    # After the first event and the first with the unit (both sent at once),
    # each moved by at least the step, but the flush.
    assert dones[:2] == [0, 1]
    for before, after in itertools.pairwise(dones[1:-1]):
        assert after - before >= step, dones
    assert dones[-1] == REPORTS
    assert outcome.terminal.done == REPORTS


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        ({"report": [4, 10], "raise": "the frobnicator broke"}, grpc.StatusCode.INTERNAL,
         "the frobnicator broke"),
        ({"report": [4, 10], "invalid": "no such scene"}, grpc.StatusCode.INVALID_ARGUMENT,
         "no such scene"),
        ("{not json", grpc.StatusCode.INVALID_ARGUMENT, "subtask_params_json"),
        ("[1, 2]", grpc.StatusCode.INVALID_ARGUMENT, "subtask_params_json"),
    ],
    ids=["raise", "invalid-argument", "bad-json", "json-not-an-object"],
)
async def test_a_failure_ends_with_failed_then_the_status_compute_gives(
    inline_provider, params, code, message
) -> None:
    plain = await inline_provider()
    expected_code, expected_details = await status_of(plain.stub.Compute(
        compute_request(params).compute, timeout=BOUND
    ))
    assert expected_code == code and message in expected_details
    await plain.wait_exit()

    provider = await inline_provider()
    outcome = await read_all(
        provider.compute_with_progress(compute_request(params, interval=NEVER))
    )
    assert (outcome.code, outcome.details) == (expected_code, expected_details)
    assert outcome.results == []
    assert_seq(outcome)
    assert_terminal_once_last(outcome)
    terminal = outcome.terminal
    assert terminal.state == State.FAILED
    # The last real value, never a fake 100 %, with the error as message.
    reported = isinstance(params, dict)
    assert (terminal.done, terminal.total if terminal.HasField("total") else None) == (
        (4, 10) if reported else (0, None)
    )
    assert terminal.message == expected_details
    await provider.wait_exit()


async def test_one_request_then_exit_and_a_second_call_is_refused(
    inline_provider, tmp_path: Path
) -> None:
    provider = await inline_provider()
    hold = tmp_path / "release"
    call = provider.compute_with_progress(compute_request({"hold": str(hold)}))
    await bounded(call.read(), "the first event")
    assert provider.handler.entered.wait(BOUND)
    busy = grpc.StatusCode.FAILED_PRECONDITION
    code, details = await status_of(provider.compute({}, subtask_id="s2"))
    assert code == busy and "serves one request" in details
    second = await read_all(provider.compute_with_progress(compute_request(subtask_id="s3")))
    assert (second.code, second.progress, second.results) == (busy, [], [])
    code, _ = await status_of(provider.stub.RunBenchmark(pb.RunBenchmarkRequest(), timeout=BOUND))
    assert code == busy
    hold.touch()
    outcome = await read_all(call)
    assert outcome.code is OK and len(outcome.results) == 1
    assert outcome.results[0].output_filepath == os.path.join("s1", "result.json")
    await provider.wait_exit()
    code, _ = await status_of(provider.compute({}, subtask_id="s4"))
    assert code == grpc.StatusCode.UNAVAILABLE


async def test_a_process_exits_after_its_stream(process_provider) -> None:
    provider = await process_provider()
    outcome = await read_all(provider.compute_with_progress(
        compute_request({"report": [1, 2]}, interval=0.01)
    ))
    assert_ends_with_result(outcome)
    await provider.wait_exit()
    assert provider.service.returncode == 0


async def test_the_tutorial_reports_hashes_of_its_range(process_provider) -> None:
    data, start, end, difficulty = b"progress over gRPC", 1000, 1000 + 20 * pow.CHUNK, 8
    provider = await process_provider("apps.tutorial")
    (provider.task_dir.subtask_inputs_dir / "data.bin").write_bytes(data)
    params = {"start": start, "end": end, "difficulty": difficulty, "data_file": "data.bin"}
    outcome = await read_all(provider.compute_with_progress(
        compute_request(params, interval=0.01)
    ))
    assert_ends_with_result(outcome)
    size = end - start
    for event in outcome.progress[1:]:
        assert (event.total, event.unit) == (size, "Hashes")
    assert (outcome.terminal.done, outcome.terminal.total) == (size, size)
    result = json.loads((provider.task_dir / outcome.results[0].output_filepath).read_text())
    assert result["nonces"] == pow.search(data, start, end, difficulty)
    await provider.wait_exit()


# -- ended from outside: Shutdown, SIGTERM, the client going away --------------


async def spinning(provider, tmp_path: Path, interval: float = 0.01):
    """A ComputeWithProgress whose handler reports from a worker thread until
    the server shuts down; returns (call, the events so far, the file its
    loop writes when it ends), once it has reported something."""
    stopped = tmp_path / "spin-stopped"
    call = provider.compute_with_progress(
        compute_request({"spin": str(stopped)}, interval=interval)
    )
    seen = Outcome()
    while not any(e.done > 0 for e in seen.progress):
        message = await bounded(call.read(), "a progress event")
        assert message is not grpc.aio.EOF
        seen.add(message)
    return call, seen, stopped


@pytest.mark.parametrize("how", ["Shutdown", "SIGTERM"])
async def test_shutdown_during_the_stream_ends_it_and_the_process_exits(
    process_provider, tmp_path: Path, how: str
) -> None:
    provider = await process_provider()
    call, seen, stopped = await spinning(provider, tmp_path)
    if how == "Shutdown":
        await provider.stub.Shutdown(pb.ShutdownRequest(), timeout=BOUND)
    else:
        os.kill(provider.service.pid, signal.SIGTERM)
    rest = await read_all(call)
    outcome = Outcome(seen.progress + rest.progress, rest.results, seen.items + rest.items,
                      rest.code, rest.details)
    assert_seq(outcome)
    assert_terminal_once_last(outcome)
    terminal = outcome.terminal
    assert terminal.state in (State.CANCELLED, State.FAILED)
    # The last real value: at least what was last sent, not 0, not 100 %.
    assert terminal.done >= max(e.done for e in outcome.progress[:-1]) > 0
    assert not terminal.HasField("total")
    assert outcome.results == []
    assert rest.code == grpc.StatusCode.UNAVAILABLE, (rest.code, rest.details)
    assert "shut down" in rest.details
    await provider.wait_exit()
    assert provider.service.returncode == 0
    # The handler's loop saw the shutdown and stopped.
    assert int(stopped.read_text()) >= terminal.done


async def test_a_client_that_cancels_the_stream_stops_the_computation(
    process_provider, tmp_path: Path
) -> None:
    provider = await process_provider()
    call, _seen, stopped = await spinning(provider, tmp_path)
    call.cancel()
    # Nobody asked the app to stop but the stream's end: it stops the work
    # and exits by itself.
    await provider.wait_exit()
    assert provider.service.returncode == 0
    assert stopped.exists()


async def test_a_cancelled_stream_cancels_an_async_handler(
    inline_provider, tmp_path: Path
) -> None:
    handler = ProgressProvider()
    provider = await inline_provider(handler)
    call = provider.compute_with_progress(
        compute_request({"hold": str(tmp_path / "never")}, interval=0.01)
    )
    await bounded(call.read(), "the first event")
    assert await asyncio.to_thread(handler.entered.wait, BOUND)
    call.cancel()
    assert await asyncio.to_thread(handler.cancelled.wait, BOUND)
    await provider.wait_exit()


async def test_every_change_of_message_or_step_is_sent_in_order(inline_provider) -> None:
    """Sent whatever the throttle says, even when they come in one burst."""
    provider = await inline_provider()
    values = [
        [0, 10, "Frames", "loading", 0, 3],
        [5, 10, "Frames", "loading", 0, 3],  # only done moved: throttled away
        [0, 2, "Frames", "rendering", 1, 3],
        [1, 2, "Frames", "rendering frame 2", 1, 3],
        [0, None, "", "merging", 2, 3],
        [7, None, "", "merging", 2, 3],
    ]
    outcome = await read_all(provider.compute_with_progress(
        compute_request({"values": values}, interval=NEVER)
    ))
    assert_ends_with_result(outcome)
    got = [(v.message, v.step, v.done) for v in outcome.values]
    assert got == [
        ("", 0, 0),  # the first event
        ("loading", 0, 0),
        ("rendering", 1, 0),
        ("rendering frame 2", 1, 1),
        ("merging", 2, 0),
        ("merging", 2, 7),  # the flush
        ("merging", 2, 7),  # SUCCEEDED (total unknown: done stays)
    ]
    assert [e.step_count for e in outcome.progress[1:]] == [3] * 6


@pytest.mark.parametrize("count", [100, DEFAULT_STAGE_LOG + 100])
async def test_a_burst_of_100_messages_is_sent_whole_or_says_what_it_dropped(
    inline_provider, count: int
) -> None:
    """Every change of message is sent (progress.md); where a burst outruns
    the stream by more than the tracker's log keeps, one event says how many
    were dropped (research 6.1 rule 5), never a silent loss."""
    provider = await inline_provider()
    values = [[i, count, "Items", f"message {i}"] for i in range(1, count + 1)]
    outcome = await read_all(provider.compute_with_progress(
        compute_request({"values": values}, interval=NEVER)
    ))
    assert_ends_with_result(outcome)
    messages = [v.message for v in outcome.values[1:-1]]
    if count <= DEFAULT_STAGE_LOG:
        assert messages == [f"message {i}" for i in range(1, count + 1)], messages[:3]
    else:
        # The whole burst came before the stream looked: the log kept its end.
        dropped = count - DEFAULT_STAGE_LOG
        assert messages == [dropped_message(dropped)] + [
            f"message {i}" for i in range(dropped + 1, count + 1)
        ], messages[:3]
        assert "dropped" in messages[0]
        marker, oldest = outcome.values[1], outcome.values[2]
        assert marker == oldest._replace(message=messages[0])


async def test_a_deadline_that_expires_mid_stream_stops_the_computation(
    process_provider, tmp_path: Path
) -> None:
    provider = await process_provider()
    stopped = tmp_path / "spin-stopped"
    call = provider.stub.ComputeWithProgress(
        compute_request({"spin": str(stopped)}, interval=0.01), timeout=1.0
    )
    outcome = await read_all(call)
    assert outcome.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert any(e.done > 0 for e in outcome.progress)
    await provider.wait_exit()
    assert provider.service.returncode == 0
    assert stopped.exists()
