"""`python -m tests.node.integration.sleepy_app [--work-dir D] [--host H] provider PORT`.

Compute starts a grandchild in the app's process group that ignores SIGTERM
(so only a SIGKILL of the whole group ends it), writes its pid to
`{subtask_id}/grandchild.pid`, reports progress 0/1 "Naps", and then waits
for ever: only a timeout or a cancel ends it.
"""

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from golem_task_api import progress
from golem_task_api.dirutils import ProviderTaskDir
from golem_task_api.entrypoint import run_app
from golem_task_api.handlers import ProviderAppHandler

GRANDCHILD = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "time.sleep(600)\n"
)


class SleepyProvider(ProviderAppHandler):
    async def compute(
        self, task_work_dir: ProviderTaskDir, subtask_id: str, subtask_params: dict[str, Any]
    ) -> Path:
        child = subprocess.Popen(
            [sys.executable, "-c", GRANDCHILD],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        (task_work_dir.subtask_dir(subtask_id) / "grandchild.pid").write_text(str(child.pid))
        progress.report(0, total=1, unit="Naps")
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def run_benchmark(self, work_dir: Path) -> float:
        return 1.0


def main() -> None:
    run_app(provider_handler=SleepyProvider())


if __name__ == "__main__":
    main()
