"""sample_app, writing a line longer than a StreamReader's limit before it serves.

With NOISY_APP_FIFO set it never serves: it writes "started" to that FIFO
(once its long line is out) and waits for ever.
"""

import os
import sys
import time

from tests.node.envs.sample_app.__main__ import main as sample_main

LONG_LINE = 300_000  # over asyncio's 64 KiB line limit


def main(argv: list[str] | None = None) -> None:
    sys.stdout.write("#" * LONG_LINE + "\n")
    sys.stdout.flush()
    fifo = os.environ.get("NOISY_APP_FIFO")
    if fifo:
        with open(fifo, "w") as signal:
            signal.write("started\n")
        time.sleep(600)
    sample_main(argv)


if __name__ == "__main__":
    main()
