"""The Python surface of shared/python-api.md, pinned.

Every name is imported from the module python-api.md gives, and its call
signature is compared with a table written from python-api.md (parameter
names, order, defaults). Additions are allowed only where they cannot break
an existing caller: extra parameters after the pinned ones, each with a
default (or keyword-only with a default).

Where python-api.md abbreviates a parameter name (`get_service`, `handler`)
the table holds the original package's name, which the framework keeps, so
that keyword calls of existing apps keep working.
"""

import abc
import asyncio
import dataclasses
import enum
import importlib
import inspect
from pathlib import Path

import pytest

import golem_task_api
from golem_task_api import client, constants, handlers, ssl
from golem_task_api.client import (
    ProviderAppClient,
    RequestorAppClient,
    ShutdownException,
    TaskApiService,
)
from golem_task_api.dirutils import ProviderDir, ProviderTaskDir, RequestorDir, RequestorTaskDir
from golem_task_api.enums import VerifyResult
from golem_task_api.envs import constants as env_constants
from golem_task_api.errors import InvalidArgument
from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler, RequestorAppHandler
from golem_task_api.server import ProviderAppServer, RequestorAppServer
from golem_task_api.structs import Infrastructure, Subtask, Task
from golem_task_api.testutils import InlineTaskApiService, TaskLifecycleUtil
from tests.framework.echo_app import EchoProvider, EchoRequestor

NO_DEFAULT = inspect.Parameter.empty
_ = NO_DEFAULT

