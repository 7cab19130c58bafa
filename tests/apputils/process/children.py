"""Child programs for the process tests, and ways to wait on them without sleeping blind."""

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil  # type: ignore[import-untyped, unused-ignore]

PYTHON = sys.executable
MIB = 2**20

# Writes {"pids": [...]} atomically to argv[1] once its processes are up,
# then (optionally) waits until the file argv[2] exists.
READY_PRELUDE = """
import json, os, sys, time
def ready(pids):
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"pids": pids}, f)
    os.replace(tmp, sys.argv[1])
def wait_release():
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.01)
"""


def script(body: str) -> list[str]:
    return [PYTHON, "-c", READY_PRELUDE + body]


async def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        await asyncio.sleep(0.01)


async def ready_pids(path: Path) -> list[int]:
    await wait_until(path.exists)
    pids: list[int] = json.loads(path.read_text())["pids"]
    return pids


def running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
