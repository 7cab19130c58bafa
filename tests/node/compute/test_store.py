"""The state machine and the SQLite store: CAS transitions, persistence."""

import itertools
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from golem_task_api.errors import AlreadyExists
from golem_task_api.node.compute.benchmarks import BenchmarkScore, benchmark_key
from golem_task_api.node.compute.capacity import Resources
from golem_task_api.node.compute.states import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATES,
    ExecutionNotFound,
    ExecutionState,
    FailureKind,
    IllegalTransition,
    StateConflict,
)
from golem_task_api.node.compute.store import ExecutionStore
from tests.node.compute.helpers import make_offer, work

S = ExecutionState
MAIN_PATH = [
    S.CREATED,
    S.BID_ACCEPTED,
    S.RUNNING,
    S.AWAITING_VERIFICATION,
    S.PUBLISHING,
    S.COMPLETED,
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ExecutionStore]:
    with ExecutionStore(tmp_path / "store.sqlite") as store:
        yield store


def _new(store: ExecutionStore, execution_id: str = "e1") -> None:
    store.create(execution_id, make_offer(), Resources(1, 256), timeout=60.0)


def test_terminal_states_are_final_and_others_can_fail_or_be_cancelled() -> None:
    for state in ExecutionState:
        if state in TERMINAL_STATES:
            assert ALLOWED_TRANSITIONS[state] == frozenset()
        else:
            assert {S.FAILED, S.CANCELLED} <= ALLOWED_TRANSITIONS[state]
    for before, after in itertools.pairwise(MAIN_PATH):
        assert after in ALLOWED_TRANSITIONS[before]


def test_main_path_bumps_the_version_and_keeps_history(store: ExecutionStore) -> None:
    _new(store)
    for before, after in itertools.pairwise(MAIN_PATH):
        store.transition("e1", before, after, reason=f"to {after.value}")
    execution = store.get("e1")
    assert execution.state is S.COMPLETED
    assert execution.version == len(MAIN_PATH)
    history = store.history("e1")
    assert [h.to_state for h in history] == MAIN_PATH
    assert [h.from_state for h in history] == [None, *MAIN_PATH[:-1]]
    assert history[-1].reason == "to completed"


def test_illegal_transitions_are_refused_before_the_database(store: ExecutionStore) -> None:
    _new(store)
    with pytest.raises(IllegalTransition, match="from created to completed"):
        store.transition("e1", S.CREATED, S.COMPLETED)
    with pytest.raises(IllegalTransition, match="terminal"):
        store.transition("e1", S.CANCELLED, S.COMPLETED)
    assert store.get("e1").state is S.CREATED
    assert store.get("e1").version == 1


def test_a_late_writer_bounces_off_a_cancelled_execution(store: ExecutionStore) -> None:
    _new(store)
    store.transition("e1", S.CREATED, S.BID_ACCEPTED, work=work())
    store.transition("e1", S.BID_ACCEPTED, S.RUNNING)
    store.transition("e1", S.RUNNING, S.CANCELLED, reason="requestor cancelled")

    # A background task that finished late still believes the run goes on.
    with pytest.raises(StateConflict, match="cancelled, not running") as caught:
        store.transition("e1", S.RUNNING, S.AWAITING_VERIFICATION, result_path=Path("/x"))
    assert caught.value.actual is S.CANCELLED
    with pytest.raises(StateConflict, match="terminal"):
        store.transition("e1", S.PUBLISHING, S.COMPLETED, published="somewhere")
    execution = store.get("e1")
    assert execution.state is S.CANCELLED
    assert execution.result_path is None and execution.published is None
    assert execution.reason == "requestor cancelled"


