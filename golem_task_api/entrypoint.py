"""Starting an app: `main()` (the original API) and the app command line.

An app's `__main__` is typically::

    from golem_task_api.entrypoint import run_app
    run_app(requestor_handler=MyRequestor(), provider_handler=MyProvider())

which accepts `[--work-dir DIR] [--host HOST] [--log-level LEVEL]
requestor|provider PORT`, exactly as a Golem node runs an app's image.
"""

import argparse
import asyncio
import atexit
import concurrent.futures
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler, RequestorAppHandler
from golem_task_api.server import AppServer, ProviderAppServer, RequestorAppServer
from golem_task_api.server.app_server import DEFAULT_HOST

logger = logging.getLogger("golem_task_api.entrypoint")

ROLES = ("requestor", "provider")
# The line on stdout that tells a launcher where the server listens.
ANNOUNCE_PREFIX = "golem-task-api-listening "
DEFAULT_WORK_DIR = Path("/golem/work")
# How long worker threads may take to end once the server has stopped.
THREAD_GRACE = 1.0


class CommandError(ValueError):
    """The command line does not name a role and a port."""


def parse_command(argv: Sequence[str]) -> tuple[str, int, list[str]]:
    """(role, port, ignored extra words) of `['requestor', '50005', ...]`."""
    words = [str(w) for w in argv]
    if len(words) < 2 or words[0] not in ROLES:
        raise CommandError(
            f"expected 'requestor PORT' or 'provider PORT', got {' '.join(words)!r}"
        )
    try:
        port = int(words[1])
    except ValueError:
        raise CommandError(f"PORT must be a number, got {words[1]!r}") from None
    if not 0 <= port <= 65535:
        raise CommandError(f"PORT must be 0-65535 (0 picks a free port), got {port}")
    return words[0], port, words[2:]


def announce_line(role: str, host: str, port: int) -> str:
    info = {"role": role, "host": host, "port": port, "pid": os.getpid()}
    return ANNOUNCE_PREFIX + json.dumps(info)


def parse_announce_line(line: str) -> dict[str, object] | None:
    if not line.startswith(ANNOUNCE_PREFIX):
        return None
    try:
        info = json.loads(line[len(ANNOUNCE_PREFIX):])
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


