"""Provider cold start: spawn -> SERVING -> Compute reply -> process exit.

Ours: `python -m bench.apps.trivial_app --host 127.0.0.1 --work-dir D
provider 0`. Baseline: `python -m bench.apps.oneshot_server D`, a minimal
one-shot grpc.aio server (Health + one Compute-like RPC, then exit; no
framework). Floor: `python -c "import grpc"`. One driver runs every side the
same way (spawn, read the announce line, Health.Check until SERVING, call
Compute, wait for the exit), in interleaved rounds whose order rotates.

Then where our time goes: the phases of those runs (spawn -> announce ->
SERVING -> reply -> exit), the import cost that only ours pays (`-X
importtime`, per module, against the baseline's), and in-process stamps of
the steps between the reply and the exit (`bench.apps.patched_app
timestamps`).

    python -m bench provider_cold_start
    python -m bench.provider_cold_start [--runs N] [--client]
        [--patched PATCH[,PATCH...]]...    (see bench/apps/patched_app.py)

`--client` adds ours driven by our own ProviderAppClient + LocalProcessService;
each `--patched` adds ours with a suggested change patched in at run time,
so its gain is measured in the same interleaved rounds.
"""

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench._common import (
    REPO_ROOT,
    Summary,
    child_env,
    children_cpu,
    kill_group,
    one_shot_server,
    paired_ratios,
    percentile,
    print_table,
    python_module,
)
from golem_task_api.client import LocalProcessService, ProviderAppClient
from golem_task_api.proto import golem_task_api_pb2 as pb

TARGET = 1.1
DEFAULT_RUNS = 20
IMPORT_RUNS = 9
STAMP_RUNS = 10
COMPUTE_METHOD = "/golem_task_api.ProviderApp/Compute"
APP = "bench.apps.trivial_app"
PHASES = ("announce", "serving", "reply", "exit")


@dataclass
class Run:
    """perf_counter() marks of one run, relative to the spawn."""

    marks: dict[str, float] = field(default_factory=dict)
    stamps: dict[str, float] = field(default_factory=dict)
    cpu: float = 0.0  # user + system seconds of the server process

    @property
    def total(self) -> float:
        return self.marks["exit"]


RunFn = Callable[[Path, int], Awaitable[Run]]


async def announced_run(argv: list[str], env: dict[str, str], work_dir: Path, i: int) -> Run:
    """Spawn a one-shot server, make it SERVING, call Compute, see it exit."""
    async with one_shot_server(argv, env, work_dir) as server:
        run = Run()
        run.marks["announce"] = server.announced
        run.marks["serving"] = server.serving
        compute = server.channel.unary_unary(
            COMPUTE_METHOD,
            request_serializer=pb.ComputeRequest.SerializeToString,
            response_deserializer=pb.ComputeReply.FromString,
        )
        request = pb.ComputeRequest(task_id="task", subtask_id=f"sub{i}", subtask_params_json="{}")
        result = await compute(request, timeout=10)
        run.marks["reply"] = time.perf_counter() - server.t0
        code = await asyncio.wait_for(server.process.wait(), 10)
        run.marks["exit"] = time.perf_counter() - server.t0
        run.cpu = children_cpu() - server.cpu0
        output = (work_dir / result.output_filepath).read_bytes()
        if code != 0 or output != b"ok\n":
            raise RuntimeError(f"{argv}: exit code {code}, result {output!r}")
        server.log.seek(0)
        for line in server.log.read().decode("utf-8", "replace").splitlines():
            if line.startswith("bench-ts "):
                _, name, value = line.split()
                run.stamps[name] = float(value) - server.t0
        return run


def announced(argv_of: Callable[[Path], list[str]], env: dict[str, str]) -> RunFn:
    async def run(work_dir: Path, i: int) -> Run:
        return await announced_run(argv_of(work_dir), env, work_dir, i)

    return run


def floor(env: dict[str, str]) -> RunFn:
    async def run(work_dir: Path, i: int) -> Run:
        return await floor_run(env)

    return run