def test_compare_and_set_holds_across_connections(tmp_path: Path) -> None:
    # Two stores on one file (as two node processes would be): of many
    # writers racing from the same state, exactly one wins.
    path = tmp_path / "shared.sqlite"
    with ExecutionStore(path) as first:
        _new(first)
    winners: list[str] = []
    barrier = threading.Barrier(8)

    def race(name: str) -> None:
        with ExecutionStore(path) as store:
            barrier.wait()
            try:
                store.transition("e1", S.CREATED, S.CANCELLED, reason=name)
                winners.append(name)
            except StateConflict:
                pass

    threads = [threading.Thread(target=race, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    with ExecutionStore(path) as store:
        assert store.get("e1").reason == winners[0]
        assert store.get("e1").version == 2


def test_unknown_and_duplicate_executions(store: ExecutionStore) -> None:
    with pytest.raises(ExecutionNotFound):
        store.get("nope")
    with pytest.raises(ExecutionNotFound):
        store.transition("nope", S.CREATED, S.CANCELLED)
    _new(store)
    with pytest.raises(AlreadyExists):
        _new(store)


def test_arrival_sequence_is_assigned_once_and_increases(store: ExecutionStore) -> None:
    for name in ("a", "b", "c"):
        _new(store, name)
    for name in ("c", "a", "b"):
        store.transition(name, S.CREATED, S.BID_ACCEPTED, work=work())
    seqs = {e.execution_id: e.seq for e in store.executions()}
    assert seqs == {"c": 1, "a": 2, "b": 3}
    assert [e.execution_id for e in store.executions([S.BID_ACCEPTED])] == ["c", "a", "b"]


def test_everything_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    offer = make_offer("t9", cpu=2, memory_mib=300, timeout=12.5, queue_timeout=4.0)
    with ExecutionStore(path) as store:
        store.create("e1", offer, Resources(2, 300), timeout=12.5)
        store.transition(
            "e1", S.CREATED, S.BID_ACCEPTED, work=work("s1", frame=3), queue_deadline=99.0
        )
        store.transition("e1", S.BID_ACCEPTED, S.RUNNING)
        store.transition(
            "e1", S.RUNNING, S.FAILED, failure=FailureKind.TIMEOUT, retryable=True, reason="slow"
        )
        key = benchmark_key("app", "env", {"image": "a", "tag": "1"})
        store.put_benchmark(
            BenchmarkScore(key, "app", "env", {"image": "a", "tag": "1"}, 42.0, 1.0)
        )
        before = store.get("e1")
    with ExecutionStore(path) as store:
        after = store.get("e1")
        assert after == before
        assert after.offer == offer
        assert after.work is not None and after.work.params == {"frame": 3}
        assert (after.failure, after.retryable, after.reason) == (FailureKind.TIMEOUT, True, "slow")
        assert store.get_benchmark(key) is not None
        assert store.get_benchmark(key).score == 42.0  # type: ignore[union-attr]
        assert len(store.history("e1")) == 4
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(RuntimeError, match="newer than this node"):
        ExecutionStore(path)


def test_counts_rejections_and_pruning(store: ExecutionStore) -> None:
    for name in ("a", "b", "c"):
        _new(store, name)
        store.transition(name, S.CREATED, S.BID_ACCEPTED, work=work())
        store.transition(name, S.BID_ACCEPTED, S.RUNNING)
        store.transition(name, S.RUNNING, S.AWAITING_VERIFICATION, result_path=Path("/r"))
    store.transition("a", S.AWAITING_VERIFICATION, S.FAILED, failure=FailureKind.RESULT_REJECTED)
    store.transition("b", S.AWAITING_VERIFICATION, S.FAILED, failure=FailureKind.RESULT_REJECTED)
    assert store.rejected_results("requestor") == 2
    assert store.rejected_results("someone else") == 0
    counts = store.counts()
    assert counts[S.FAILED] == 2 and counts[S.AWAITING_VERIFICATION] == 1
    assert counts[S.CREATED] == 0
    assert store.prune(finished_before=0.0) == 0
    assert store.prune(finished_before=float("inf")) == 2
    assert [e.execution_id for e in store.executions()] == ["c"]
    assert store.history("a") == []
