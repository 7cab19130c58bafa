"""Run one tutorial task end to end with the app's servers as real processes.

The requestor app runs once; a fresh provider app process computes each
subtask; the result lands in OUTPUT/result.json.
"""

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from golem_task_api.client import LocalProcessService
from golem_task_api.testutils import TaskLifecycleUtil


async def run(args: argparse.Namespace) -> Path:
    with tempfile.TemporaryDirectory(prefix="golem-tutorial-") as tmp:
        work = Path(tmp)
        data = work / "data.bin"
        data.write_bytes(os.urandom(64))
        util = TaskLifecycleUtil(work)
        params = {"difficulty": args.difficulty, "search_space": args.search_space,
                  "resources": ["data.bin"]}
        started = time.perf_counter()
        task_dir = await util.simulate_task(
            lambda d: LocalProcessService("apps.tutorial", d), args.subtasks, params, [data]
        )
        args.output.mkdir(parents=True, exist_ok=True)
        for item in task_dir.task_outputs_dir.iterdir():
            shutil.copy2(item, args.output / item.name)
        result = args.output / "result.json"
        found = len(json.loads(result.read_text())["nonces"])
        print(f"{args.subtasks} subtasks, {found} nonces found in"
              f" {time.perf_counter() - started:.2f} s: {result}")
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subtasks", type=int, default=4)
    parser.add_argument("--difficulty", type=int, default=12)
    parser.add_argument("--search-space", type=int, default=400_000)
    parser.add_argument("--output", type=Path, default=Path("out/tutorial"))
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
