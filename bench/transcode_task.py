"""A real transcode through the framework, against one ffmpeg run of the same video.

A 20 s video (ffmpeg's testsrc2, 1920x1080, 25 fps, 1 s GOPs, AAC audio) is
transcoded to H.264 1280x720, preset medium, CRF 23, in MP4 (the most common
rung of a streaming ladder):

- **Ours**: the transcode app, as a node would run it on this machine: the
  requestor app is a `python -m apps.transcode requestor` process (started
  before the clock starts: it serves many tasks); CreateTask cuts the video
  into 4 segments; 2 slots work in parallel, each taking a segment at a
  time: NextSubtask, copy the segment, start a
  `python -m apps.transcode provider` process, Compute, copy the result,
  Verify (ffprobe + sampled PSNR); the last Verify merges. The clock stops
  when the merged file is in task_outputs.
- **Baseline**: one `ffmpeg` of the whole video with the very same encoder
  options (the app's own `encode_command`), audio copied.

Interleaved rounds (the order rotating), after an unmeasured warm-up round
of ours. Printed: wall times and their ratio (median of per-round ratios),
where our time goes, and CPU time of each side (its processes and theirs),
which a busy machine disturbs less than wall time. On two cores the
baseline's ffmpeg already uses both: splitting cannot beat it here, it only
shows the framework's overhead; with providers on other machines the
segments' encodes would run side by side.

    python -m bench transcode_task
    python -m bench.transcode_task [--rounds N] [--seconds S] [--segments N] [--slots N]
"""

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import REPO_ROOT, Summary, child_env, paired_ratios, print_table
from golem_task_api.client import LocalProcessService, ProviderAppClient, RequestorAppClient
from golem_task_api.dirutils import ProviderDir, RequestorDir
from golem_task_api.enums import VerifyResult

APP = "apps.transcode"
SOURCE_SIZE = "1920x1080"
TARGET = (1280, 720)
RATE = 25
TASK_ID = "bench"
PARAMS: dict[str, Any] = {
    "input": "source.mp4", "codec": "h264", "container": "mp4", "resolution": "1280x720",
    "preset": "medium", "crf": 23,
}  # fmt: skip
DEFAULT_ROUNDS = 3
DEFAULT_SECONDS = 20
DEFAULT_SEGMENTS = 4
DEFAULT_SLOTS = 2


@dataclass
class OursRun:
    wall: float = 0.0
    create: float = 0.0
    computes: list[float] = field(default_factory=list)  # provider start + Compute
    verifies: list[float] = field(default_factory=list)  # the last one merges
    cpu: float = 0.0


