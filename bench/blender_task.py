"""A Blender task through the framework against Blender run by hand.

Ours: 8 frames at 256x256 (the app's demo scene, Cycles, 32 samples, PNG)
as one task of the Blender app: the requestor app as a process
(`python -m apps.blender requestor 0`, LocalProcessService), CreateTask
with 8 subtasks, and 2 providers in parallel: two workers, each with its own
provider dir (as two machines), looping NextSubtask -> copy the inputs ->
a fresh provider process (`python -m apps.blender provider 0`) -> Compute ->
copy the result -> Verify, until nothing is pending. Timed from CreateTask
to the last frame verified in task_outputs/: everything the framework adds
is in it (the scene inspection, Python servers starting, gRPC, the
verification re-renders on the requestor).

Baseline: the same 8 frames by `blender -b scene.blend -o ... -F PNG -f N`,
one after another (what an artist's shell loop does), in the same run.
Reference, not in the ratio: one `blender -b ... -s 1 -e 8 -a` (Blender
started once for all frames).

Sides alternate (the order rotating every round); medians over rounds; the
ratio is the median of per-round ours/baseline. CPU seconds (user + system,
of every process each side started) per frame are printed too.

    python -m bench blender_task
    python -m bench.blender_task [--rounds N] [--samples N] [--subtasks N]
        [--threads-per-provider N]
"""

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from apps.blender import tools
from apps.blender.blender import blender_executable
from bench._common import (
    Summary,
    child_env,
    children_cpu,
    paired_ratios,
    print_table,
)
from golem_task_api.client import LocalProcessService, ProviderAppClient, RequestorAppClient
from golem_task_api.dirutils import ProviderDir, RequestorDir
from golem_task_api.enums import VerifyResult

FRAMES = list(range(1, 9))
RESOLUTION = (256, 256)
DEFAULT_SAMPLES = 32
DEFAULT_ROUNDS = 2
PROVIDERS = 2


class Timings:
    def __init__(self) -> None:
        self.compute = 0.0
        self.verify = 0.0


async def worker(
    index: int, requestor: RequestorAppClient, req_dir: RequestorDir, work: Path,
    task_id: str, env: dict[str, str], timings: Timings,
) -> int:
    """One provider machine: subtasks until none is left; how many it did."""
    prov_dir = ProviderDir(work / f"provider{index}")
    prov_dir.mkdir(parents=True, exist_ok=True)
    task_dir = prov_dir.task_dir(task_id)
    task_dir.prepare(exist_ok=True)
    done = 0
    while await requestor.has_pending_subtasks(task_id):
        subtask_id = uuid.uuid4().hex
        subtask = await requestor.next_subtask(task_id, subtask_id, f"node{index}")
        if subtask is None:
            return done  # the rest is being computed by the other worker
        for name in subtask.resources:  # a node sends each input once per machine
            target = task_dir.subtask_inputs_dir / name
            if not target.exists():
                shutil.copy2(req_dir.task_dir(task_id).subtask_inputs_dir / name, target)
        started = time.perf_counter()
        service = LocalProcessService("apps.blender", task_dir, env=env)
        provider = await ProviderAppClient.create(service, port=0)
        try:
            output = await provider.compute(task_id, subtask_id, subtask.params)
        finally:
            await provider.shutdown()
        timings.compute += time.perf_counter() - started
        outputs = req_dir.subtask_outputs_dir(task_id, subtask_id)
        outputs.mkdir(parents=True, exist_ok=True)
        shutil.copy2(task_dir / output, outputs / Path(output).name)
        started = time.perf_counter()
        verdict, reason = await requestor.verify(task_id, subtask_id)
        timings.verify += time.perf_counter() - started
        if verdict is not VerifyResult.SUCCESS:
            raise RuntimeError(f"subtask {subtask_id} was refused: {reason}")
        done += 1
    return done


async def ours(
    scene: Path, work: Path, subtasks: int, threads: int | None
) -> tuple[float, Timings]:
    env = child_env()
    if threads:
        env["GOLEM_BLENDER_THREADS"] = str(threads)
    req_dir = RequestorDir(work / "requestor")
    req_dir.mkdir(parents=True)
    task_id = "bench"
    timings = Timings()
    service = LocalProcessService("apps.blender", req_dir, env=env)
    requestor = await RequestorAppClient.create(service, port=0)
    try:
        started = time.perf_counter()
        task_dir = req_dir.task_dir(task_id)
        task_dir.prepare()
        shutil.copy2(scene, task_dir.task_inputs_dir / scene.name)
        await requestor.create_task(task_id, subtasks, {
            "scene_file": scene.name, "frames": f"{FRAMES[0]}-{FRAMES[-1]}", "format": "PNG",
        })
        counts = await asyncio.gather(*(
            worker(i, requestor, req_dir, work, task_id, env, timings) for i in range(PROVIDERS)
        ))
        elapsed = time.perf_counter() - started
    finally:
        await requestor.shutdown()
    produced = sorted(p.name for p in task_dir.task_outputs_dir.iterdir())
    if produced != [f"result{f:04d}.png" for f in FRAMES] or sum(counts) != subtasks:
        raise RuntimeError(f"the task ended with {produced} after {counts} subtasks")
    return elapsed, timings


