"""GOLEM_PROGRESS_FILE end to end: a handler's child process writes lines,
the client of ComputeWithProgress receives the values (shared/progress.md,
"How an app reports progress")."""

import os
import shlex
from pathlib import Path

import grpc
import pytest

from golem_task_api.progress import GOLEM_PROGRESS_FILE, ProgressValue
from tests.progress_rpc.conftest import (
    OK,
    Outcome,
    State,
    assert_seq,
    assert_terminal_once_last,
    compute_request,
    read_all,
)

# The child waits for the test to have seen a value before it writes the
# next one (a file the test creates), for at most ~30 s.
PRELUDE = """\
f="$GOLEM_PROGRESS_FILE"
[ -n "$f" ] || exit 5
wait_for() {
  n=0; while [ ! -e "$1" ]; do n=$((n+1)); [ $n -gt 6000 ] && exit 3; sleep 0.005; done
}
"""


def line(text: str) -> str:
    return f"printf '%s\\n' {shlex.quote(text)} >> \"$f\"\n"


def partial(text: str) -> str:
    """Written without its newline: not a complete line yet."""
    return f"printf '%s' {shlex.quote(text)} >> \"$f\"\n"


def wait_for(path: Path) -> str:
    return f"wait_for {shlex.quote(str(path))}\n"


class Acks:
    """Create ack file k once the client has seen expected value k."""

    def __init__(self, directory: Path, expected: list[ProgressValue]) -> None:
        self.paths = [directory / f"ack-{k}" for k in range(len(expected))]
        self.expected = expected
        self.next = 0

    def __call__(self, outcome: Outcome) -> None:
        latest = outcome.values[-1][:6]
        if self.next < len(self.expected) and latest == self.expected[self.next][:6]:
            self.paths[self.next].touch()
            self.next += 1


async def test_lines_of_every_format_reach_the_client_and_garbage_never_does(
    process_provider, tmp_path: Path
) -> None:
    expected = [
        ProgressValue(1, 10),
        ProgressValue(3, None),
        ProgressValue(40, 100),
        ProgressValue(5, 8, "Frames", "rendering", 1, 3),
        ProgressValue(6, 8),
    ]
    acks = Acks(tmp_path, expected)
    script = (
        PRELUDE
        + line("1/10") + wait_for(acks.paths[0])
        + line("abc/10")  # Argo reads 0/10
        + line("3/?") + wait_for(acks.paths[1])
        + line("50")  # Argo's executor panics
        + line("-1/10") + line("11/10") + line("nan/10") + line("1e999/10")
        + line("40%") + wait_for(acks.paths[2])
        + line("0x10/20") + line('{"done": "x"}') + line('{"done": 1, "bogus": 2}')
        + line("[3, 10]") + line('{"done": NaN, "total": 10}')
        + line('{"done": 5, "total": 8, "unit": "Frames", "message": "rendering",'
               ' "step": 1, "step_count": 3}')
        + wait_for(acks.paths[3])
        + line('{"done": 2, "total": 8, "unit": "Frames", "step": 1}')  # (no step_count)
        + line("") + line("   ")  # blank lines are skipped, not values
        + partial("6/8")  # the last *complete* line is still the JSON one...
        + "printf '\\n' >> \"$f\"\n"  # ...until its newline comes
        + wait_for(acks.paths[4])
        + line("7/8")  # written right before the exit, no wait
    )
    provider = await process_provider()
    outcome = await read_all(
        provider.compute_with_progress(compute_request({"shell": script}, interval=0.01)),
        acks,
    )
    assert outcome.code is OK, (outcome.code, outcome.details)
    assert acks.next == len(expected)
    assert_seq(outcome)
    assert_terminal_once_last(outcome)
    values = [v[:6] for v in outcome.values]
    assert values[0] == ProgressValue()[:6]
    good = {v[:6] for v in expected} | {ProgressValue(7, 8)[:6]}
    # Every event but the first carries a value a good line wrote: a bad
    # line never reads as 0 (nor as anything else).
    assert set(values[1:-1]) <= good, values
    assert all(v.done > 0 for v in outcome.values[1:])
    # The last line written before the exit is in the final events.
    assert values[-2] == ProgressValue(7, 8)[:6]
    assert (outcome.terminal.state, outcome.terminal.done, outcome.terminal.total) == (
        State.SUCCEEDED, 8, 8
    )
    await provider.wait_exit()