@contextmanager
def children_cpu(into: list[float]) -> Iterator[None]:
    """CPU seconds of the child processes reaped within the block."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    yield
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    into.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)


def generate(path: Path, seconds: int) -> None:
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={SOURCE_SIZE}:rate={RATE}:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", str(RATE), "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-shortest", str(path),
        ],
        check=True,
    )  # fmt: skip


def baseline_command(source: Path, output: Path, frames: int, seconds: float) -> list[str]:
    """ffmpeg of the whole video, with the encoder options a provider uses."""
    sys.path.insert(0, str(REPO_ROOT))
    from apps.transcode.encode import encode_command  # noqa: PLC0415
    from apps.transcode.params import SubtaskParams  # noqa: PLC0415

    params = SubtaskParams(
        segment=source.name, output=output.name, codec=PARAMS["codec"],
        container=PARAMS["container"], width=TARGET[0], height=TARGET[1], bitrate=None,
        crf=PARAMS["crf"],
        preset=PARAMS["preset"], keyint=None, frames=frames, duration=seconds,
    )  # fmt: skip
    command = encode_command(params, source, output)
    # Audio copied too, as the merge does; no progress lines to read.
    at = command.index("-an")
    command[at : at + 1] = ["-map", "0:a?", "-c:a", "copy"]
    at = command.index("-progress")
    del command[at : at + 2]
    return command


def run_baseline(source: Path, work: Path, frames: int, seconds: float) -> tuple[float, float]:
    output = work / "baseline.mp4"
    cpu: list[float] = []
    with children_cpu(cpu):
        started = time.perf_counter()
        subprocess.run(baseline_command(source, output, frames, seconds), check=True)
        wall = time.perf_counter() - started
    output.unlink()
    return wall, cpu[0]


async def run_ours(source: Path, work: Path, segments: int, slots: int) -> OursRun:
    run = OursRun()
    shutil.rmtree(work, ignore_errors=True)
    req_dir = RequestorDir(work / "requestor")
    req_dir.mkdir(parents=True)
    cpu: list[float] = []
    with children_cpu(cpu):
        service = LocalProcessService(APP, req_dir, env=child_env(), cwd=REPO_ROOT)
        client = await RequestorAppClient.create(service, port=0)
        try:
            task_dir = req_dir.task_dir(TASK_ID)
            task_dir.prepare()
            shutil.copy2(source, task_dir.task_inputs_dir / PARAMS["input"])
            started = time.perf_counter()
            await client.create_task(TASK_ID, segments, PARAMS)
            run.create = time.perf_counter() - started
            await asyncio.gather(*(
                slot_worker(client, req_dir, ProviderDir(work / f"slot{n}"), f"slot{n}", run)
                for n in range(slots)
            ))  # fmt: skip
            assert not await client.has_pending_subtasks(TASK_ID)
            run.wall = time.perf_counter() - started
            assert (task_dir.task_outputs_dir / "source.mp4").is_file()
        finally:
            await client.shutdown()
    run.cpu = cpu[0]
    return run


async def slot_worker(
    client: RequestorAppClient, req_dir: RequestorDir, prov_dir: ProviderDir, node: str,
    run: OursRun,
) -> None:
    """One provider slot: a segment at a time until none is left to hand out."""
    prov_dir.mkdir(parents=True, exist_ok=True)
    while True:
        subtask_id = str(uuid.uuid4())
        subtask = await client.next_subtask(TASK_ID, subtask_id, node)
        if subtask is None:
            return
        task_dir = prov_dir.task_dir(TASK_ID)
        task_dir.prepare(exist_ok=True)
        for name in subtask.resources:
            shutil.copy2(req_dir.task_dir(TASK_ID).subtask_inputs_dir / name,
                         task_dir.subtask_inputs_dir / name)  # fmt: skip
        started = time.perf_counter()
        service = LocalProcessService(APP, task_dir, env=child_env(), cwd=REPO_ROOT)
        provider = await ProviderAppClient.create(service, port=0)
        output = await provider.compute(TASK_ID, subtask_id, subtask.params)
        run.computes.append(time.perf_counter() - started)
        outputs = req_dir.subtask_outputs_dir(TASK_ID, subtask_id)
        outputs.mkdir(parents=True)
        shutil.copy2(task_dir / output, outputs / output.name)
        started = time.perf_counter()
        verdict, reason = await client.verify(TASK_ID, subtask_id)
        run.verifies.append(time.perf_counter() - started)
        if verdict is not VerifyResult.SUCCESS:
            raise RuntimeError(f"segment {subtask.params['segment']} failed: {reason}")


def count_frames(path: Path) -> tuple[int, float]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
         "stream=nb_read_packets:format=duration", "-of", "default=nw=1:nk=1", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    return int(out[0]), float(out[1])


async def measure(rounds: int, seconds: int, segments: int, slots: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-transcode-") as tmp:
        root = Path(tmp)
        source = root / "source.mp4"
        print(f"generating a {seconds} s {SOURCE_SIZE} video...", flush=True)
        generate(source, seconds)
        frames, duration = count_frames(source)
        print(f"transcoding {frames} frames to H.264 {TARGET[0]}x{TARGET[1]} (medium, CRF 23);"
              f" ours: {segments} segments, {slots} slots; {os.cpu_count()} CPUs", flush=True)
        # Warm-up (unmeasured): the bytecode cache, the page cache, ffmpeg's libraries.
        await run_ours(source, root / "ours", segments, slots)
        ours: list[OursRun] = []
        base: list[tuple[float, float]] = []
        for n in range(rounds):
            sides = ["ours", "baseline"] if n % 2 == 0 else ["baseline", "ours"]
            for side in sides:
                if side == "ours":
                    ours.append(await run_ours(source, root / "ours", segments, slots))
                else:
                    base.append(run_baseline(source, root, frames, duration))
            print(f"round {n + 1}: ours {ours[-1].wall:.2f} s, baseline {base[-1][0]:.2f} s",
                  flush=True)  # fmt: skip
        report(ours, base, frames)


def report(ours: list[OursRun], base: list[tuple[float, float]], frames: int) -> None:
    ours_wall = Summary.of([r.wall for r in ours])
    base_wall = Summary.of([b[0] for b in base])
    ratios = Summary.of(paired_ratios([r.wall for r in ours], [b[0] for b in base]))
    ours_cpu = Summary.of([r.cpu for r in ours])
    base_cpu = Summary.of([b[1] for b in base])
    print()
    print_table(
        ["side", "wall median (s)", "p10-p90 (s)", "frames/s", "CPU median (s)", "CPU ms/frame"],
        [
            ["ours", f"{ours_wall.median:.2f}", f"{ours_wall.p10:.2f}-{ours_wall.p90:.2f}",
             f"{frames / ours_wall.median:.0f}", f"{ours_cpu.median:.2f}",
             f"{1000 * ours_cpu.median / frames:.1f}"],
            ["baseline (one ffmpeg)", f"{base_wall.median:.2f}",
             f"{base_wall.p10:.2f}-{base_wall.p90:.2f}", f"{frames / base_wall.median:.0f}",
             f"{base_cpu.median:.2f}", f"{1000 * base_cpu.median / frames:.1f}"],
        ],
    )  # fmt: skip
    cpu_ratio = statistics.median(r.cpu / b[1] for r, b in zip(ours, base, strict=True))
    print(f"\nwall ratio ours/baseline: {ratios.median:.2f}"
          f" (p10-p90 {ratios.p10:.2f}-{ratios.p90:.2f}); CPU ratio {cpu_ratio:.2f}")
    print("\nwhere our time goes (medians over rounds, seconds):")
    print_table(
        ["CreateTask (probe, cut)", "provider start + Compute", "Verify",
         "last Verify (with merge)"],
        [[
            f"{statistics.median(r.create for r in ours):.2f}",
            f"{statistics.median(c for r in ours for c in r.computes):.2f}",
            f"{statistics.median(v for r in ours for v in r.verifies[:-1]):.2f}",
            f"{statistics.median(r.verifies[-1] for r in ours):.2f}",
        ]],
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.transcode_task",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--seconds", type=int, default=DEFAULT_SECONDS)
    parser.add_argument("--segments", type=int, default=DEFAULT_SEGMENTS)
    parser.add_argument("--slots", type=int, default=DEFAULT_SLOTS)
    args = parser.parse_args([] if argv is None else argv)
    asyncio.run(measure(args.rounds, args.seconds, args.segments, args.slots))


if __name__ == "__main__":
    main(sys.argv[1:])
