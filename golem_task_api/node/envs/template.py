"""The warm-start template: an app imported once, forked for each provider.

The node starts one per app (`template_argv()`): a Python that imports the
framework and the app's `__main__` module, checks that forking it is safe
(one thread, no gRPC channel or server, no event loop), says `ready`, then
waits for requests on a Unix socket (SOCK_SEQPACKET, inherited from the
node). A `spawn` request carries the app's arguments, cwd and environment,
and three file descriptors for the child's stdin, stdout and stderr. The
template forks; the child starts a session of its own, takes those fds and
calls the app's `main(argv)`, exactly what `python -m APP ARGS` would do
after its imports. The template answers `spawned` with the child's pid and
a pidfd (the node is not its parent, but can wait on that), reaps it, and
reports `exited` with its exit code.

This module runs in the template before anything else is imported, so it
imports the standard library only; the node imports it for the protocol.
"""

import atexit
import contextlib
import gc
import importlib
import importlib.util
import inspect
import json
import os
import selectors
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, NoReturn

# --- protocol ----------------------------------------------------------------

MAX_MESSAGE = 1 << 20
MAX_FDS = 8
# Modules every child needs and would otherwise import after the fork.
PRELOAD = (
    "grpc",
    "grpc.aio",
    "grpc_health.v1._async",
    "grpc_reflection.v1alpha.reflection",
    "golem_task_api.entrypoint",
    "golem_task_api.server",
    "golem_task_api.ssl",
    "concurrent.futures.thread",
    "logging",
    "argparse",
)

Message = dict[str, Any]


def send(sock: socket.socket, message: Message, fds: Sequence[int] = ()) -> None:
    socket.send_fds(sock, [json.dumps(message).encode()], list(fds))


def receive(sock: socket.socket) -> tuple[Message | None, list[int]]:
    """One message and its fds; (None, []) at the end of the stream."""
    data, fds, flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            os.close(fd)
        raise ValueError("truncated message on the template socket")
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    message = json.loads(data)
    if not isinstance(message, dict):
        raise ValueError(f"not a message: {data[:80]!r}")
    return message, list(fds)


# Loads this file without importing its packages: whatever the node's
# `__init__` modules import must not end up in every provider (nor start
# threads in the template). sys.path[0] is the cwd, as for `python -m`.
BOOTSTRAP = (
    "import importlib.util as u, os, sys\n"
    "sys.path[0] = os.getcwd()\n"
    "s = u.spec_from_file_location('_golem_task_api_template', sys.argv[1])\n"
    "m = u.module_from_spec(s)\n"
    "s.loader.exec_module(m)\n"
    "m.main(sys.argv[2:])\n"
)


def template_argv(python: str, control_fd: int, app_module: str) -> list[str]:
    return [python, "-c", BOOTSTRAP, os.path.abspath(__file__), str(control_fd), app_module]


# --- safety checks -----------------------------------------------------------


def thread_count() -> int:
    """Threads of this process, native ones (gRPC's) included."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def thread_hazard() -> str | None:
    count = thread_count()
    if count <= 1:
        return None
    names = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    which = (f"Python threads {', '.join(names)}" if names
             else "native threads only: did importing the app start gRPC?")
    return f"the template has {count} threads ({which}); forking it is unsafe"


def state_hazard() -> str | None:
    """gRPC objects or an open event loop left over by the imports.

    A child would inherit their fds and half of their threads; gRPC must
    only ever be initialised after the fork.
    """
    import asyncio  # noqa: PLC0415 - the app imported it already

    import grpc  # noqa: PLC0415
    import grpc.aio  # noqa: PLC0415

    kinds: tuple[type, ...] = (grpc.Channel, grpc.Server, grpc.aio.Channel, grpc.aio.Server)
    for obj in gc.get_objects():
        if isinstance(obj, kinds):
            return f"importing the app created a gRPC {type(obj).__qualname__}"
        if isinstance(obj, asyncio.AbstractEventLoop) and not obj.is_closed():
            return "importing the app created an event loop"
    return None


# --- the child ---------------------------------------------------------------


def find_main(app_module: str) -> ModuleType:
    """`APP.__main__` for a package, APP itself for a module run with -m."""
    spec = importlib.util.find_spec(app_module)
    if spec is None:
        raise ImportError(f"no module named {app_module}")
    name = f"{app_module}.__main__" if spec.submodule_search_locations is not None else app_module
    return importlib.import_module(name)


def _call_main(entry: Callable[..., object], argv: list[str]) -> None:
    try:
        takes_argv = bool(inspect.signature(entry).parameters)
    except (TypeError, ValueError):
        takes_argv = False
    if takes_argv:
        entry(argv)
    else:
        entry()  # reads sys.argv, which the child has set


def _exit_code(code: object) -> int:
    """What the interpreter makes of `SystemExit(code)`."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _finish(code: int) -> NoReturn:
    """What interpreter shutdown would do that matters, then exit.

    Non-daemon threads are joined and atexit handlers run, as at a normal
    exit; the rest of the finalisation (freeing every module) is skipped.
    """
    with contextlib.suppress(BaseException):
        threading._shutdown()  # type: ignore[attr-defined]
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(code)


