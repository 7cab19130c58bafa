"""Run the benchmarks: `python -m bench [NAME ...]`, `python -m bench --list`.

A benchmark is any module `bench/NAME.py` whose name does not start with
`_` and that defines `main() -> None` (it prints its own report). Without
names, every benchmark runs, in alphabetical order. Each one runs in a fresh
Python process (`import bench.NAME; bench.NAME.main()`), so that one cannot
warm up, slow down or break the next; a failure is reported and the others
still run. The exit code is 1 if any benchmark failed.
"""

import argparse
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
CLEANUP_TIMEOUT = 30.0


def discover() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(BENCH_DIR)])
        if not info.ispkg and not info.name.startswith("_")
    )


def run_one(name: str) -> tuple[int, float]:
    """(exit code, seconds) of `bench.NAME.main()` in a child process."""
    code = (
        "import importlib, sys\n"
        f"module = importlib.import_module('bench.{name}')\n"
        "if not callable(getattr(module, 'main', None)):\n"
        f"    sys.exit('bench.{name} has no main()')\n"
        "module.main()\n"
    )
    start = time.perf_counter()
    # Same session: Ctrl-C reaches the benchmark too, which then stops the
    # servers it started; give it the time to (subprocess.run would SIGKILL
    # it after 0.25 s and leave those servers behind).
    process = subprocess.Popen([sys.executable, "-c", code], cwd=BENCH_DIR.parent)
    try:
        exit_code = process.wait()
    except KeyboardInterrupt:
        try:
            process.wait(timeout=CLEANUP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise
    return exit_code, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    available = discover()
    if args.list:
        print("\n".join(available))
        return 0
    names = [n.removeprefix("bench.").removesuffix(".py") for n in args.names] or available
    unknown = [n for n in names if n not in available]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(available)}")
    outcomes = []
    start = time.perf_counter()
    try:
        for name in names:
            print(f"\n=== bench.{name} ===", flush=True)
            outcomes.append((name, *run_one(name)))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    print(f"\n=== summary ({time.perf_counter() - start:.0f} s) ===")
    for name, code, seconds in outcomes:
        print(f"{name:<32} {'ok' if code == 0 else f'FAILED (exit {code})':<16} {seconds:6.1f} s")
    return 0 if all(code == 0 for _, code, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
