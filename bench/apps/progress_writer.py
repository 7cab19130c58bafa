"""A child process that writes progress lines, as Blender or ffmpeg would.

    python -m bench.apps.progress_writer SPEC_JSON

SPEC: {"count": N, "min_gap": s, "max_gap": s, "seed": int, "mode": "message"|"done",
       "mirror": path or null, "stamps": path or null}

Writes N JSON lines to "$GOLEM_PROGRESS_FILE" (append, open/write/close per
line, like `echo ... >> "$GOLEM_PROGRESS_FILE"`), sleeping a random gap in
[min_gap, max_gap] before each. Each line carries its write time
(time.time_ns(), taken right before the write):
- mode "message": {"done": i, "total": N, "message": "<ns>"}: a new message
  per line, which the server sends at once whatever the throttle;
- mode "done": {"done": i, "total": N}: only done moves, so the throttle
  (update_interval) applies.
The write times also go to the `stamps` file ("i ns" lines) at the end.
`mirror`: the same line is appended there too (for the Argo-style poller).
"""

import json
import os
import random
import sys
import time


def append(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def main() -> None:
    spec = json.loads(sys.argv[1])
    path = os.environ["GOLEM_PROGRESS_FILE"]
    rng = random.Random(spec.get("seed", 0))
    count = spec["count"]
    stamps = []
    for i in range(1, count + 1):
        time.sleep(rng.uniform(spec["min_gap"], spec["max_gap"]))
        now = time.time_ns()
        if spec["mode"] == "message":
            line = {"done": i, "total": count, "message": str(now)}
        else:
            line = {"done": i, "total": count}
        stamps.append(f"{i} {now}\n")
        data = (json.dumps(line) + "\n").encode()
        append(path, data)
        if spec.get("mirror"):
            mirrored = {"done": i, "total": count, "message": str(now)}
            append(spec["mirror"], (json.dumps(mirrored) + "\n").encode())
    if spec.get("stamps"):
        with open(spec["stamps"], "w") as f:
            f.writelines(stamps)


if __name__ == "__main__":
    main()
