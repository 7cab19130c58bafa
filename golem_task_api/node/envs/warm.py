"""Warm start: fork each provider from a template that has imported its app.

A cold provider spends most of its start-up importing Python, gRPC, the
framework and the app. A template process per app (`template.py`) does that
once; each provider is then a fork of it that only starts its server. The
node sees the same thing as with `LocalProcessService`: an announce line on
a pipe, a process group to signal, an exit to wait for (through a pidfd,
since the node is not the child's parent).

Cold starts stay the fallback whenever a fork is not possible: the app opts
out (`AppSpec.warm_start=False`, or `WARM_START = False` in its
`__main__`), the template found forking unsafe (threads, gRPC objects or an
event loop left by the app's imports), could not import the app, or died.
A dead template is restarted in the background and the provider that found
it dead starts cold.
"""

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from golem_task_api.client.local_process import LocalProcessService
from golem_task_api.client.process_service import (
    START_TIMEOUT,
    STOP_GRACE,
    Launched,
    ProcessService,
    SubprocessLaunch,
)
from golem_task_api.client.service import TaskApiService
from golem_task_api.node.envs import template as wire
from golem_task_api.node.envs.base import (
    DOCKER_ENV_IDS,
    AppSpec,
    Availability,
    ProcessEnvironment,
    Role,
    default_log_path,
)
from golem_task_api.node.envs.local import LOOPBACK
from golem_task_api.process_group import ExitWatch, signal_group

logger = logging.getLogger("golem_task_api.node.envs.warm")

TEMPLATE_READY_TIMEOUT = 30.0
SPAWN_TIMEOUT = 10.0
# A template that dies this many times in a row before serving is given up.
MAX_TEMPLATE_FAILURES = 3
# The exit code arrives from the template right after the pidfd fires.
_RETURNCODE_WAIT = 2.0

Mode = Literal["warm", "cold"]


class TemplateUnavailable(Exception):
    """The template cannot fork this provider; the message says why."""


class TemplateDeclined(TemplateUnavailable):
    """The template will never fork this app (opt-out, unsafe, import error)."""


@dataclass
class Spawned:
    """A child the template forked: its pid, a pidfd on it, its exit code to come."""

    pid: int
    pidfd: int
    returncode: "asyncio.Future[int | None]"


