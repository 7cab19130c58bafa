"""The sandbox: an app server with no network but loopback, only its dirs writable.

Backends: bubblewrap (`bwrap`), else util-linux `unshare` plus a small shim
(`_unshare_shim.py`). Either way the app runs in network, mount (and with
bwrap also PID, IPC and UTS) namespaces of its own: the whole filesystem
read-only except its work dir and a private runtime dir (its TMPDIR), and a
network namespace whose only interface is its own loopback.

The node cannot dial a loopback port inside another network namespace, so
the server listens on a Unix socket in the runtime dir (a path: Unix
sockets cross network namespaces, the filesystem is shared). The app is
started with `--host unix:RUNDIR/grpc`, which the framework binds as it is
(an older one binds `unix:RUNDIR/grpc:PORT`); the node dials the socket it
finds, through `TaskApiService.open_channel` (a `unix:` host needs no port).

Stopping: bwrap's outer process dies at once on SIGTERM instead of passing
it on, so SIGTERM goes to the app's own process group inside the sandbox
(bwrap's `--info-fd` names it), and SIGKILL to both. With bwrap's PID
namespace, nothing the app started outlives it.
"""

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from golem_task_api.client.process_service import (
    START_TIMEOUT,
    STOP_GRACE,
    Launched,
    ProcessService,
    SubprocessLaunch,
)
from golem_task_api.entrypoint import parse_command
from golem_task_api.errors import Unavailable
from golem_task_api.node.envs.base import (
    DOCKER_ENV_IDS,
    AppSpec,
    Availability,
    ProcessEnvironment,
    Role,
)
from golem_task_api.process_group import resolve

Backend = Literal["bwrap", "unshare"]
SHIM = Path(__file__).with_name("_unshare_shim.py")
SOCKET_NAME = "grpc"
_INFO_TIMEOUT = 10.0
_PROBE_TIMEOUT = 10.0


def bwrap_argv(
    bwrap: str,
    command: Sequence[str],
    *,
    writable: Sequence[Path],
    cwd: Path,
    info_fd: int | None = None,
) -> list[str]:
    argv = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/dev/shm"]
    for path in writable:
        argv += ["--bind", str(path), str(path)]
    argv += ["--unshare-all", "--new-session", "--die-with-parent", "--chdir", str(cwd)]
    if info_fd is not None:
        argv += ["--info-fd", str(info_fd)]
    return [*argv, "--", *command]


def unshare_argv(
    unshare: str, python: str, command: Sequence[str], *, writable: Sequence[Path],
    probe: bool = False,
) -> list[str]:
    argv = [unshare, "--user", "--map-root-user", "--mount", "--net", "--ipc", "--uts",
            "--", python, str(SHIM)]
    if probe:
        argv.append("--probe")
    for path in writable:
        argv += ["--writable", str(path)]
    return [*argv, "--", *command]


async def _run_quietly(argv: Sequence[str], timeout: float) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -1, f"no answer in {timeout:g} s"
    assert process.returncode is not None
    return process.returncode, out.decode("utf-8", "replace").strip()


async def probe_backend(backend: Backend, python: str = sys.executable) -> Availability:
    """Run a trivial program in that sandbox: works, or why not."""
    tool = shutil.which(backend)
    if tool is None:
        install = "apt-get install bubblewrap" if backend == "bwrap" else "util-linux"
        return Availability.no(f"{backend} is not installed ({install})")
    with tempfile.TemporaryDirectory(prefix="gta-probe-") as tmp:
        if backend == "bwrap":
            argv = bwrap_argv(tool, ["true"], writable=[Path(tmp)], cwd=Path("/"))
        else:
            argv = unshare_argv(tool, python, ["true"], writable=[Path(tmp)], probe=True)
        code, output = await _run_quietly(argv, _PROBE_TIMEOUT)
    if code != 0:
        return Availability.no(
            f"{backend} cannot create a sandbox here (user namespaces disabled?): {output}"
        )
    return Availability.yes()