GARBAGE = {
    "letters": "abc/10",
    "bare-number": "50",
    "negative": "-1/10",
    "over-total": "11/10",
    "nan": "nan/10",
    "infinite": "1e999/10",
    "hex": "0x10/20",
    "json-string-done": '{"done": "x", "total": 10}',
    "json-unknown-key": '{"done": 1, "bogus": 2}',
    "json-array": "[3, 10]",
    "json-nan": '{"done": NaN, "total": 10}',
    "json-step-without-count": '{"done": 1, "step": 2}',
    "two-values": "1/2/3",
}


@pytest.mark.parametrize("garbage", list(GARBAGE.values()), ids=list(GARBAGE))
async def test_a_bad_last_line_keeps_the_last_real_value_in_the_failed_event(
    inline_provider, tmp_path: Path, garbage: str
) -> None:
    """The file is read once more before the final event; a bad line there
    must leave the previous value, which the FAILED event carries."""
    acks = Acks(tmp_path, [ProgressValue(3, 10)])
    script = PRELUDE + line("3/10") + wait_for(acks.paths[0]) + line(garbage)
    provider = await inline_provider()
    outcome = await read_all(provider.compute_with_progress(
        compute_request({"shell": script, "raise": "failed after the script"}, interval=0.01)
    ), acks)
    assert outcome.code == grpc.StatusCode.INTERNAL
    terminal = outcome.terminal
    assert terminal.state == State.FAILED
    assert (terminal.done, terminal.total, terminal.message) == (3, 10, "failed after the script")
    assert all(v.done == 3 for v in outcome.values[1:])


async def test_a_good_last_line_is_in_the_failed_event(inline_provider, tmp_path: Path) -> None:
    acks = Acks(tmp_path, [ProgressValue(3, 10)])
    script = (PRELUDE + line("3/10") + wait_for(acks.paths[0]) + line("abc")
              + line('{"done": 7, "total": 10, "unit": "Frames"}'))
    provider = await inline_provider()
    outcome = await read_all(provider.compute_with_progress(
        compute_request({"shell": script, "raise": "boom"}, interval=0.01)
    ), acks)
    terminal = outcome.terminal
    assert (terminal.state, terminal.done, terminal.total, terminal.unit) == (
        State.FAILED, 7, 10, "Frames"
    )


async def test_a_line_too_long_and_binary_garbage_keep_the_value(
    inline_provider, tmp_path: Path
) -> None:
    acks = Acks(tmp_path, [ProgressValue(3, 10)])
    script = (
        PRELUDE + line("3/10") + wait_for(acks.paths[0])
        + "printf '\\377\\376 4/10\\n' >> \"$f\"\n"  # not UTF-8
        + "head -c 100000 /dev/zero | tr '\\0' 7 >> \"$f\"; printf '/10\\n' >> \"$f\"\n"
    )
    provider = await inline_provider()
    outcome = await read_all(provider.compute_with_progress(
        compute_request({"shell": script, "raise": "boom"}, interval=0.01)
    ), acks)
    assert (outcome.terminal.state, outcome.terminal.done, outcome.terminal.total) == (
        State.FAILED, 3, 10
    )


async def test_plain_compute_sets_the_file_too(inline_provider) -> None:
    provider = await inline_provider()
    script = PRELUDE + line("1/2")
    reply = await provider.compute({"shell": script})
    assert reply.output_filepath
    assert provider.handler.progress_files[0]
    # Gone with the computation, and from the environment.
    assert not Path(provider.handler.progress_files[0]).exists()
    await provider.wait_exit()
    assert GOLEM_PROGRESS_FILE not in os.environ


async def test_write_then_rename_and_a_removed_file(inline_provider, tmp_path: Path) -> None:
    """Replacing the file by a rename (the recommended way) is seen; so is
    a file that was removed and written again."""
    expected = [ProgressValue(1, 4), ProgressValue(2, 4), ProgressValue(3, 4)]
    acks = Acks(tmp_path, expected)
    script = (
        PRELUDE
        + "printf '1/4\\n' > \"$f.tmp\"; mv \"$f.tmp\" \"$f\"\n" + wait_for(acks.paths[0])
        + "printf 'x\\n2/4\\n' > \"$f.tmp\"; mv \"$f.tmp\" \"$f\"\n" + wait_for(acks.paths[1])
        + "rm \"$f\"\n" + line("3/4") + wait_for(acks.paths[2])
        + "printf '4/4\\n' > \"$f.tmp\"; mv \"$f.tmp\" \"$f\"\n"
    )
    provider = await inline_provider()
    outcome = await read_all(provider.compute_with_progress(
        compute_request({"shell": script, "raise": "boom"}, interval=0.01)
    ), acks)
    assert acks.next == len(expected)
    terminal = outcome.terminal
    assert (terminal.state, terminal.done, terminal.total) == (State.FAILED, 4, 4)
