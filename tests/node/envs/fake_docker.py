"""A stand-in for the docker CLI: no Docker engine runs on the test machines.

Logs every call (one JSON line per argv) to $FAKE_DOCKER_LOG. `version`
answers, `image inspect` and `rm` succeed, and `run` becomes the app itself
(exec: the "client" gets the signals, as `docker run --sig-proxy` passes
them on), run from the mount's source dir with the command words given.
"""

import json
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def run(argv: list[str]) -> None:
    options: dict[str, str] = {}
    i = 0
    while argv[i].startswith("-"):
        if argv[i] == "--rm" or "=" in argv[i]:
            i += 1
            continue
        options.setdefault(argv[i], argv[i + 1])
        i += 2
    command = argv[i + 1:]
    mount = dict(part.split("=", 1) for part in options["--mount"].split(","))
    host = options["--publish"].rsplit(":", 2)[0]
    os.chdir(REPO_ROOT)
    python = sys.executable
    os.execv(python, [python, "-m", os.environ["FAKE_DOCKER_APP"], "--work-dir",
                      mount["source"], "--host", host, *command])


def main(argv: list[str]) -> int:
    with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\n")
    if argv[0] == "version":
        print("0.0.0-fake")
    elif argv[0] == "run":
        run(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