class SandboxService(ProcessService):
    """One sandboxed app server, reached over a Unix socket."""

    def __init__(
        self,
        app: AppSpec,
        work_dir: Path,
        *,
        backend: Backend,
        python: str = sys.executable,
        runtime_root: Path | None = None,
        log_path: Path | None = None,
        start_timeout: float = START_TIMEOUT,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        super().__init__(
            work_dir, host="unix:", log_path=log_path,
            start_timeout=start_timeout, stop_grace=stop_grace,
        )
        self._app = app
        self._backend = backend
        self._python = python
        self._runtime_root = runtime_root
        self._rundir: Path | None = None
        self._port = 0

    @property
    def runtime_dir(self) -> Path | None:
        return self._rundir

    async def start(self, command: str, port: int) -> tuple[str, int]:
        if self.running():
            raise RuntimeError("this service already runs an app process")
        _role, self._port, _extra = parse_command(command.split())
        self._remove_rundir()
        # Short: a Unix socket path has at most 107 bytes.
        self._rundir = Path(tempfile.mkdtemp(prefix="gta-", dir=self._runtime_root))
        (self._rundir / "tmp").mkdir()
        self._host = f"unix:{self._rundir / SOCKET_NAME}"
        try:
            return await super().start(command, port)
        except BaseException:
            self._remove_rundir()
            raise

    def _address(self, port: int) -> tuple[str, int]:
        assert self._rundir is not None
        # This framework binds a unix: host as it is; an older one binds HOST:PORT.
        for path in (self._rundir / f"{SOCKET_NAME}:{self._port}", self._rundir / SOCKET_NAME):
            if path.exists():
                return f"unix:{path}", 0
        raise Unavailable(f"the app announced itself but left no socket in {self._rundir}")

    async def _launch(self, args: list[str]) -> Launched:
        assert self._rundir is not None
        env = dict(self._app.env if self._app.env is not None else os.environ)
        env["TMPDIR"] = str(self._rundir / "tmp")
        cwd = Path(self._app.cwd) if self._app.cwd is not None else Path.cwd()
        command = [self._python, "-m", self._app.module, *args]
        writable = [self._work_dir.resolve(), self._rundir.resolve()]
        if self._backend == "unshare":
            tool = shutil.which("unshare") or "unshare"
            argv = unshare_argv(tool, self._python, command, writable=writable)
            return await SubprocessLaunch.spawn(argv, env=env, cwd=cwd)
        tool = shutil.which("bwrap") or "bwrap"
        read_end, write_end = os.pipe()
        try:
            argv = bwrap_argv(tool, command, writable=writable, cwd=cwd, info_fd=write_end)
            launched = await SubprocessLaunch.spawn(argv, env=env, cwd=cwd, pass_fds=[write_end])
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        try:
            info = await asyncio.wait_for(_read_info(read_end), _INFO_TIMEOUT)
        except TimeoutError:
            info = {}
        finally:
            os.close(read_end)
        child = info.get("child-pid")
        if isinstance(child, int):
            launched.term_pgid = child
        return launched

    async def _kill_group(self) -> None:
        await super()._kill_group()
        if self._launched is not None and self._launched.exited():
            self._remove_rundir()

    def _remove_rundir(self) -> None:
        if self._rundir is not None:
            shutil.rmtree(self._rundir, ignore_errors=True)
            self._rundir = None


async def _read_info(fd: int) -> dict[str, Any]:
    """bwrap's --info-fd JSON; {} if it closes the pipe without one."""
    loop = asyncio.get_running_loop()
    data = b""
    while True:
        readable: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, resolve, readable)
        try:
            await readable
        finally:
            loop.remove_reader(fd)
        chunk = os.read(fd, 4096)
        data += chunk
        with contextlib.suppress(ValueError):
            info = json.loads(data)
            return info if isinstance(info, dict) else {}
        if not chunk:
            return {}


class SandboxEnvironment(ProcessEnvironment):
    """App servers in a sandbox; `backend` "auto" prefers bwrap over unshare."""

    stands_in_for = DOCKER_ENV_IDS

    def __init__(
        self,
        log_dir: Path | None = None,
        *,
        backend: Literal["auto", "bwrap", "unshare"] = "auto",
        python: str = sys.executable,
        runtime_root: Path | None = None,
        start_timeout: float = START_TIMEOUT,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        super().__init__(log_dir, start_timeout=start_timeout, stop_grace=stop_grace)
        self.requested_backend = backend
        self.python = python
        self.runtime_root = runtime_root
        self._backend: Backend | None = None

    @property
    def env_id(self) -> str:
        return "sandbox"

    @property
    def backend(self) -> Backend:
        """The backend in use (before the availability check: the first installed)."""
        if self._backend is not None:
            return self._backend
        if self.requested_backend != "auto":
            return self.requested_backend
        return "bwrap" if shutil.which("bwrap") else "unshare"

    async def _check_availability(self) -> Availability:
        candidates: list[Backend] = (
            ["bwrap", "unshare"] if self.requested_backend == "auto" else [self.requested_backend]
        )
        reasons = []
        for backend in candidates:
            available = await probe_backend(backend, self.python)
            if available:
                self._backend = backend
                return available
            reasons.append(available.reason)
        return Availability.no("; ".join(reasons))

    def service(
        self, app: AppSpec, work_dir: Path, role: Role, *, log_path: Path | None = None
    ) -> SandboxService:
        return SandboxService(
            app, work_dir, backend=self.backend, python=self.python,
            runtime_root=self.runtime_root, **self.service_options(app, role, log_path),
        )


__all__ = [
    "SandboxEnvironment",
    "SandboxService",
    "bwrap_argv",
    "probe_backend",
    "unshare_argv",
]