async def blender(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        blender_executable(), "-b", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        code = await process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if code != 0:
        raise RuntimeError(f"blender {' '.join(args)} exited with {code}")


def by_hand(scene: Path, work: Path) -> list[str]:
    work.mkdir(parents=True)
    return [str(scene), "--factory-startup", "-noaudio", "-Y",
            "-o", str(work / "frame####"), "-F", "PNG"]


async def baseline(scene: Path, work: Path) -> float:
    common = by_hand(scene, work)
    started = time.perf_counter()
    for frame in FRAMES:
        await blender(*common, "-f", str(frame))
    return time.perf_counter() - started


async def one_blender(scene: Path, work: Path) -> float:
    common = by_hand(scene, work)
    started = time.perf_counter()
    await blender(*common, "-s", str(FRAMES[0]), "-e", str(FRAMES[-1]), "-a")
    return time.perf_counter() - started


async def warm_up(scene: Path, work: Path) -> None:
    """Unmeasured: one frame by Blender, one start of our app (disk cache,
    bytecode cache of our modules)."""
    await blender(*by_hand(scene, work / "blender"), "-f", str(FRAMES[0]))
    req_dir = work / "requestor"
    req_dir.mkdir()
    service = LocalProcessService("apps.blender", req_dir, env=child_env())
    client = await RequestorAppClient.create(service, port=0)
    await client.shutdown()


async def measure(run: Callable[[Path], Awaitable[float]], work: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the children) of one side."""
    cpu = children_cpu()
    wall = await run(work)
    return wall, children_cpu() - cpu


async def bench(args: argparse.Namespace, root: Path) -> None:
    scene = await tools.demo_scene(
        root / "scene.blend", resolution=RESOLUTION, samples=args.samples, frames=(1, 10)
    )
    split: list[Timings] = []

    async def run_ours(work: Path) -> float:
        elapsed, timings = await ours(scene, work, args.subtasks, args.threads_per_provider)
        split.append(timings)
        return elapsed

    sides: dict[str, Callable[[Path], Awaitable[float]]] = {
        "ours": run_ours,
        "baseline": lambda work: baseline(scene, work),
        "one blender -a": lambda work: one_blender(scene, work),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    await warm_up(scene, root / "warm-up")
    for round_ in range(args.rounds):
        names = list(sides)
        names = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in names:
            results[name].append(await measure(sides[name], root / f"{name}-{round_}"))
            print(f"  round {round_ + 1} {name}: {results[name][-1][0]:.1f} s", flush=True)
    report(args, results, split)


def report(
    args: argparse.Namespace, results: dict[str, list[tuple[float, float]]], split: list[Timings]
) -> None:
    base_wall = [w for w, _ in results["baseline"]]
    print()
    print(f"{len(FRAMES)} frames, {RESOLUTION[0]}x{RESOLUTION[1]}, {args.samples} samples;"
          f" ours: {args.subtasks} subtasks on {PROVIDERS} providers in parallel;"
          f" {args.rounds} rounds")
    rows = []
    for name, values in results.items():
        wall = Summary.of([w for w, _ in values])
        cpu = Summary.of([c / len(FRAMES) for _, c in values])
        ratio = Summary.of(paired_ratios([w for w, _ in values], base_wall))
        rows.append([name, f"{wall.median:.1f} s", f"{wall.low:.1f}..{wall.high:.1f}",
                     f"{ratio.median:.2f}x", f"{cpu.median:.2f} s"])
    print_table(["side", "wall median", "min..max", "vs baseline", "CPU per frame"], rows)
    if split:
        compute = Summary.of([t.compute for t in split]).median
        verify = Summary.of([t.verify for t in split]).median
        print(f"ours, summed over both providers: Compute calls {compute:.1f} s"
              f" (provider start, Blender, packing), Verify calls {verify:.1f} s")
    print("ratio < 1: the framework's parallel gain outweighs its cost (verification"
          " re-renders, process starts); > 1: the other way round.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES)
    parser.add_argument("--subtasks", type=int, default=len(FRAMES),
                        help="subtasks of the task (8: a frame each; 2: four frames each)")
    parser.add_argument("--threads-per-provider", type=int, default=None,
                        help="GOLEM_BLENDER_THREADS for our providers (default: all cores)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-blender-") as tmp:
        asyncio.run(bench(args, Path(tmp)))


if __name__ == "__main__":
    main()