@contextlib.contextmanager
def _signals_request_shutdown(lifecycle: AppLifecycleHandler) -> Iterator[None]:
    """SIGTERM and SIGINT stop the server cleanly (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, lifecycle.request_shutdown)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def make_server(
    work_dir: Path,
    role: str,
    port: int,
    *,
    requestor_handler: RequestorAppHandler | None = None,
    requestor_lifecycle_handler: AppLifecycleHandler | None = None,
    provider_handler: ProviderAppHandler | None = None,
    provider_lifecycle_handler: AppLifecycleHandler | None = None,
    host: str = DEFAULT_HOST,
) -> AppServer:
    if role == "requestor":
        if requestor_handler is None:
            raise CommandError("this app has no requestor handler")
        return RequestorAppServer(
            work_dir, port, requestor_handler,
            requestor_lifecycle_handler or AppLifecycleHandler(), host=host,
        )
    if provider_handler is None:
        raise CommandError("this app has no provider handler")
    return ProviderAppServer(
        work_dir, port, provider_handler,
        provider_lifecycle_handler or AppLifecycleHandler(), host=host,
    )


async def main(
    work_dir: Path,
    argv: Sequence[str],
    requestor_handler: RequestorAppHandler | None = None,
    requestor_lifecycle_handler: AppLifecycleHandler | None = None,
    provider_handler: ProviderAppHandler | None = None,
    provider_lifecycle_handler: AppLifecycleHandler | None = None,
    *,
    host: str = DEFAULT_HOST,
    announce: bool = True,
    on_started: Callable[[AppServer], None] | None = None,
) -> None:
    """Start the server named by argv, serve until shutdown, stop it."""
    role, port, extra = parse_command(argv)
    if extra:
        logger.warning("ignoring extra arguments: %s", " ".join(extra))
    server = make_server(
        Path(work_dir), role, port,
        requestor_handler=requestor_handler,
        requestor_lifecycle_handler=requestor_lifecycle_handler,
        provider_handler=provider_handler,
        provider_lifecycle_handler=provider_lifecycle_handler,
        host=host,
    )
    with _signals_request_shutdown(server.lifecycle):
        await server.start()
        try:
            if announce:
                print(announce_line(role, host, server.port), flush=True)
            if on_started is not None:
                on_started(server)
            await server.wait_until_shutdown()
        finally:
            await server.stop()
            # The stopped server's reference cycles would keep the handlers
            # (and files they hold open) alive until a garbage collection
            # that a provider's fast exit skips: let them go by refcount.
            server.release_handlers()


def _arg_parser(default_work_dir: Path) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Run a Golem Task API app server.")
    parser.add_argument("--work-dir", type=Path, default=default_work_dir,
                        help=f"the app's work dir (default {default_work_dir})")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: all interfaces)")
    parser.add_argument("--log-level", default=os.environ.get("GOLEM_TASK_API_LOG_LEVEL", "INFO"),
                        help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("port", type=int, help="port to listen on; 0 picks a free one")
    return parser


def run_app(
    requestor_handler: RequestorAppHandler | None = None,
    provider_handler: ProviderAppHandler | None = None,
    *,
    requestor_lifecycle_handler: AppLifecycleHandler | None = None,
    provider_lifecycle_handler: AppLifecycleHandler | None = None,
    argv: Sequence[str] | None = None,
    default_work_dir: Path = DEFAULT_WORK_DIR,
) -> None:
    """The command line of an app; exits the process when the server stops."""
    args, unknown = _arg_parser(default_work_dir).parse_known_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if unknown:
        logger.warning("ignoring unknown arguments: %s", " ".join(unknown))
    coro = main(
        args.work_dir, [args.role, str(args.port)],
        requestor_handler, requestor_lifecycle_handler,
        provider_handler, provider_lifecycle_handler,
        host=args.host,
    )
    code = 0
    try:
        _run_to_end(coro)
    except (CommandError, OSError) as exc:
        logger.error("%s", exc)
        code = 1
    _exit(code, args.role)


def _run_to_end(coro: "asyncio.Future[None] | object") -> None:
    loop = asyncio.new_event_loop()
    # Ours, so that it can be shut down without waiting for a handler thread
    # that ignores cancellation (loop.shutdown_default_executor() would).
    executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="golem-task-api")
    loop.set_default_executor(executor)
    try:
        loop.run_until_complete(coro)  # type: ignore[arg-type]
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        loop.close()


def _threads_still_running(grace: float) -> list[threading.Thread]:
    """Non-daemon threads that do not end within `grace` seconds (idle pool
    workers end at once once their pool is shut down)."""
    deadline = time.monotonic() + grace
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    return [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]


def _exit(code: int, role: str) -> None:
    """End the process once the server has stopped.

    A requestor exits normally: its teardown cost is nothing next to its
    life, and files its handlers keep open are flushed by it. A one-shot
    provider freezes its objects out of the final garbage collection, the
    slowest part of its start-to-exit time (its results are complete before
    Compute replies). A handler thread that ignores cancellation would
    block any normal exit: then the exit is hard, after the exit handlers.
    """
    stuck = _threads_still_running(THREAD_GRACE)
    if stuck:
        logger.warning("exiting with %d worker threads still running", len(stuck))
        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if role == "provider":
        gc.freeze()
    else:
        # The stopped server's reference cycles hold the handlers: collected
        # now, the handlers die with the frames below, and their files are
        # flushed (a last collection at exit is not guaranteed).
        gc.collect()
    sys.exit(code)


async def entrypoint(
    work_dir: Path,
    argv: Sequence[str],
    requestor_handler: RequestorAppHandler | None = None,
    requestor_lifecycle_handler: AppLifecycleHandler | None = None,
    provider_handler: ProviderAppHandler | None = None,
    provider_lifecycle_handler: AppLifecycleHandler | None = None,
    log_level: str | int | None = None,
) -> None:
    """The spelling of releases up to 0.24.5 (`api.entrypoint(...)`, `api.main`),
    which also configured logging."""
    if log_level is not None:
        level = log_level.upper() if isinstance(log_level, str) else log_level
        logging.basicConfig(level=level, stream=sys.stderr)
    await main(
        work_dir, argv, requestor_handler, requestor_lifecycle_handler,
        provider_handler, provider_lifecycle_handler,
    )


class _CallableModule(types.ModuleType):
    """Old apps call the module itself: `golem_task_api.entrypoint(...)`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return entrypoint(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule


__all__ = [
    "ANNOUNCE_PREFIX",
    "DEFAULT_WORK_DIR",
    "CommandError",
    "announce_line",
    "entrypoint",
    "main",
    "make_server",
    "parse_announce_line",
    "parse_command",
    "run_app",
]
