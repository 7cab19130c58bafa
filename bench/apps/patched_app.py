"""The trivial app with experimental changes patched in at run time.

    python -m bench.apps.patched_app PATCH[,PATCH...] [trivial_app arguments...]

How the benchmarks measure what a suggested change to the framework would
gain, without editing `golem_task_api/` (other engineers own it): each patch
imitates one suggestion in this process only. PATCH is one of:

  lazy-package       `golem_task_api/__init__` resolves its public names on
                     first use (PEP 562) instead of importing the client
                     side (client, LocalProcessService, asyncio.subprocess...)
  no-reflection      the server does not import or register gRPC reflection
  fast-exit          after the server stopped: run the atexit handlers,
                     shut logging down, flush stdio, then `os._exit` (no
                     interpreter finalization: module teardown, final GC)
  freeze-exit        after the server stopped: `gc.freeze()`, then the usual
                     `sys.exit` (the final collections skip every object)
  records-open-fd    a task record keeps its append-only file open instead
                     of open/write/close per change
  records-in-memory  a task record writes nothing (upper bound of any
                     records speed-up; not a proposal)
  timestamps         prints `bench-ts NAME SECONDS` lines (time.perf_counter,
                     the system-wide CLOCK_MONOTONIC on Linux) to stderr at
                     the steps of a provider's life
  none               nothing

Patches that change imports must run before anything imports the framework,
so this module imports nothing of it at the top.
"""
# ruff: noqa: PLC0415 - the framework is imported only after the patches

import atexit
import gc
import importlib
import importlib.util
import json
import logging
import os
import sys
import time
import types
from typing import Any

PATCHES = (
    "lazy-package", "no-reflection", "fast-exit", "freeze-exit",
    "records-open-fd", "records-in-memory", "timestamps", "none",
)

# What `golem_task_api/__init__.py` exports, and where each name lives.
_PUBLIC = {
    "AppLifecycleHandler": "golem_task_api.handlers",
    "ProviderAppHandler": "golem_task_api.handlers",
    "RequestorAppHandler": "golem_task_api.handlers",
    "ProviderAppClient": "golem_task_api.client",
    "RequestorAppClient": "golem_task_api.client",
    "TaskApiService": "golem_task_api.client",
}


def stamp(name: str) -> None:
    os.write(2, f"bench-ts {name} {time.perf_counter():.6f}\n".encode())


def lazy_package() -> None:
    spec = importlib.util.find_spec("golem_task_api")
    assert spec is not None and spec.submodule_search_locations is not None
    package = types.ModuleType("golem_task_api", "(bench: lazily resolved public names)")
    package.__path__ = list(spec.submodule_search_locations)
    package.__file__ = spec.origin
    package.__spec__ = spec
    package.__package__ = "golem_task_api"

    def __getattr__(name: str) -> Any:
        if name == "constants":
            return importlib.import_module("golem_task_api.constants")
        module = _PUBLIC.get(name)
        if module is None:
            raise AttributeError(f"module 'golem_task_api' has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules["golem_task_api"] = package


def no_reflection() -> None:
    stub = types.ModuleType("grpc_reflection.v1alpha.reflection", "(bench: no reflection)")
    stub.SERVICE_NAME = "grpc.reflection.v1alpha.ServerReflection"  # type: ignore[attr-defined]
    stub.enable_server_reflection = lambda service_names, server: None  # type: ignore[attr-defined]
    sys.modules["grpc_reflection.v1alpha.reflection"] = stub
    # `from grpc_reflection.v1alpha import reflection` looks up the package
    # attribute first: make the package a stub too, so nothing real loads.
    package = types.ModuleType("grpc_reflection.v1alpha")
    package.__path__ = []
    package.reflection = stub  # type: ignore[attr-defined]
    sys.modules.setdefault("grpc_reflection", types.ModuleType("grpc_reflection"))
    sys.modules["grpc_reflection.v1alpha"] = package


def fast_exit() -> None:
    from golem_task_api import entrypoint

    def _exit(code: int, *_role: str) -> None:
        if "timestamps" in active:
            stamp("exit")
        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    entrypoint._exit = _exit


def freeze_exit() -> None:
    from golem_task_api import entrypoint

    exit_ = entrypoint._exit

    def _exit(code: int, *role: str) -> None:
        if "timestamps" in active:
            stamp("exit")
        gc.freeze()
        exit_(code, *role)

    entrypoint._exit = _exit


def append_nothing(self: Any, *entry: str) -> None:
    """TaskRecord._append that writes nothing."""


def append_open(self: Any, *entry: str) -> None:
    """TaskRecord._append on a file descriptor kept open (one write per change)."""
    data = (json.dumps(entry) + "\n").encode("utf-8")
    fd = self.__dict__.get("_bench_fd")
    if fd is None:
        fd = self._bench_fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, data)


def records(in_memory: bool) -> None:
    from golem_task_api.server import task_records

    task_records.TaskRecord._append = append_nothing if in_memory else append_open


def timestamps() -> None:
    """Stamps at: imports done, serving, compute done, stop begun and ended, exit."""
    from golem_task_api import entrypoint
    from golem_task_api.server import app_server, provider

    stamp("imports")
    start, stop = app_server.AppServer.start, app_server.AppServer.stop
    compute = provider.ProviderAppServicer.compute
    exit_ = entrypoint._exit

    async def timed_start(self: Any) -> None:
        await start(self)
        stamp("serving")

    async def timed_stop(self: Any, grace: float | None = None) -> None:
        stamp("stop-begin")
        await stop(self, grace)
        stamp("stop-end")

    async def timed_compute(self: Any, request: Any) -> str:
        result = await compute(self, request)
        stamp("compute-done")
        return result

    def timed_exit(code: int, *role: str) -> None:
        stamp("exit")
        exit_(code, *role)

    app_server.AppServer.start = timed_start  # type: ignore[method-assign]
    app_server.AppServer.stop = timed_stop  # type: ignore[method-assign]
    provider.ProviderAppServicer.compute = timed_compute  # type: ignore[method-assign]
    if not active & {"fast-exit", "freeze-exit"}:
        entrypoint._exit = timed_exit


active: set[str] = set()


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(f"usage: python -m bench.apps.patched_app PATCH[,PATCH...] ARGS...\n{__doc__}")
    names = {p for p in sys.argv[1].split(",") if p}
    unknown = names.difference(PATCHES)
    if unknown:
        sys.exit(f"unknown patches {sorted(unknown)}; known: {', '.join(PATCHES)}")
    active.update(names)
    del sys.argv[1]
    if "timestamps" in active:
        stamp("main")
    # Import-changing patches first, then those that patch loaded modules.
    if "lazy-package" in active:
        lazy_package()
    if "no-reflection" in active:
        no_reflection()
    if "fast-exit" in active:
        fast_exit()
    elif "freeze-exit" in active:
        freeze_exit()
    if active & {"records-open-fd", "records-in-memory"}:
        records(in_memory="records-in-memory" in active)
    if "timestamps" in active:
        timestamps()
    from bench.apps import trivial_app

    trivial_app.main()


if __name__ == "__main__":
    main()
