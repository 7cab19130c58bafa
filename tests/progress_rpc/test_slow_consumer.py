"""A slow client never slows the computation (shared/progress.md): only the
latest value is kept per stream, nothing queues up with the reports."""

import json
from pathlib import Path

from tests.progress_rpc.conftest import (
    OK,
    State,
    assert_seq,
    assert_terminal_once_last,
    compute_request,
    read_all,
)
from tests.waiting import bounded, poll

REPORTS = 1_000_000
# What a million queued values would cost is far above this (a tuple of
# seven fields alone is ~100 bytes); growth from gRPC's own buffers is below.
MAX_GROWTH = 32 * 2**20


async def test_a_client_that_stops_reading_does_not_hold_up_a_million_reports(
    process_provider, tmp_path: Path
) -> None:
    provider = await process_provider()
    done_file = tmp_path / "reports-done"
    # Every report is worth an event under this throttle (step 1, the 10 ms
    # floor): the most a stream could ever be asked to send.
    call = provider.compute_with_progress(compute_request(
        {"reports": REPORTS, "done_file": str(done_file)}, interval=0.0, step=1.0
    ))
    first = await bounded(call.read(), "the first event")
    assert first.progress.seq == 0
    # The client reads nothing more until the handler has made all its
    # reports: if the stream held the reporting side back, this never ends.
    await poll(done_file.exists, "the handler to finish its reports while nobody reads", 60.0)
    outcome = await read_all(call)
    assert outcome.code is OK, (outcome.code, outcome.details)
    outcome.progress.insert(0, first.progress)
    assert_seq(outcome)
    assert_terminal_once_last(outcome)
    # Latest value wins: a backlog was never built (at most what gRPC's
    # flow-control window held while we did not read, and those are few).
    assert len(outcome.progress) < 10_000, len(outcome.progress)
    assert [(v.done, v.total) for v in outcome.values[-2:]] == [(REPORTS, REPORTS)] * 2
    assert outcome.terminal.state == State.SUCCEEDED
    memory = json.loads(
        (provider.task_dir / outcome.results[0].output_filepath).read_text()
    )["memory"]
    growth = memory["rss_after"] - memory["rss_before"]
    assert growth < MAX_GROWTH, f"RSS grew by {growth / 2**20:.1f} MiB over {REPORTS} reports"
    await provider.wait_exit()