class TemplateProcess:
    """The node's end of one template: start it, ask it to fork, notice its death."""

    def __init__(
        self,
        app: AppSpec,
        *,
        python: str = sys.executable,
        cwd: Path,
        env: Mapping[str, str] | None,
        log_path: Path | None = None,
    ) -> None:
        self.app = app
        self._python = python
        self._cwd = cwd
        self._env = dict(env) if env is not None else None
        self.log_path = log_path
        self._process: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._hello: asyncio.Future[wire.Message] | None = None
        self._pending: dict[int, asyncio.Future[Spawned]] = {}
        self._exits: dict[int, asyncio.Future[int | None]] = {}
        self._next_id = 1
        self.ready = False
        self.dead = False
        self.death_reason = ""

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self, timeout: float = TEMPLATE_READY_TIMEOUT) -> None:
        """Return once it is ready; `TemplateDeclined`/`TemplateUnavailable` if not."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        log: IO[bytes] | None = None
        try:
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                log = self.log_path.open("ab")
            self._process = await asyncio.create_subprocess_exec(
                *wire.template_argv(self._python, theirs.fileno(), self.app.module),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log if log is not None else asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self._cwd,
                env=self._env,
                # Neither the node's terminal nor a group kill meant for a
                # provider may reach the template.
                start_new_session=True,
                pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
            if log is not None:
                log.close()
        ours.setblocking(False)
        self._sock = ours
        self._hello = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_readable)
        try:
            hello = await asyncio.wait_for(asyncio.shield(self._hello), timeout)
        except TimeoutError:
            await self.aclose(kill=True)
            raise TemplateUnavailable(
                f"the warm-start template of {self.app.module} was not ready in {timeout:g} s"
            ) from None
        except BaseException:
            await self.aclose(kill=True)
            raise
        if hello.get("op") != "ready":
            await self.aclose()
            raise TemplateDeclined(str(hello.get("reason") or hello))
        self.ready = True

    async def spawn(
        self,
        args: list[str],
        cwd: Path,
        env: Mapping[str, str],
        stdio: list[int],
        timeout: float = SPAWN_TIMEOUT,
    ) -> Spawned:
        """Fork a child running `main(args)` with these stdin/stdout/stderr fds."""
        if self.dead or self._sock is None:
            raise TemplateUnavailable(f"the warm-start template is gone ({self.death_reason})")
        request_id = self._next_id
        self._next_id += 1
        request = {"op": "spawn", "id": request_id, "args": args, "cwd": str(cwd), "env": dict(env)}
        future: asyncio.Future[Spawned] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            wire.send(self._sock, request, stdio)
        except OSError as exc:
            # Also BlockingIOError: a template that does not read is no use.
            self._pending.pop(request_id, None)
            self._die(f"its socket failed: {exc}")
            self.kill()
            raise TemplateUnavailable(
                f"the warm-start template is gone ({self.death_reason})"
            ) from None
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            self._die(f"it did not answer a spawn request in {timeout:g} s")
            self.kill()
            raise TemplateUnavailable(
                f"the warm-start template hangs ({self.death_reason})"
            ) from None
        except BaseException:
            # Cancelled: a child forked meanwhile is ours to stop (a late
            # `spawned` finds the future cancelled and kills it too).
            if future.done() and not future.cancelled() and future.exception() is None:
                _kill_orphan(future.result())
            future.cancel()
            raise
        finally:
            self._pending.pop(request_id, None)

    def _on_readable(self) -> None:
        sock = self._sock
        while sock is not None and not self.dead:
            try:
                message, fds = wire.receive(sock)
            except BlockingIOError:
                return
            except (OSError, ValueError) as exc:
                self._die(f"its socket failed: {exc}")
                return
            if message is None:
                self._die("it exited")
                return
            self._dispatch(message, fds)

    def _dispatch(self, message: wire.Message, fds: list[int]) -> None:
        op = message.get("op")
        request_id = int(message.get("id", 0))
        if op in ("ready", "declined"):
            if self._hello is not None and not self._hello.done():
                self._hello.set_result(message)
        elif op == "spawned" and fds:
            exit_code: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
            self._exits[request_id] = exit_code
            spawned = Spawned(int(message["pid"]), fds[0], exit_code)
            future = self._pending.get(request_id)
            if future is not None and not future.done():
                future.set_result(spawned)
            else:
                _kill_orphan(spawned)
            fds = fds[1:]
        elif op == "refused":
            # Only ever for a hazard that will not go away (threads).
            future = self._pending.get(request_id)
            if future is not None and not future.done():
                future.set_exception(TemplateDeclined(str(message.get("reason"))))
        elif op == "exited":
            exit_future = self._exits.pop(request_id, None)
            if exit_future is not None and not exit_future.done():
                exit_future.set_result(int(message["returncode"]))
        else:
            logger.warning("unexpected message from the warm-start template: %s", message)
        for fd in fds:
            os.close(fd)

    def _die(self, reason: str) -> None:
        if self.dead:
            return
        self.dead = True
        self.ready = False
        self.death_reason = reason
        if self._sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        gone = TemplateUnavailable(f"the warm-start template is gone ({reason})")
        if self._hello is not None and not self._hello.done():
            self._hello.set_exception(gone)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(gone)
        for exit_future in self._exits.values():
            if not exit_future.done():
                exit_future.set_result(None)
        self._exits.clear()

    def kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()

    async def aclose(self, *, kill: bool = False, timeout: float = 5.0) -> None:
        """Stop it: closing the socket makes it exit; its children live on."""
        self._die("closed by the node")
        process = self._process
        if process is None:
            return
        if kill:
            self.kill()
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            self.kill()
            await process.wait()


def _kill_orphan(spawned: Spawned) -> None:
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(spawned.pidfd, signal.SIGKILL)
    signal_group(spawned.pid, signal.SIGKILL)
    os.close(spawned.pidfd)


class ForkedLaunch(Launched):
    """A provider forked by a template: waited for and signalled via its pidfd."""

    def __init__(
        self, spawned: Spawned, output: asyncio.StreamReader, transport: asyncio.BaseTransport
    ) -> None:
        self.pid = spawned.pid
        self.output = output
        self._watch = ExitWatch(spawned.pidfd)
        self._returncode = spawned.returncode
        self._transport = transport

    def exited(self) -> bool:
        return self._watch.exited.done()

    async def wait(self) -> None:
        await asyncio.shield(self._watch.exited)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._returncode), _RETURNCODE_WAIT)

    @property
    def returncode(self) -> int | None:
        if self._returncode.done() and not self._returncode.cancelled():
            return self._returncode.result()
        return None

    def _signal(self, sig: int) -> None:
        # Until the child has called setsid() there is no group of its pid;
        # the pidfd reaches the child itself (it has no children yet).
        if not signal_group(self.pid, sig):
            self._watch.send_signal(sig)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def close(self) -> None:
        self._watch.close()
        self._transport.close()


@dataclass
class _Slot:
    app: AppSpec
    template: TemplateProcess | None = None
    starting: "asyncio.Task[None] | None" = None
    declined: str | None = None
    failures: int = 0
    last_failure: str = ""
    starts: int = 0


class TemplatePool:
    """One template per app (module, cwd, environment), started on first use."""

    def __init__(
        self,
        *,
        log_dir: Path | None = None,
        python: str = sys.executable,
        ready_timeout: float = TEMPLATE_READY_TIMEOUT,
        spawn_timeout: float = SPAWN_TIMEOUT,
        max_failures: int = MAX_TEMPLATE_FAILURES,
    ) -> None:
        self.log_dir = log_dir
        self.python = python
        self.ready_timeout = ready_timeout
        self.spawn_timeout = spawn_timeout
        self.max_failures = max_failures
        self._slots: dict[tuple[object, ...], _Slot] = {}
        # Dead or declined templates, still to be waited for.
        self._retired: list[TemplateProcess] = []
        self._closed = False

    @staticmethod
    def _key(app: AppSpec) -> tuple[object, ...]:
        env = tuple(sorted(app.env.items())) if app.env is not None else None
        return (app.module, str(app_cwd(app)), env)

    def _slot(self, app: AppSpec) -> _Slot:
        key = self._key(app)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(app)
        return slot

    def template(self, app: AppSpec) -> TemplateProcess | None:
        """The app's template if it is ready (for tests and status)."""
        slot = self._slots.get(self._key(app))
        if slot is None or slot.template is None or not slot.template.ready:
            return None
        return slot.template

    def restarts(self, app: AppSpec) -> int:
        """How many times the app's template was started again after the first."""
        slot = self._slots.get(self._key(app))
        return max(0, slot.starts - 1) if slot is not None else 0

    async def acquire(self, app: AppSpec) -> TemplateProcess | str:
        """The app's ready template, or why this start must be a cold one.

        The very first start waits for the template (it takes about as long
        as a cold start); a start that finds the template dead or failed does
        not wait: it restarts the template in the background.
        """
        if not app.warm_start:
            return f"{app.name} opts out of warm start"
        if self._closed:
            return "the warm-start environment is closed"
        slot = self._slot(app)
        if slot.declined is not None:
            return slot.declined
        template = slot.template
        if template is not None:
            if template.ready:
                return template
            self._retire(slot)
            reason = f"the warm-start template of {app.name} died ({template.death_reason})"
            logger.warning("%s: starting cold, restarting it in the background", reason)
            self._start(slot)
            return reason
        if slot.starting is None:
            self._start(slot)
        if slot.starts > 1:
            return (f"the warm-start template of {app.name} is restarting"
                    f" (it failed: {slot.last_failure})")
        await self._wait_started(slot)
        return self._ready_or_reason(slot)

    async def warm_up(self, app: AppSpec) -> str | None:
        """Start the app's template (if need be) and wait: None once it is ready."""
        if not app.warm_start:
            return f"{app.name} opts out of warm start"
        slot = self._slot(app)
        if slot.declined is None:
            if slot.template is not None and not slot.template.ready:
                self._retire(slot)
            if slot.template is None:
                if slot.starting is None:
                    self._start(slot)
                await self._wait_started(slot)
        result = self._ready_or_reason(slot)
        return None if isinstance(result, TemplateProcess) else result

    def notice_failure(self, app: AppSpec, failure: TemplateUnavailable) -> None:
        """A fork just failed: decline the app for good, or restart a dead template."""
        slot = self._slots.get(self._key(app))
        if slot is None or slot.template is None or self._closed:
            return
        if isinstance(failure, TemplateDeclined):
            slot.declined = f"warm start is off for {app.name}: {failure}"
            logger.warning("%s; its providers start cold", slot.declined)
            slot.template.kill()
            self._retire(slot)
        elif not slot.template.ready:
            logger.warning("the warm-start template of %s died (%s): restarting it in the"
                           " background", app.name, slot.template.death_reason)
            self._retire(slot)
            self._start(slot)

    def _retire(self, slot: _Slot) -> None:
        if slot.template is not None:
            self._retired.append(slot.template)
            slot.template = None

    def _ready_or_reason(self, slot: _Slot) -> TemplateProcess | str:
        if slot.template is not None and slot.template.ready:
            return slot.template
        if slot.declined is not None:
            return slot.declined
        return f"the warm-start template of {slot.app.name} failed to start ({slot.last_failure})"

    def _start(self, slot: _Slot) -> None:
        slot.starts += 1
        slot.starting = asyncio.ensure_future(self._run_start(slot))

    async def _wait_started(self, slot: _Slot) -> None:
        if slot.starting is not None:
            await asyncio.shield(slot.starting)

    async def _run_start(self, slot: _Slot) -> None:
        app = slot.app
        log_path = default_log_path(self.log_dir, app, "template")
        template = TemplateProcess(
            app, python=self.python, cwd=app_cwd(app), env=app.env, log_path=log_path
        )
        try:
            await template.start(self.ready_timeout)
        except TemplateDeclined as exc:
            slot.declined = f"warm start is off for {app.name}: {exc}"
            logger.warning("%s; its providers start cold", slot.declined)
        except TemplateUnavailable as exc:
            slot.failures += 1
            slot.last_failure = str(exc)
            if slot.failures >= self.max_failures:
                slot.declined = (f"the warm-start template of {app.name} failed"
                                 f" {slot.failures} times ({exc})")
                logger.warning("%s; its providers start cold", slot.declined)
            else:
                logger.warning("%s", exc)
        except Exception as exc:
            slot.failures += 1
            slot.last_failure = f"{type(exc).__name__}: {exc}"
            logger.exception("could not start the warm-start template of %s", app.name)
        else:
            if self._closed:
                await template.aclose()
            else:
                slot.failures = 0
                slot.template = template
                logger.info("warm-start template of %s ready (pid %s)", app.name, template.pid)
        finally:
            slot.starting = None

    async def aclose(self) -> None:
        """Stop every template (their children, the providers, live on)."""
        self._closed = True
        for slot in self._slots.values():
            if slot.starting is not None:
                slot.starting.cancel()
                await asyncio.gather(slot.starting, return_exceptions=True)
            self._retire(slot)
        for template in self._retired:
            await template.aclose()
        self._retired.clear()


