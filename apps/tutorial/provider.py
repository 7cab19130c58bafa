"""The provider side: search one range, write the nonces found."""

import json
from pathlib import Path

from apps.tutorial import pow
from apps.tutorial.params import SubtaskParams
from golem_task_api import progress
from golem_task_api.apputils.files import input_file, write_atomically
from golem_task_api.dirutils import ProviderTaskDir
from golem_task_api.handlers import ProviderAppHandler
from golem_task_api.threading import Executor

RESULT_FILE = "result.json"
BENCHMARK_SECONDS = 1.0


class TutorialProviderHandler(ProviderAppHandler):
    async def compute(
        self,
        task_work_dir: ProviderTaskDir,
        subtask_id: str,
        subtask_params: dict,  # type: ignore[type-arg]
    ) -> Path:
        params = SubtaskParams.from_dict(subtask_params)
        data_file = input_file(task_work_dir.subtask_inputs_dir, params.data_file, "resource")
        data = data_file.read_bytes()
        def hashed(done: int) -> None:
            progress.report(done, total=params.size, unit="Hashes")

        hashed(0)
        # In a worker thread, so the server keeps answering while it runs.
        nonces = await Executor.run(
            pow.search, data, params.start, params.end, params.difficulty,
            on_chunk=hashed, should_stop=Executor.is_shutting_down,
        )
        if nonces is None:
            raise InterruptedError("the provider is shutting down")
        # The subtask dir may not exist yet (Golem nodes do not create it).
        output = Path(subtask_id) / RESULT_FILE
        write_atomically(task_work_dir / output, json.dumps({"nonces": nonces}))
        return output

    async def run_benchmark(self, work_dir: Path) -> float:
        """Hashes per second, over about a second."""
        rate = await Executor.run(pow.hash_rate, BENCHMARK_SECONDS)
        return rate if rate is not None else 0.0