async def floor_run(env: dict[str, str]) -> Run:
    cpu0 = children_cpu()
    t0 = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import grpc", cwd=REPO_ROOT, env=env, start_new_session=True
    )
    try:
        code = await process.wait()
    finally:
        if process.returncode is None:
            kill_group(process.pid, 9)
            await process.wait()
    if code != 0:
        raise RuntimeError(f"python -c 'import grpc' exited with {code}")
    return Run({"exit": time.perf_counter() - t0}, cpu=children_cpu() - cpu0)


def client(env: dict[str, str]) -> RunFn:
    async def run(work_dir: Path, i: int) -> Run:
        return await client_run(env, work_dir, i)

    return run


async def client_run(env: dict[str, str], work_dir: Path, i: int) -> Run:
    """Ours as a node drives it: LocalProcessService + ProviderAppClient."""
    service = LocalProcessService(APP, work_dir, cwd=REPO_ROOT, env=env)
    cpu0 = children_cpu()
    t0 = time.perf_counter()
    try:
        client = await ProviderAppClient.create(service, port=0)
        try:
            path = await client.compute("task", f"sub{i}", {})  # returns after the exit
            t_exit = time.perf_counter() - t0
        finally:
            await client.shutdown()
    finally:
        if service.pid is not None and service.running():
            kill_group(service.pid, 9)
    if service.returncode != 0 or (work_dir / path).read_bytes() != b"ok\n":
        raise RuntimeError(f"ours via client: exit code {service.returncode}")
    return Run({"exit": t_exit}, cpu=children_cpu() - cpu0)


def ours_argv(work_dir: Path) -> list[str]:
    return python_module(APP, "--host", "127.0.0.1", "--work-dir", str(work_dir), "provider", "0")


def baseline_argv(work_dir: Path) -> list[str]:
    return python_module("bench.apps.oneshot_server", str(work_dir), "127.0.0.1")


def patched_argv(patches: str) -> Callable[[Path], list[str]]:
    def argv(work_dir: Path) -> list[str]:
        return python_module(
            "bench.apps.patched_app", patches,
            "--host", "127.0.0.1", "--work-dir", str(work_dir), "provider", "0",
        )

    return argv


async def interleaved(sides: dict[str, RunFn], runs: int, tmp: Path) -> dict[str, list[Run]]:
    """`runs` rounds; every round runs each side once, in a rotating order."""
    names = list(sides)
    results: dict[str, list[Run]] = {name: [] for name in names}
    # One unmeasured round: warms the page cache and .pyc files.
    for i in range(-1, runs):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            work_dir = tmp / f"{name.replace(' ', '_')}-{i + 1}"
            work_dir.mkdir()
            run = await sides[name](work_dir, i + 1)
            if i >= 0:
                results[name].append(run)
            shutil.rmtree(work_dir, ignore_errors=True)
    return results


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f}"


def report_totals(results: dict[str, list[Run]], runs: int) -> None:
    base = [r.total for r in results["baseline"]]
    base_cpu = statistics.median(r.cpu for r in results["baseline"])
    print(f"Provider cold start: spawn -> SERVING -> Compute reply -> exit, {runs} interleaved"
          " runs per side (ms; ratio = median of the ratios to the baseline run of the same"
          " round; CPU = user + system time of the server process, less sensitive to load)")
    rows = []
    for name, side_runs in results.items():
        totals = [r.total for r in side_runs]
        s = Summary.of(totals)
        ratio = Summary.of(paired_ratios(totals, base))
        cpu = statistics.median(r.cpu for r in side_runs)
        target = ""
        if name == "ours":
            target = f"<= {TARGET:.2f}x " + ("ok" if ratio.median <= TARGET else "ABOVE TARGET")
        rows.append([
            name, ms(s.median), ms(s.p90), f"{ms(s.low)}..{ms(s.high)}",
            f"{ratio.median:.2f}x", f"{ratio.p10:.2f}..{ratio.p90:.2f}",
            ms(cpu), f"{cpu / base_cpu:.2f}x", target,
        ])
    print_table(["side", "median", "p90", "min..max", "vs baseline", "p10..p90", "CPU",
                 "CPU ratio", "target"], rows)