# (module, qualified name, kind, [(param, default or _), ...]); `self`/`cls` left out.
# kind: "async" coroutine function, "sync" plain callable, "class" constructor,
# "property" a property, "asynccm" a function returning an async context manager.
SIGNATURES: list[tuple[str, str, str, list[tuple[str, object]]]] = [
    # handlers
    ("golem_task_api.handlers", "RequestorAppHandler.create_task", "async",
     [("task_work_dir", _), ("max_subtasks_count", _), ("task_params", _)]),
    ("golem_task_api.handlers", "RequestorAppHandler.next_subtask", "async",
     [("task_work_dir", _), ("subtask_id", _), ("opaque_node_id", _)]),
    ("golem_task_api.handlers", "RequestorAppHandler.verify", "async",
     [("task_work_dir", _), ("subtask_id", _)]),
    ("golem_task_api.handlers", "RequestorAppHandler.discard_subtasks", "async",
     [("task_work_dir", _), ("subtask_ids", _)]),
    ("golem_task_api.handlers", "RequestorAppHandler.run_benchmark", "async",
     [("work_dir", _)]),
    ("golem_task_api.handlers", "RequestorAppHandler.has_pending_subtasks", "async",
     [("task_work_dir", _)]),
    ("golem_task_api.handlers", "RequestorAppHandler.abort_task", "async",
     [("task_work_dir", _)]),
    ("golem_task_api.handlers", "RequestorAppHandler.abort_subtask", "async",
     [("task_work_dir", _), ("subtask_id", _)]),
    ("golem_task_api.handlers", "ProviderAppHandler.compute", "async",
     [("task_work_dir", _), ("subtask_id", _), ("subtask_params", _)]),
    ("golem_task_api.handlers", "ProviderAppHandler.run_benchmark", "async",
     [("work_dir", _)]),
    ("golem_task_api.handlers", "AppLifecycleHandler", "class", []),
    ("golem_task_api.handlers", "AppLifecycleHandler.on_before_startup", "async", []),
    ("golem_task_api.handlers", "AppLifecycleHandler.on_after_startup", "async", []),
    ("golem_task_api.handlers", "AppLifecycleHandler.on_before_shutdown", "async", []),
    ("golem_task_api.handlers", "AppLifecycleHandler.on_after_shutdown", "async", []),
    ("golem_task_api.handlers", "AppLifecycleHandler.request_shutdown", "sync", []),
    ("golem_task_api.handlers", "AppLifecycleHandler.shutdown_future", "property", []),
    # structs (defaults checked separately: Infrastructure() is a default_factory)
    ("golem_task_api.structs", "Task", "class",
     [("env_id", _), ("prerequisites", _), ("inf_requirements", None)]),
    ("golem_task_api.structs", "Subtask", "class", [("params", _), ("resources", _)]),
    ("golem_task_api.structs", "Infrastructure", "class", [("min_memory_mib", None)]),
    # dirutils
    ("golem_task_api.dirutils", "RequestorDir.task_dir", "sync", [("task_id", _)]),
    ("golem_task_api.dirutils", "RequestorDir.subtask_outputs_dir", "sync",
     [("task_id", _), ("subtask_id", _)]),
    ("golem_task_api.dirutils", "RequestorTaskDir.task_inputs_dir", "property", []),
    ("golem_task_api.dirutils", "RequestorTaskDir.task_outputs_dir", "property", []),
    ("golem_task_api.dirutils", "RequestorTaskDir.subtask_inputs_dir", "property", []),
    ("golem_task_api.dirutils", "RequestorTaskDir.subtask_outputs_top_dir", "property", []),
    ("golem_task_api.dirutils", "RequestorTaskDir.subtask_outputs_dir", "sync",
     [("subtask_id", _)]),
    ("golem_task_api.dirutils", "RequestorTaskDir.prepare", "sync", []),
    ("golem_task_api.dirutils", "ProviderDir.task_dir", "sync", [("task_id", _)]),
    ("golem_task_api.dirutils", "ProviderDir.subtask_dir", "sync",
     [("task_id", _), ("subtask_id", _)]),
    ("golem_task_api.dirutils", "ProviderTaskDir.subtask_inputs_dir", "property", []),
    ("golem_task_api.dirutils", "ProviderTaskDir.subtask_dir", "sync", [("subtask_id", _)]),
    ("golem_task_api.dirutils", "ProviderTaskDir.prepare", "sync", []),
    # entrypoint
    ("golem_task_api.entrypoint", "main", "async",
     [("work_dir", _), ("argv", _), ("requestor_handler", None),
      ("requestor_lifecycle_handler", None), ("provider_handler", None),
      ("provider_lifecycle_handler", None)]),
    # server
    ("golem_task_api.server", "RequestorAppServer", "class",
     [("work_dir", _), ("port", _), ("handler", _), ("lifecycle", _)]),
    ("golem_task_api.server", "ProviderAppServer", "class",
     [("work_dir", _), ("port", _), ("handler", _), ("lifecycle", _)]),
    ("golem_task_api.server", "RequestorAppServer.start", "async", []),
    ("golem_task_api.server", "RequestorAppServer.wait_until_shutdown", "async", []),
    ("golem_task_api.server", "RequestorAppServer.stop", "async", []),
    ("golem_task_api.server", "ProviderAppServer.start", "async", []),
    ("golem_task_api.server", "ProviderAppServer.wait_until_shutdown", "async", []),
    ("golem_task_api.server", "ProviderAppServer.stop", "async", []),
    # client
    ("golem_task_api.client", "TaskApiService.running", "sync", []),
    ("golem_task_api.client", "TaskApiService.start", "async", [("command", _), ("port", _)]),
    ("golem_task_api.client", "TaskApiService.stop", "async", []),
    ("golem_task_api.client", "TaskApiService.wait_until_shutdown_complete", "async", []),
    ("golem_task_api.client", "TaskApiService.open_channel", "async",
     [("command", _), ("port", _), ("ssl_context", None)]),
    ("golem_task_api.client", "RequestorAppClient.create", "async",
     [("service", _), ("port", 50005), ("ssl_context", None)]),
    ("golem_task_api.client", "RequestorAppClient.create_task", "async",
     [("task_id", _), ("max_subtasks_count", _), ("task_params", _)]),
    ("golem_task_api.client", "RequestorAppClient.next_subtask", "async",
     [("task_id", _), ("subtask_id", _), ("opaque_node_id", _)]),
    ("golem_task_api.client", "RequestorAppClient.verify", "async",
     [("task_id", _), ("subtask_id", _)]),
    ("golem_task_api.client", "RequestorAppClient.discard_subtasks", "async",
     [("task_id", _), ("subtask_ids", _)]),
    ("golem_task_api.client", "RequestorAppClient.run_benchmark", "async", []),
    ("golem_task_api.client", "RequestorAppClient.has_pending_subtasks", "async",
     [("task_id", _)]),
    ("golem_task_api.client", "RequestorAppClient.abort_task", "async", [("task_id", _)]),
    ("golem_task_api.client", "RequestorAppClient.abort_subtask", "async",
     [("task_id", _), ("subtask_id", _)]),
    ("golem_task_api.client", "RequestorAppClient.shutdown", "async", [("timeout", 5.0)]),
    ("golem_task_api.client", "ProviderAppClient.create", "async",
     [("service", _), ("ssl_context", None)]),
    ("golem_task_api.client", "ProviderAppClient.compute", "async",
     [("task_id", _), ("subtask_id", _), ("subtask_params", _)]),
    ("golem_task_api.client", "ProviderAppClient.run_benchmark", "async", []),
    ("golem_task_api.client", "ProviderAppClient.shutdown", "async", [("timeout", 5.0)]),
    # ssl
    ("golem_task_api.ssl", "create_server_ssl_context", "sync", [("directory", _)]),
    ("golem_task_api.ssl", "create_client_ssl_context", "sync",
     [("directory", _), ("server_cert_directory", _)]),
    # testutils
    ("golem_task_api.testutils", "InlineTaskApiService", "class",
     [("work_dir", _), ("requestor_handler", None), ("requestor_lifecycle_handler", None),
      ("provider_handler", None), ("provider_lifecycle_handler", None)]),
    ("golem_task_api.testutils", "TaskLifecycleUtil", "class", [("work_dir", _)]),
    ("golem_task_api.testutils", "TaskLifecycleUtil.init_requestor", "asynccm",
     [("get_task_api_service", _), ("port", 50005)]),
    ("golem_task_api.testutils", "TaskLifecycleUtil.init_requestor_with_handler", "asynccm",
     [("requestor_handler", _), ("lifecycle_handler", None), ("port", 50005)]),
    ("golem_task_api.testutils", "TaskLifecycleUtil.create_task", "async",
     [("task_id", _), ("max_subtasks_count", _), ("resources", _), ("task_params", _)]),
    ("golem_task_api.testutils", "TaskLifecycleUtil.init_provider", "sync",
     [("get_task_api_service", _), ("task_id", _)]),
    ("golem_task_api.testutils", "TaskLifecycleUtil.init_provider_with_handler", "sync",
     [("provider_handler", _), ("task_id", _), ("lifecycle_handler", None)]),
    ("golem_task_api.testutils", "TaskLifecycleUtil.start_provider", "async", []),
    ("golem_task_api.testutils", "TaskLifecycleUtil.compute_next_subtask", "async",
     [("task_id", _), ("opaque_node_id", _)]),
    ("golem_task_api.testutils", "TaskLifecycleUtil.compute_remaining_subtasks", "async",
     [("task_id", _), ("opaque_node_id", _)]),
    ("golem_task_api.testutils", "TaskLifecycleUtil.simulate_task", "async",
     [("get_task_api_service", _), ("max_subtasks_count", _), ("task_params", _),
      ("resources", _)]),
]