def app_cwd(app: AppSpec) -> Path:
    return Path(app.cwd) if app.cwd is not None else Path.cwd()


class WarmProcessService(ProcessService):
    """A provider forked from its app's template; a cold process if it cannot be.

    After `start()`, `mode` says which it was and `fallback_reason` why a
    start was cold.
    """

    def __init__(
        self,
        pool: TemplatePool,
        app: AppSpec,
        work_dir: Path,
        *,
        host: str = LOOPBACK,
        log_path: Path | None = None,
        start_timeout: float = START_TIMEOUT,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        super().__init__(
            work_dir, host=host, log_path=log_path,
            start_timeout=start_timeout, stop_grace=stop_grace,
        )
        self._pool = pool
        self._app = app
        self.mode: Mode | None = None
        self.fallback_reason: str | None = None

    async def _launch(self, args: list[str]) -> Launched:
        acquired = await self._pool.acquire(self._app)
        if isinstance(acquired, TemplateProcess):
            try:
                launched = await self._fork(acquired, args)
            except TemplateUnavailable as exc:
                reason = str(exc)
                self._pool.notice_failure(self._app, exc)
            else:
                self.mode, self.fallback_reason = "warm", None
                return launched
        else:
            reason = acquired
        logger.debug("cold start of %s: %s", self._app.name, reason)
        self.mode, self.fallback_reason = "cold", reason
        return await SubprocessLaunch.spawn(
            [self._pool.python, "-m", self._app.module, *args],
            env=self._app.env, cwd=self._app.cwd,
        )

    async def _fork(self, template: TemplateProcess, args: list[str]) -> Launched:
        loop = asyncio.get_running_loop()
        read_end, write_end = os.pipe()
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        env = self._app.env if self._app.env is not None else os.environ
        try:
            spawned = await template.spawn(
                args, app_cwd(self._app), env, [devnull, write_end, write_end],
                self._pool.spawn_timeout,
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
            os.close(devnull)
        try:
            reader = asyncio.StreamReader()
            transport, _protocol = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader),
                os.fdopen(read_end, "rb", buffering=0),
            )
        except BaseException:
            _kill_orphan(spawned)
            raise
        return ForkedLaunch(spawned, reader, transport)


