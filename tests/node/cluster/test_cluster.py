"""The node on a Dask cluster: real scheduler and worker processes, real
provider processes on the workers, the node's real SQLite state."""

import asyncio
import json
import os
import signal
import socket
import time
from pathlib import Path

import psutil
import pytest
from distributed import LocalCluster

from apps.tutorial import pow
from golem_task_api.node.app_catalog import find_app
from golem_task_api.node.cluster import ClusterError, DaskCluster, check_address
from golem_task_api.node.local_node import LocalNode, LocalNodeConfig
from golem_task_api.node.requestor.context import ManagerConfig
from golem_task_api.node.requestor.events import NodeEvent
from golem_task_api.node.state import AppRef, SubtaskState, TaskRow, TaskState
from tests.node.taskmanager.conftest import REPO_ROOT, Recorder, assert_nothing_left, wait_for

WORKER_SCRATCH = "golem-task-api-worker-"


@pytest.mark.parametrize(
    "address", ["", "foo", "local:", "local:0", "local:x", "http://host:8786", "tcp://"]
)
def test_bad_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError, match="--cluster"):
        check_address(address)
    with pytest.raises(ValueError, match="--cluster"):
        LocalNodeConfig(cluster=address)


async def test_an_unreachable_scheduler_is_a_cluster_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cluster = DaskCluster(f"tcp://127.0.0.1:{port}", connect_timeout=0.5)
    with pytest.raises(ClusterError, match=f"cannot use the Dask cluster tcp://127.0.0.1:{port}"):
        await cluster.connect()
    await cluster.close()


def tutorial_app() -> AppRef:
    return find_app(str(REPO_ROOT / "apps" / "tutorial"))


async def start_node(tmp_path: Path, cluster: str) -> tuple[LocalNode, Recorder]:
    config = LocalNodeConfig(
        cluster=cluster, manager=ManagerConfig(progress_interval=0.05),
        provider_update_interval=0.05,
    )
    node = LocalNode(tmp_path / "work", config)
    recorder = Recorder()
    node.events.subscribe(recorder)
    await node.start()
    return node, recorder


def submit(
    node: LocalNode, tmp_path: Path, data: bytes, subtasks: int, **params: object
) -> TaskRow:
    (tmp_path / "data.bin").write_bytes(data)
    return node.manager.submit(
        app=tutorial_app(), params={"resources": ["data.bin"], **params},
        inputs=[tmp_path / "data.bin"], max_subtasks=subtasks, output_dir=tmp_path / "out",
    )


async def computing(recorder: Recorder) -> NodeEvent:
    """The first progress of an app computing (not of a file sent)."""
    found = await wait_for(
        lambda: [e for e in recorder.named("progress") if e.kind.unit == "Hashes"],
        60, "an app's progress",
    )
    return found[0]  # type: ignore[no-any-return]


def scratch_processes(since: float) -> list[psutil.Process]:
    """Provider apps that workers started (their work dir is a worker scratch dir)."""
    found = []
    for process in psutil.process_iter(["cmdline", "create_time", "status"]):
        info = process.info
        if info["create_time"] < since - 1 or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if any(WORKER_SCRATCH in part for part in info["cmdline"] or ()):
            found.append(process)
    return found


async def test_a_task_runs_on_every_worker(scheduler: str, tmp_path: Path) -> None:
    node, recorder = await start_node(tmp_path, scheduler)
    try:
        assert sorted(node.nodes) == ["cluster-1", "cluster-2"]
        for compute_node in node.nodes.values():
            assert compute_node.info().total.cpu == 1
        task = submit(node, tmp_path, b"on the cluster", 4, difficulty=8, search_space=40_000)
        final = await asyncio.wait_for(node.manager.run(task.task_id), 60)
        assert final.state is TaskState.COMPLETED, final.error
        result = json.loads((tmp_path / "out" / "result.json").read_text())
        assert result["nonces"] == pow.search(b"on the cluster", 0, 40_000, 8)
        subtasks = node.db.subtasks(task.task_id)
        assert [s.state for s in subtasks] == [SubtaskState.VERIFIED] * 4
        assert {s.node_id for s in subtasks} == {"cluster-1", "cluster-2"}
        # The apps' progress came back from the workers.
        hashes = [e.kind for e in recorder.named("progress") if e.kind.unit == "Hashes"]
        assert hashes and max(p.done for p in hashes) > 0
    finally:
        await node.stop()


