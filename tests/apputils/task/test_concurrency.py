"""Many tasks from one event loop, and one task from many threads."""

import asyncio
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from golem_task_api.apputils.task import SubtaskStatus
from golem_task_api.apputils.task.database import DBTaskManager, Part


async def test_two_tasks_interleaved_on_one_loop(tmp_path: Path) -> None:
    """The original's bug: a handler awaits between opening its task's database
    and writing to it, another task's handler opens its own database meanwhile,
    and the first write lands in the second task's file (the module-global
    proxy had been re-bound). Both tasks use the same subtask id, as ids are
    only unique within a task, so such a stray write would hit a row."""
    dir_a, dir_b = tmp_path / "task-a", tmp_path / "task-b"
    for task_dir in (dir_a, dir_b):
        with DBTaskManager(task_dir) as manager:
            manager.create_task(1)
            manager.start_subtask(0, "subtask-1")

    a_opened = asyncio.Event()
    b_done = asyncio.Event()

    async def verify_a() -> None:  # the shape of blenderapp's verify
        manager = DBTaskManager(dir_a)
        manager.update_subtask_status("subtask-1", SubtaskStatus.VERIFYING)
        a_opened.set()
        await b_done.wait()  # the verifier runs; other handlers run meanwhile
        manager.update_subtask_status("subtask-1", SubtaskStatus.SUCCESS)
        manager.close()

    async def abort_b() -> None:
        await a_opened.wait()
        manager = DBTaskManager(dir_b)
        manager.update_subtask_status("subtask-1", SubtaskStatus.ABORTED)
        b_done.set()
        manager.close()

    await asyncio.wait_for(asyncio.gather(verify_a(), abort_b()), timeout=10)

    with DBTaskManager(dir_a) as a, DBTaskManager(dir_b) as b:
        assert a.get_subtasks_statuses([0]) == {0: (SubtaskStatus.SUCCESS, "subtask-1")}
        assert b.get_subtasks_statuses([0]) == {0: (SubtaskStatus.ABORTED, "subtask-1")}


async def test_many_tasks_from_loop_and_threads(tmp_path: Path) -> None:
    """A requestor app: per-task managers used from coroutines and worker threads."""
    task_count, parts = 6, 20
    managers = [DBTaskManager(tmp_path / f"task{t}") for t in range(task_count)]
    for manager in managers:
        manager.create_task(parts)

    async def drive(t: int, manager: DBTaskManager[Part]) -> None:
        for n in range(parts):
            subtask_id = f"t{t}-s{n}"
            part = manager.start_next_subtask(subtask_id)
            assert part is not None and part.num == n
            await asyncio.sleep(0)  # let the other tasks' handlers interleave
            # Verification in a worker thread, as CPU-bound verifiers do.
            await asyncio.to_thread(
                manager.update_subtask_status, subtask_id, SubtaskStatus.SUCCESS
            )

    try:
        await asyncio.wait_for(
            asyncio.gather(*(drive(t, m) for t, m in enumerate(managers))), timeout=60
        )
        for t, manager in enumerate(managers):
            statuses = manager.get_subtasks_statuses(range(parts))
            assert statuses == {n: (SubtaskStatus.SUCCESS, f"t{t}-s{n}") for n in range(parts)}
    finally:
        for manager in managers:
            manager.close()


def _hand_out_all_parts(managers: list[DBTaskManager[Part]], parts: int) -> Counter[int]:
    """Threads race to start subtasks until no part is left; returns part -> times started."""
    workers = 8
    barrier = threading.Barrier(workers)

    def worker(w: int) -> list[int]:
        manager = managers[w % len(managers)]
        barrier.wait(timeout=10)
        taken: list[int] = []
        i = 0
        while True:
            part = manager.start_next_subtask(f"w{w}-{i}")
            i += 1
            if part is None:
                return taken
            taken.append(part.num)
            # Readers run concurrently with the writers.
            manager.get_subtasks_statuses(range(parts))

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(worker, range(workers)))
    return Counter(num for taken in results for num in taken)


def test_threads_sharing_one_manager(tmp_path: Path) -> None:
    parts = 200
    with DBTaskManager(tmp_path) as manager:
        manager.create_task(parts)
        taken = _hand_out_all_parts([manager], parts)
        assert taken == Counter(range(parts))
        assert manager.count_parts_by_status()[SubtaskStatus.COMPUTING] == parts


def test_threads_with_a_manager_each(tmp_path: Path) -> None:
    """Separate connections to one file: SQLite's write lock keeps it atomic."""
    parts = 200
    managers = [DBTaskManager(tmp_path) for _ in range(4)]
    try:
        managers[0].create_task(parts)
        taken = _hand_out_all_parts(managers, parts)
        assert taken == Counter(range(parts))
    finally:
        for manager in managers:
            manager.close()
