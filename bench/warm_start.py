"""Provider warm start: spawn -> SERVING -> Compute reply -> exit, cold vs forked.

Cold: `LocalProcessService` (`python -m bench.apps.trivial_app ... provider 0`).
Warm: the same app through `WarmStartEnvironment`, each provider forked from
the app's template (started once, before the measured rounds). Floor:
`python -c "import grpc"`, spawn to exit. Each side is driven the same way,
by our `ProviderAppClient` (create = start + wait for SERVING, compute =
reply + wait for the exit), in interleaved rounds whose order rotates; every
process gets the same environment (bytecode cache on, `bench._common.child_env`).

    python -m bench warm_start
    python -m bench.warm_start [--runs N]
"""

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench._common import REPO_ROOT, Summary, child_env, paired_ratios, print_table
from golem_task_api.client import LocalProcessService, ProviderAppClient, TaskApiService
from golem_task_api.node.envs import AppSpec, WarmProcessService, WarmStartEnvironment

TARGET = 0.25
DEFAULT_RUNS = 20
APP = "bench.apps.trivial_app"


async def one_provider(service: TaskApiService, subtask_id: str) -> float:
    """Seconds from start to the provider's exit after its one Compute."""
    start = time.perf_counter()
    client = await ProviderAppClient.create(service, port=0)
    try:
        await client.compute("task", subtask_id, {})
    finally:
        await client.shutdown()
    elapsed = time.perf_counter() - start
    if service.running():
        raise RuntimeError("the provider is still running after its Compute")
    return elapsed


async def import_grpc(env: dict[str, str]) -> float:
    start = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import grpc", cwd=REPO_ROOT, env=env
    )
    if await process.wait() != 0:
        raise RuntimeError("python -c 'import grpc' failed")
    return time.perf_counter() - start


async def measure(runs: int) -> dict[str, list[float]]:
    env = child_env()
    app = AppSpec(name="trivial", module=APP, cwd=REPO_ROOT, env=env)
    times: dict[str, list[float]] = {"cold": [], "warm": [], "floor": []}
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        root = Path(tmp)
        warm_env = WarmStartEnvironment(root / "logs")
        try:
            reason = await warm_env.warm_up(app)
            if reason is not None:
                raise RuntimeError(f"no warm start for {APP}: {reason}")
            counter = 0

            def work_dir() -> Path:
                nonlocal counter
                counter += 1
                path = root / f"w{counter}"
                path.mkdir()
                return path

            async def cold() -> float:
                service = LocalProcessService(APP, work_dir(), env=env, cwd=REPO_ROOT)
                return await one_provider(service, f"c{counter}")

            async def warm() -> float:
                service = warm_env.service(app, work_dir(), "provider")
                assert isinstance(service, WarmProcessService)
                elapsed = await one_provider(service, f"w{counter}")
                if service.mode != "warm":
                    raise RuntimeError(f"a warm start fell back: {service.fallback_reason}")
                return elapsed

            async def floor() -> float:
                return await import_grpc(env)

            sides: list[tuple[str, Callable[[], Awaitable[float]]]] = [
                ("cold", cold), ("warm", warm), ("floor", floor),
            ]
            # One unmeasured round fills the bytecode cache and warms the node.
            for i in range(runs + 1):
                shift = i % len(sides)
                for name, side in sides[shift:] + sides[:shift]:
                    elapsed = await side()
                    if i > 0:
                        times[name].append(elapsed)
        finally:
            await warm_env.aclose()
    return times


def report(times: dict[str, list[float]], runs: int) -> None:
    cold, warm, floor = (Summary.of(times[k]) for k in ("cold", "warm", "floor"))
    ratios = Summary.of(paired_ratios(times["warm"], times["cold"]))
    print(f"Provider warm start: spawn -> SERVING -> Compute reply -> exit, {runs} interleaved"
          " rounds (ms; spread = p10..p90)")
    rows = [
        ["cold (LocalProcessService)", f"{1000 * cold.median:.1f}",
         f"{1000 * cold.p10:.1f}..{1000 * cold.p90:.1f}"],
        ["warm (forked from template)", f"{1000 * warm.median:.1f}",
         f"{1000 * warm.p10:.1f}..{1000 * warm.p90:.1f}"],
        ['floor (python -c "import grpc")', f"{1000 * floor.median:.1f}",
         f"{1000 * floor.p10:.1f}..{1000 * floor.p90:.1f}"],
    ]
    print_table(["side", "median ms", "spread"], rows)
    verdict = "ok" if warm.median / cold.median <= TARGET else "ABOVE TARGET"
    print(f"ratio warm/cold: {warm.median / cold.median:.3f}x of the medians,"
          f" {ratios.median:.3f}x median of paired ratios ({ratios.low:.3f}..{ratios.high:.3f});"
          f" target <= {TARGET:.2f}x: {verdict}")
    print(f"warm start vs the floor: {warm.median / floor.median:.2f}x of"
          " `python -c \"import grpc\"`")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.warm_start",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS,
                        help=f"measured rounds per side (default {DEFAULT_RUNS})")
    args = parser.parse_args([] if argv is None else argv)
    report(asyncio.run(measure(args.runs)), args.runs)


if __name__ == "__main__":
    main(sys.argv[1:])