def resolve(module: str, qualname: str) -> object:
    obj: object = importlib.import_module(module)
    for part in qualname.split("."):
        owner = obj
        obj = inspect.getattr_static(owner, part) if isinstance(owner, type) else getattr(
            owner, part
        )
    return obj


def check_params(qualname: str, func: object, expected: list[tuple[str, object]]) -> None:
    params = list(inspect.signature(func).parameters.values())  # type: ignore[arg-type]
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    positional = [
        p for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    names = [p.name for p in positional[: len(expected)]]
    assert names == [name for name, _default in expected], (
        f"{qualname}: parameters {[p.name for p in params]}, expected {expected}"
    )
    for param, (name, default) in zip(positional, expected, strict=False):
        if default is NO_DEFAULT:
            assert param.default is NO_DEFAULT, f"{qualname}({name}) must be required"
        elif qualname in ("Task",):
            pass  # a default_factory: checked by test_structs_defaults
        else:
            assert param.default == default, (
                f"{qualname}({name}) default {param.default!r}, expected {default!r}"
            )
    extra = params[len(expected):]
    for param in extra:
        assert param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or (
            param.default is not NO_DEFAULT
        ), f"{qualname}: added parameter {param.name} has no default: it breaks old callers"


@pytest.mark.parametrize(
    ("module", "qualname", "kind", "expected"),
    SIGNATURES,
    ids=[f"{m.rsplit('.', 1)[-1]}.{q}" for m, q, _k, _e in SIGNATURES],
)
def test_signature(module: str, qualname: str, kind: str, expected: list) -> None:
    obj = resolve(module, qualname)
    if kind == "property":
        assert isinstance(obj, property), f"{qualname} must be a property"
        return
    func = obj.__func__ if isinstance(obj, classmethod | staticmethod) else obj
    if kind == "class":
        assert isinstance(func, type)
    elif kind == "async":
        assert inspect.iscoroutinefunction(func), f"{qualname} must be async"
    elif kind == "sync":
        assert callable(func) and not inspect.iscoroutinefunction(func), f"{qualname} is sync"
    elif kind == "asynccm":
        # an @asynccontextmanager around an async generator
        assert not inspect.iscoroutinefunction(func)
        assert inspect.isasyncgenfunction(inspect.unwrap(func)), f"{qualname}: async with"
    check_params(qualname, func, expected)


def test_create_methods_are_classmethods() -> None:
    for cls in (RequestorAppClient, ProviderAppClient):
        assert isinstance(inspect.getattr_static(cls, "create"), classmethod)


def test_top_level_reexports() -> None:
    assert golem_task_api.RequestorAppHandler is handlers.RequestorAppHandler
    assert golem_task_api.ProviderAppHandler is handlers.ProviderAppHandler
    assert golem_task_api.AppLifecycleHandler is handlers.AppLifecycleHandler
    assert golem_task_api.RequestorAppClient is client.RequestorAppClient
    assert golem_task_api.ProviderAppClient is client.ProviderAppClient
    assert golem_task_api.TaskApiService is client.TaskApiService
    assert golem_task_api.constants is constants
    for name in (
        "RequestorAppHandler", "ProviderAppHandler", "AppLifecycleHandler",
        "RequestorAppClient", "ProviderAppClient", "TaskApiService", "constants",
    ):
        assert name in golem_task_api.__all__


def test_handler_abcs_are_enforced() -> None:
    """The original forgot ABC: here a half-implemented handler cannot be built."""
    assert RequestorAppHandler.__abstractmethods__ == {
        "create_task", "next_subtask", "verify", "discard_subtasks", "run_benchmark",
        "has_pending_subtasks", "abort_task", "abort_subtask",
    }
    assert ProviderAppHandler.__abstractmethods__ == {"compute", "run_benchmark"}
    assert TaskApiService.__abstractmethods__ == {
        "running", "start", "stop", "wait_until_shutdown_complete",
    }
    for base in (RequestorAppHandler, ProviderAppHandler, TaskApiService):
        assert isinstance(base, abc.ABCMeta)

        class Half(base):  # type: ignore[misc, valid-type]
            async def run_benchmark(self, work_dir: Path) -> float:
                return 0.0

        with pytest.raises(TypeError, match="abstract"):
            Half()


def test_structs_are_value_dataclasses() -> None:
    assert [f.name for f in dataclasses.fields(Task)] == [
        "env_id", "prerequisites", "inf_requirements"
    ]
    assert [f.name for f in dataclasses.fields(Subtask)] == ["params", "resources"]
    assert [f.name for f in dataclasses.fields(Infrastructure)] == ["min_memory_mib"]
    assert Task("docker_cpu", {"image": "i", "tag": "t"}).inf_requirements == Infrastructure()
    assert Infrastructure().min_memory_mib is None
    assert Task("e", {"a": 1}, Infrastructure(2.0)) == Task("e", {"a": 1}, Infrastructure(2.0))
    assert Task("e", {}) != Task("e", {}, Infrastructure(1.0))
    assert Subtask({"x": 1}, ["r"]) == Subtask(params={"x": 1}, resources=["r"])
    # the default is not shared between instances
    one, two = Task("e", {}), Task("e", {})
    one.inf_requirements.min_memory_mib = 5.0
    assert two.inf_requirements.min_memory_mib is None


def test_verify_result_enum() -> None:
    assert issubclass(VerifyResult, enum.Enum)
    assert [(m.name, m.value) for m in VerifyResult] == [
        ("SUCCESS", 0), ("FAILURE", 1), ("AWAITING_DATA", 2), ("INCONCLUSIVE", 3),
    ]


def test_constants() -> None:
    assert constants.TASK_INPUTS_DIR == "task_inputs"
    assert constants.SUBTASK_INPUTS_DIR == "subtask_inputs"
    assert constants.TASK_OUTPUTS_DIR == "task_outputs"
    assert constants.SUBTASK_OUTPUTS_DIR == "subtask_outputs"
    assert constants.WORK_DIR == "golem/work"
    assert env_constants.DOCKER_CPU_ENV_ID == "docker_cpu"
    assert env_constants.DOCKER_GPU_ENV_ID == "docker_gpu"


def test_ssl_file_names_and_none_without_files(tmp_path: Path) -> None:
    assert ssl.SERVER_KEY_FILE_NAME == "task_api_server_key.pem"
    assert ssl.SERVER_CERT_FILE_NAME == "task_api_server_cert.pem"
    assert ssl.CLIENT_KEY_FILE_NAME == "task_api_client_key.pem"
    assert ssl.CLIENT_CERT_FILE_NAME == "task_api_client_cert.pem"
    assert ssl.create_server_ssl_context(tmp_path) is None
    assert ssl.create_client_ssl_context(tmp_path, tmp_path) is None


def test_shutdown_exception() -> None:
    assert issubclass(ShutdownException, Exception)


def test_dirutils_layout(tmp_path: Path) -> None:
    req = RequestorDir(tmp_path / "req")
    assert isinstance(req, Path)
    task = req.task_dir("t1")
    assert isinstance(task, RequestorTaskDir) and isinstance(task, Path)
    assert task == tmp_path / "req" / "t1"
    assert task.task_inputs_dir == task / "task_inputs"
    assert task.task_outputs_dir == task / "task_outputs"
    assert task.subtask_inputs_dir == task / "subtask_inputs"
    assert task.subtask_outputs_top_dir == task / "subtask_outputs"
    assert task.subtask_outputs_dir("s1") == task / "subtask_outputs" / "s1"
    assert req.subtask_outputs_dir("t1", "s1") == task / "subtask_outputs" / "s1"
    req.mkdir()
    task.prepare()
    assert sorted(p.name for p in task.iterdir()) == [
        "subtask_inputs", "subtask_outputs", "task_inputs", "task_outputs"
    ]
    # as in the original: prepare() is not recursive and fails on an existing dir
    with pytest.raises(FileExistsError):
        task.prepare()
    with pytest.raises(FileNotFoundError):
        RequestorDir(tmp_path / "missing").task_dir("t").prepare()

    prov = ProviderDir(tmp_path / "prov")
    ptask = prov.task_dir("t1")
    assert isinstance(ptask, ProviderTaskDir) and isinstance(ptask, Path)
    assert ptask.subtask_inputs_dir == ptask / "subtask_inputs"
    assert ptask.subtask_dir("s1") == ptask / "s1"
    assert prov.subtask_dir("t1", "s1") == ptask / "s1"
    prov.mkdir()
    ptask.prepare()
    assert [p.name for p in ptask.iterdir()] == ["subtask_inputs"]


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a\\b", "a\x00b", "../x", "x" * 256])
def test_dirutils_refuse_ids_that_leave_the_dir(tmp_path: Path, bad: str) -> None:
    req, prov = RequestorDir(tmp_path), ProviderDir(tmp_path)
    calls = [
        lambda: req.task_dir(bad),
        lambda: req.subtask_outputs_dir(bad, "s"),
        lambda: req.subtask_outputs_dir("t", bad),
        lambda: req.task_dir("t").subtask_outputs_dir(bad),
        lambda: prov.task_dir(bad),
        lambda: prov.subtask_dir(bad, "s"),
        lambda: prov.subtask_dir("t", bad),
        lambda: prov.task_dir("t").subtask_dir(bad),
    ]
    for call in calls:
        with pytest.raises(InvalidArgument) as info:
            call()
        assert isinstance(info.value, ValueError)


def test_lifecycle_util_attributes(tmp_path: Path) -> None:
    util = TaskLifecycleUtil(tmp_path)
    assert isinstance(util.req_dir, RequestorDir) and util.req_dir == tmp_path / "requestor"
    assert isinstance(util.prov_dir, ProviderDir) and util.prov_dir == tmp_path / "provider"
    assert util.req_dir.is_dir() and util.prov_dir.is_dir()


def test_inline_service_is_a_task_api_service(tmp_path: Path) -> None:
    assert issubclass(InlineTaskApiService, TaskApiService)
    service = InlineTaskApiService(tmp_path)  # no event loop needed to build one
    assert not service.running()


def test_nothing_touches_a_loop_at_construction() -> None:
    """Servers, handlers and lifecycles are built before any loop runs (original bug)."""
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    lifecycle = AppLifecycleHandler()
    RequestorAppServer(Path("/nonexistent"), 0, EchoRequestor(), lifecycle)
    ProviderAppServer(Path("/nonexistent"), 0, EchoProvider(), AppLifecycleHandler())