async def test_an_abort_stops_the_apps_on_the_workers(scheduler: str, tmp_path: Path) -> None:
    since = time.time()
    node, recorder = await start_node(tmp_path, scheduler)
    try:
        # Far more work than the test waits for: it runs until aborted.
        task = submit(node, tmp_path, b"long", 2, difficulty=30, search_space=10**12)
        run = node.manager.start(task.task_id)
        await computing(recorder)
        assert scratch_processes(since)
        await node.manager.abort(task.task_id)
        final = await asyncio.wait_for(run, 60)
        assert final.state is TaskState.ABORTED
        await wait_for(lambda: not scratch_processes(since), 20, "the provider apps to end")
    finally:
        await node.stop()
    assert_nothing_left([WORKER_SCRATCH], since)


async def test_a_lost_worker_fails_its_run_and_the_other_worker_takes_it(
    tmp_path: Path,
) -> None:
    """`local:2`: the node starts the cluster itself. A worker killed mid-run
    (its nanny starts a new one, under another address) stops being a compute
    node; its subtask is computed again on the other worker."""
    since = time.time()
    node, recorder = await start_node(tmp_path, "local:2")
    try:
        task = submit(node, tmp_path, b"lost", 2, difficulty=8, search_space=6_000_000)
        run = node.manager.start(task.task_id)
        victim_node = (await computing(recorder)).node_id
        cluster = node._cluster  # the test needs the worker's pid
        assert cluster is not None
        pids = await cluster.client.run(os.getpid)
        victim = node.nodes[victim_node]._runner.worker
        os.kill(pids[victim], signal.SIGKILL)
        final = await asyncio.wait_for(run, 120)
        assert final.state is TaskState.COMPLETED, final.error
        assert cluster.worker_gone(victim)
        subtasks = node.db.subtasks(task.task_id)
        failed = [s for s in subtasks if s.state is SubtaskState.FAILED]
        assert [s.node_id for s in failed] == [victim_node]
        assert "left the cluster" in (failed[0].reason or "")
        verified = [s for s in subtasks if s.state is SubtaskState.VERIFIED]
        assert len(verified) == 2 and victim_node not in {s.node_id for s in verified}
    finally:
        await node.stop()
    await wait_for(lambda: not scratch_processes(since), 20, "the provider apps to end")


async def test_a_worker_that_joins_mid_task_takes_subtasks(tmp_path: Path) -> None:
    """A cluster scaled up while a task runs (as an adaptive one does): the new
    worker becomes a compute node and the running task uses it."""
    cluster = LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=":0",
    )
    try:
        node, recorder = await start_node(tmp_path, str(cluster.scheduler_address))
        try:
            assert sorted(node.nodes) == ["cluster-1"]
            # Six subtasks of about a second each: one worker alone takes a while.
            task = submit(node, tmp_path, b"scaled", 6, difficulty=8, search_space=9_000_000)
            run = node.manager.start(task.task_id)
            await computing(recorder)
            await asyncio.to_thread(cluster.scale, 2)
            await wait_for(lambda: "cluster-2" in node.nodes, 60, "the new worker's node")
            final = await asyncio.wait_for(run, 120)
            assert final.state is TaskState.COMPLETED, final.error
            used = {s.node_id for s in node.db.subtasks(task.task_id)
                    if s.state is SubtaskState.VERIFIED}
            assert used == {"cluster-1", "cluster-2"}
        finally:
            await node.stop()
    finally:
        await asyncio.to_thread(cluster.close)