def report_phases(results: dict[str, list[Run]]) -> None:
    print("\nPhases (median ms, measured by the driver from the spawn):")
    rows = []
    for name in ("ours", "baseline"):
        side_runs = results[name]
        row = [name]
        previous = [0.0] * len(side_runs)
        for phase in PHASES:
            now = [r.marks[phase] for r in side_runs]
            row.append(ms(statistics.median(b - a for a, b in zip(previous, now, strict=True))))
            previous = now
        rows.append(row)
    rows.append(["ours - baseline", *(
        f"{int(a) - int(b):+d}" for a, b in zip(rows[0][1:], rows[1][1:], strict=True)
    )])
    print_table(["side", "spawn->announce", "->SERVING", "->Compute reply", "reply->exit"], rows)


# --- imports ----------------------------------------------------------------

_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def import_tree(module: str, env: dict[str, str]) -> list[tuple[str, int, int, int]]:
    """(name, depth, self us, cumulative us) of `python -X importtime -c 'import M'`."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True, timeout=60,
    )
    tree = []
    for line in done.stderr.splitlines():
        m = _IMPORT_LINE.match(line)
        if m:
            tree.append((m[4], len(m[3]) // 2, int(m[1]), int(m[2])))
    return tree


IMPORT_SIDES = {
    "ours": "import bench.apps.trivial_app",
    "ours +lazy-package": "import bench.apps.patched_app as p; p.lazy_package();"
                          " import bench.apps.trivial_app",
    "ours +no-reflection": "import bench.apps.patched_app as p; p.no_reflection();"
                           " import bench.apps.trivial_app",
    "ours +lazy-package,no-reflection": "import bench.apps.patched_app as p; p.lazy_package();"
                                        " p.no_reflection(); import bench.apps.trivial_app",
    "baseline": "import bench.apps.oneshot_server",
}


def import_wall_time(statement: str, env: dict[str, str]) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, check=True, timeout=60)
    return float(done.stdout)


def report_imports(runs: int, env: dict[str, str]) -> None:
    ours_mod, base_mod = APP, "bench.apps.oneshot_server"
    wall: dict[str, list[float]] = {name: [] for name in IMPORT_SIDES}
    selfs: dict[str, dict[str, list[int]]] = {
        ours_mod: defaultdict(list), base_mod: defaultdict(list),
    }
    parent_of: dict[str, str] = {}
    for i in range(runs):
        names = list(IMPORT_SIDES)
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            wall[name].append(import_wall_time(IMPORT_SIDES[name], env))
        for module in (ours_mod, base_mod):
            tree = import_tree(module, env)
            stack: list[str] = []
            # importtime prints a module after its children: walk backwards
            # so that each module's importer comes before it.
            for name, depth, self_us, _cum in reversed(tree):
                del stack[depth - 1:]
                if module == ours_mod and stack:
                    parent_of.setdefault(name.removeprefix("golem_task_api.proto."), stack[-1])
                stack.append(name)
                # The baseline loads our generated messages without the package.
                selfs[module][name.removeprefix("golem_task_api.proto.")].append(self_us)
    ours_self = {n: statistics.median(v) for n, v in selfs[ours_mod].items()}
    base_self = {n: statistics.median(v) for n, v in selfs[base_mod].items()}
    only_ours = {n: us for n, us in ours_self.items() if n not in base_self}
    base_wall = wall["baseline"]
    print(f"\nImport of the app module (wall ms in a fresh process, {runs} interleaved runs;"
          " patches from bench/apps/patched_app.py):")
    print_table(["side", "median", "p10..p90", "minus baseline"], [
        [name, ms(statistics.median(values)),
         f"{ms(percentile(values, 10))}..{ms(percentile(values, 90))}",
         f"{1000 * statistics.median(a - b for a, b in zip(values, base_wall, strict=True)):+.0f}"]
        for name, values in wall.items()
    ])
    print(f"-X importtime sums: ours {sum(ours_self.values()) / 1000:.0f} ms,"
          f" baseline {sum(base_self.values()) / 1000:.0f} ms (inflated by the tracing)")
    print(f"Modules only ours imports: {len(only_ours)}, {sum(only_ours.values()) / 1000:.1f} ms"
          " of -X importtime self time; biggest groups (first importer of the group's root):")
    groups: dict[str, float] = defaultdict(float)
    for name, us in only_ours.items():
        groups[_group(name)] += us
    rows = []
    for group, us in sorted(groups.items(), key=lambda kv: -kv[1])[:12]:
        root = min((n for n in only_ours if _group(n) == group), key=len)
        rows.append([group, f"{us / 1000:.1f}", parent_of.get(root, "-")])
    print_table(["group", "ms", "imported by"], rows)


def _group(name: str) -> str:
    parts = name.split(".")
    if parts[0] == "golem_task_api":
        return "golem_task_api." + (parts[1] + ".*" if parts[1:2] in (["client"], ["server"])
                                    else "* (other)")
    if parts[0] in ("grpc_reflection", "grpc", "google"):
        return ".".join(parts[:2])
    return parts[0].lstrip("_")


# --- exit path --------------------------------------------------------------

STAMP_STEPS = [
    ("spawn -> interpreter runs the app", None, "main"),
    ("imports (framework + grpc)", "main", "imports"),
    ("server start -> SERVING", "imports", "serving"),
    ("compute done -> stop() begins", "compute-done", "stop-begin"),
    ("stop() (health, drain, grpc stop)", "stop-begin", "stop-end"),
    ("driver sees the Compute reply", None, "reply"),
    ("stop() -> _exit() (loop close...)", "stop-end", "exit"),
    ("_exit() -> process reaped", "exit", "exit-seen"),
]


def report_stamps(results: dict[str, list[Run]]) -> None:
    print("\nIn-process steps (bench.apps.patched_app timestamps; median ms):")
    names = list(results)
    rows = []
    for label, start, end in STAMP_STEPS:
        row = [label]
        for name in names:
            values = []
            for run in results[name]:
                points = {**run.stamps, "reply": run.marks["reply"], "exit-seen": run.marks["exit"]}
                values.append(points[end] - (points[start] if start else 0.0))
            row.append(f"{1000 * statistics.median(values):.1f}")
        rows.append(row)
    print_table(["step", *names], rows)


# --- entry points -----------------------------------------------------------


async def measure(
    runs: int, with_client: bool, patched: list[str], env: dict[str, str], no_pyc_side: bool
) -> None:
    sides: dict[str, RunFn] = {
        "ours": announced(ours_argv, env),
        "baseline": announced(baseline_argv, env),
        "floor: import grpc": floor(env),
    }
    if with_client:
        sides["ours via our client"] = client(env)
    for patches in patched:
        sides[f"ours +{patches}"] = announced(patched_argv(patches), env)
    if no_pyc_side:
        no_cache = child_env(cached_bytecode=False)
        no_cache["PYTHONDONTWRITEBYTECODE"] = "1"
        sides["ours, no .pyc (compiles every start)"] = announced(ours_argv, no_cache)
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        results = await interleaved(sides, runs, Path(tmp))
        report_totals(results, runs)
        report_phases(results)
        report_imports(IMPORT_RUNS, env)
        stamp_sides = {
            "ours": announced(patched_argv("timestamps"), env),
            "ours +fast-exit": announced(patched_argv("timestamps,fast-exit"), env),
        }
        report_stamps(await interleaved(stamp_sides, STAMP_RUNS, Path(tmp)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.provider_cold_start",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS,
                        help=f"measured runs per side (default {DEFAULT_RUNS})")
    parser.add_argument("--client", action="store_true",
                        help="add ours driven by ProviderAppClient + LocalProcessService")
    parser.add_argument("--patched", action="append", default=[], metavar="PATCHES",
                        help="add ours with these patches (bench/apps/patched_app.py)")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="inherit PYTHONDONTWRITEBYTECODE etc. (see bench._common.child_env)")
    parser.add_argument("--no-pyc-side", action="store_true",
                        help="add ours with PYTHONDONTWRITEBYTECODE=1 and no bytecode cache")
    args = parser.parse_args([] if argv is None else argv)
    env = child_env(cached_bytecode=not args.no_bytecode_cache)
    if env.get("PYTHONPYCACHEPREFIX") != os.environ.get("PYTHONPYCACHEPREFIX"):
        print(f"(children use the bytecode cache {env['PYTHONPYCACHEPREFIX']})")
    asyncio.run(measure(args.runs, args.client, args.patched, env, args.no_pyc_side))


if __name__ == "__main__":
    main(sys.argv[1:])