def run_child(
    app_main: ModuleType,
    args: list[str],
    cwd: str,
    env: dict[str, str],
    stdio: list[int],
    template_fds: list[int],
) -> NoReturn:
    """In the forked child: become `python -m APP ARGS`, never return."""
    code = 1
    try:
        # Own session and group first: the node stops a provider by its group.
        os.setsid()
        for fd in template_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        for fd in set(stdio):
            if fd > 2:
                os.close(fd)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = [getattr(app_main, "__file__", None) or app_main.__name__, *args]
        sys.modules["__main__"] = app_main
        try:
            _call_main(app_main.main, args)
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc.code)
        except KeyboardInterrupt:
            # As the interpreter does: die of SIGINT, so the parent sees it.
            traceback.print_exc()
            sys.stderr.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        except BaseException:
            traceback.print_exc()
            code = 1
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    _finish(code)


# --- the template ------------------------------------------------------------


class Template:
    def __init__(self, sock: socket.socket, app_main: ModuleType) -> None:
        self.sock = sock
        self.app_main = app_main
        # poll(2), not epoll: no descriptor of its own for the children to inherit.
        self.selector = selectors.PollSelector()
        # pidfd -> (request id, pid)
        self.children: dict[int, tuple[int, int]] = {}

    def serve(self) -> None:
        self.selector.register(self.sock, selectors.EVENT_READ, None)
        while True:
            for key, _events in self.selector.select():
                if key.data is None:
                    if not self.handle_request():
                        return
                else:
                    self.reap(key.fd)

    def handle_request(self) -> bool:
        message, fds = receive(self.sock)
        if message is None:
            return False
        try:
            if message.get("op") == "spawn":
                self.spawn(message, fds)
            else:
                send(self.sock, {"op": "error", "reason": f"unknown request {message.get('op')}"})
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        return True

    def spawn(self, request: Message, stdio: list[int]) -> None:
        request_id = int(request["id"])
        hazard = thread_hazard()
        if hazard is None and len(stdio) != 3:
            hazard = f"expected 3 file descriptors, got {len(stdio)}"
        if hazard is not None:
            send(self.sock, {"op": "refused", "id": request_id, "reason": hazard})
            return
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        template_fds = [self.sock.fileno(), *self.children]
        pid = os.fork()
        if pid == 0:
            run_child(
                self.app_main, [str(a) for a in request["args"]], str(request["cwd"]),
                {str(k): str(v) for k, v in request["env"].items()}, stdio, template_fds,
            )
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (request_id, pid)
        self.selector.register(pidfd, selectors.EVENT_READ, "child")
        send(self.sock, {"op": "spawned", "id": request_id, "pid": pid}, [pidfd])

    def reap(self, pidfd: int) -> None:
        request_id, pid = self.children.pop(pidfd)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _pid, status = os.waitpid(pid, 0)
        send(self.sock, {
            "op": "exited", "id": request_id, "pid": pid,
            "returncode": os.waitstatus_to_exitcode(status),
        })


def prepare(app_module: str) -> tuple[ModuleType | None, str | None]:
    """(the app's main module, None) or (None, why this app cannot be forked)."""
    # A module whose server runs at import (no `if __name__ == "__main__"`)
    # would parse this argv and exit instead of serving in the template.
    sys.argv = [f"golem-task-api-template:{app_module}"]
    try:
        for name in PRELOAD:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        app_main = find_main(app_module)
    except SystemExit:
        return None, (f"importing {app_module} ran it (its __main__ must call main() only"
                      " under `if __name__ == '__main__':`)")
    except BaseException as exc:
        return None, f"cannot import {app_module}: {type(exc).__name__}: {exc}"
    if getattr(app_main, "WARM_START", True) is False:
        return None, f"{app_main.__name__} sets WARM_START = False"
    if not callable(getattr(app_main, "main", None)):
        return None, f"{app_main.__name__} has no main(argv) function"
    hazard = thread_hazard() or state_hazard()
    if hazard is not None:
        return None, hazard
    _warm_caches()
    return app_main, None


def _warm_caches() -> None:
    """Fill caches every child would fill again: re's compiled patterns (argparse)."""
    import argparse  # noqa: PLC0415 - the framework imported it already

    with contextlib.suppress(BaseException):
        parser = argparse.ArgumentParser(prog="warm-up")
        parser.add_argument("--work-dir")
        parser.add_argument("role")
        parser.parse_known_args(["--work-dir", "x", "provider", "0"])


def main(argv: list[str]) -> None:
    control_fd, app_module = int(argv[0]), argv[1]
    sock = socket.socket(fileno=control_fd)
    app_main, reason = prepare(app_module)
    if app_main is None:
        send(sock, {"op": "declined", "reason": reason})
        return
    # Objects that exist now are shared with every child: keep the collector
    # off them, or its first pass in each child copies every page.
    gc.collect()
    gc.freeze()
    send(sock, {"op": "ready", "pid": os.getpid()})
    Template(sock, app_main).serve()


__all__ = ["BOOTSTRAP", "PRELOAD", "main", "receive", "send", "template_argv"]