class WarmStartEnvironment(ProcessEnvironment):
    """Local processes, providers forked from a per-app template.

    Requestors (long-running: start-up time does not matter) start cold
    unless `roles` says otherwise. Call `warm_up(app)` when an app is
    registered so that even its first provider is forked; `aclose()` stops
    the templates.
    """

    stands_in_for = DOCKER_ENV_IDS

    def __init__(
        self,
        log_dir: Path | None = None,
        *,
        python: str = sys.executable,
        roles: tuple[Role, ...] = ("provider",),
        start_timeout: float = START_TIMEOUT,
        stop_grace: float = STOP_GRACE,
        template_timeout: float = TEMPLATE_READY_TIMEOUT,
    ) -> None:
        super().__init__(log_dir, start_timeout=start_timeout, stop_grace=stop_grace)
        self.roles = roles
        self.pool = TemplatePool(log_dir=log_dir, python=python, ready_timeout=template_timeout)

    @property
    def env_id(self) -> str:
        return "local_warm"

    async def _check_availability(self) -> Availability:
        if not hasattr(os, "fork") or not hasattr(os, "pidfd_open"):
            return Availability.no("needs os.fork and os.pidfd_open (Linux)")
        try:
            os.close(os.pidfd_open(os.getpid()))
        except OSError as exc:
            return Availability.no(f"pidfd_open does not work here (Linux >= 5.3 needed): {exc}")
        return Availability.yes()

    def service(
        self, app: AppSpec, work_dir: Path, role: Role, *, log_path: Path | None = None
    ) -> TaskApiService:
        options = self.service_options(app, role, log_path)
        if role not in self.roles:
            return LocalProcessService(
                [self.pool.python, "-m", app.module], work_dir, host=LOOPBACK, env=app.env,
                cwd=app.cwd, **options,
            )
        return WarmProcessService(self.pool, app, work_dir, host=LOOPBACK, **options)

    async def warm_up(self, app: AppSpec) -> str | None:
        """Start the app's template now; None once ready, else why not."""
        return await self.pool.warm_up(app)

    async def aclose(self) -> None:
        await self.pool.aclose()


__all__ = [
    "ForkedLaunch",
    "TemplateDeclined",
    "TemplatePool",
    "TemplateProcess",
    "TemplateUnavailable",
    "WarmProcessService",
    "WarmStartEnvironment",
]
