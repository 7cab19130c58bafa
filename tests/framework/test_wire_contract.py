"""The generated descriptors against shared/wire-contract.md and progress.md.

The tables below are written from the two documents, not from the .proto
files: a change of a name, number, type, label or streaming flag in
proto/ makes this test fail. The Python constants and enums are checked
against the descriptors too.
"""

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor as F

from golem_task_api import constants
from golem_task_api.enums import VerifyResult
from golem_task_api.envs import constants as env_constants
from golem_task_api.proto import constants_pb2, envs_pb2
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto import golem_task_api_pb2_grpc as pb_grpc

PACKAGE = "golem_task_api"

# service -> [(rpc, request, reply, server_streaming)]; no client streaming anywhere.
SERVICES = {
    "RequestorApp": [
        ("CreateTask", "CreateTaskRequest", "CreateTaskReply", False),
        ("NextSubtask", "NextSubtaskRequest", "NextSubtaskReply", False),
        ("Verify", "VerifyRequest", "VerifyReply", False),
        ("DiscardSubtasks", "DiscardSubtasksRequest", "DiscardSubtasksReply", False),
        ("RunBenchmark", "RunBenchmarkRequest", "RunBenchmarkReply", False),
        ("HasPendingSubtasks", "HasPendingSubtasksRequest", "HasPendingSubtasksReply", False),
        ("AbortTask", "AbortTaskRequest", "AbortTaskReply", False),
        ("AbortSubtask", "AbortSubtaskRequest", "AbortSubtaskReply", False),
        ("Shutdown", "ShutdownRequest", "ShutdownReply", False),
        # extension (progress.md)
        ("WatchTaskProgress", "WatchTaskProgressRequest", "ProgressEvent", True),
    ],
    "ProviderApp": [
        ("Compute", "ComputeRequest", "ComputeReply", False),
        ("RunBenchmark", "RunBenchmarkRequest", "RunBenchmarkReply", False),
        ("Shutdown", "ShutdownRequest", "ShutdownReply", False),
        # extension (progress.md)
        ("ComputeWithProgress", "ComputeWithProgressRequest", "ComputeEvent", True),
    ],
}

S, I32, U32, U64, FLT, DBL, BOOL = "string", "int32", "uint32", "uint64", "float", "double", "bool"
_TYPES = {
    S: F.TYPE_STRING, I32: F.TYPE_INT32, U32: F.TYPE_UINT32, U64: F.TYPE_UINT64,
    FLT: F.TYPE_FLOAT, DBL: F.TYPE_DOUBLE, BOOL: F.TYPE_BOOL,
}
REP = "repeated"
OPT = "optional"  # proto3 `optional`: explicit presence
ONE = "oneof"     # member of a real oneof (name given separately)

# message -> [(number, name, type, label)]; a type that is not a scalar is a
# message or enum full name (relative names are in the package).
MESSAGES: dict[str, list[tuple[int, str, str, str]]] = {
    "Infrastructure": [(1, "min_memory_mib", FLT, "")],
    "CreateTaskRequest": [
        (1, "task_id", S, ""), (2, "max_subtasks_count", I32, ""), (3, "task_params_json", S, "")
    ],
    "CreateTaskReply": [
        (1, "env_id", S, ""), (2, "prerequisites_json", S, ""),
        (3, "inf_requirements", "Infrastructure", ""),
    ],
    "NextSubtaskRequest": [
        (1, "task_id", S, ""), (2, "subtask_id", S, ""), (3, "opaque_node_id", S, "")
    ],
    "NextSubtaskReply": [(1, "subtask", "SubtaskReply", ONE)],
    "SubtaskReply": [(1, "subtask_params_json", S, ""), (2, "resources", S, REP)],
    "ComputeRequest": [
        (1, "task_id", S, ""), (2, "subtask_id", S, ""), (3, "subtask_params_json", S, "")
    ],
    "ComputeReply": [(1, "output_filepath", S, "")],
    "VerifyRequest": [(1, "task_id", S, ""), (2, "subtask_id", S, "")],
    "VerifyReply": [(1, "result", "VerifyReply.VerifyResult", ""), (2, "reason", S, "")],
    "DiscardSubtasksRequest": [(1, "task_id", S, ""), (2, "subtask_ids", S, REP)],
    "DiscardSubtasksReply": [(1, "discarded_subtask_ids", S, REP)],
    "RunBenchmarkRequest": [],
    "RunBenchmarkReply": [(1, "score", FLT, "")],
    "HasPendingSubtasksRequest": [(1, "task_id", S, "")],
    "HasPendingSubtasksReply": [(1, "has_pending_subtasks", BOOL, "")],
    "AbortTaskRequest": [(1, "task_id", S, "")],
    "AbortTaskReply": [],
    "AbortSubtaskRequest": [(1, "task_id", S, ""), (2, "subtask_id", S, "")],
    "AbortSubtaskReply": [],
    "ShutdownRequest": [],
    "ShutdownReply": [],
    # extension (progress.md)
    "ProgressArgs": [
        (1, "update_interval", "google.protobuf.Duration", ""), (2, "update_step", DBL, OPT)
    ],
    "ProgressEvent": [
        (1, "seq", U64, ""), (2, "time", "google.protobuf.Timestamp", ""),
        (3, "state", "ProgressEvent.State", ""), (4, "step", U32, ""), (5, "step_count", U32, ""),
        (6, "message", S, ""), (7, "done", DBL, ""), (8, "total", DBL, OPT), (9, "unit", S, ""),
    ],
    "ComputeWithProgressRequest": [
        (1, "compute", "ComputeRequest", ""), (2, "progress", "ProgressArgs", "")
    ],
    "ComputeEvent": [(1, "progress", "ProgressEvent", ONE), (2, "result", "ComputeReply", ONE)],
    "WatchTaskProgressRequest": [(1, "task_id", S, ""), (2, "progress", "ProgressArgs", "")],
}

ONEOFS = {
    "NextSubtaskReply": {"subtask_oneof": ["subtask"]},
    "ComputeEvent": {"event": ["progress", "result"]},
}

ENUMS = {
    "VerifyReply.VerifyResult": [
        ("SUCCESS", 0), ("FAILURE", 1), ("AWAITING_DATA", 2), ("INCONCLUSIVE", 3)
    ],
    "ProgressEvent.State": [
        ("RUNNING", 0), ("RETRYING", 1), ("SUCCEEDED", 2), ("FAILED", 3), ("CANCELLED", 4)
    ],
}

# (module, constant, extension number, value)
FILE_OPTIONS = [
    (constants_pb2, "TASK_INPUTS_DIR", 51000, "task_inputs"),
    (constants_pb2, "SUBTASK_INPUTS_DIR", 51001, "subtask_inputs"),
    (constants_pb2, "TASK_OUTPUTS_DIR", 51002, "task_outputs"),
    (constants_pb2, "SUBTASK_OUTPUTS_DIR", 51003, "subtask_outputs"),
    (constants_pb2, "WORK_DIR", 51100, "golem/work"),
    (envs_pb2, "DOCKER_CPU_ENV_ID", 52000, "docker_cpu"),
    (envs_pb2, "DOCKER_GPU_ENV_ID", 52001, "docker_gpu"),
]


def full(name: str) -> str:
    return name if name.startswith("google.") else f"{PACKAGE}.{name}"


@pytest.mark.parametrize("module", [pb, constants_pb2, envs_pb2], ids=lambda m: m.__name__)
def test_files_are_proto3_in_the_package(module) -> None:
    proto = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(proto)
    assert proto.package == PACKAGE
    assert proto.syntax == "proto3"


def test_services_and_methods() -> None:
    assert set(pb.DESCRIPTOR.services_by_name) == set(SERVICES)
    for service_name, rpcs in SERVICES.items():
        service = pb.DESCRIPTOR.services_by_name[service_name]
        assert service.full_name == f"{PACKAGE}.{service_name}"
        assert [m.name for m in service.methods] == [r[0] for r in rpcs]
        for name, request, reply, server_streaming in rpcs:
            method = service.methods_by_name[name]
            assert method.input_type.full_name == full(request), name
            assert method.output_type.full_name == full(reply), name
            assert method.client_streaming is False, name
            assert method.server_streaming is server_streaming, name


class _RecordingChannel:
    """Stands in for a grpc channel to see which paths the generated stubs call."""

    def __init__(self) -> None:
        self.paths: dict[str, str] = {}

    def _record(self, kind: str):
        def factory(path: str, *args, **kwargs):
            self.paths[path] = kind
            return lambda *a, **k: None
        return factory

    def __getattr__(self, kind: str):
        if kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            return self._record(kind)
        raise AttributeError(kind)


def test_generated_stubs_use_the_full_method_paths() -> None:
    """A peer built from the original protocol calls exactly these paths."""
    expected = {}
    for service_name, rpcs in SERVICES.items():
        for name, _req, _rep, server_streaming in rpcs:
            kind = "unary_stream" if server_streaming else "unary_unary"
            expected[f"/{PACKAGE}.{service_name}/{name}"] = kind
    channel = _RecordingChannel()
    pb_grpc.RequestorAppStub(channel)
    pb_grpc.ProviderAppStub(channel)
    assert channel.paths == expected
    assert "/golem_task_api.RequestorApp/CreateTask" in channel.paths
    assert "/golem_task_api.ProviderApp/RunBenchmark" in channel.paths
    assert not any(path.endswith("/Benchmark") for path in channel.paths)


def test_no_unexpected_messages() -> None:
    assert set(pb.DESCRIPTOR.message_types_by_name) == set(MESSAGES)
    assert set(envs_pb2.DESCRIPTOR.message_types_by_name) == {"DockerPrerequisites"}
    assert not constants_pb2.DESCRIPTOR.message_types_by_name


@pytest.mark.parametrize("message", sorted(MESSAGES))
def test_message_fields(message: str) -> None:
    descriptor = pb.DESCRIPTOR.message_types_by_name[message]
    fields = [
        (f.number, f.name, _type_name(f), _label(f)) for f in descriptor.fields
    ]
    expected = [
        (number, name, type_ if type_ in _TYPES else full(type_), label)
        for number, name, type_, label in MESSAGES[message]
    ]
    assert sorted(fields) == sorted(expected)


def _type_name(field) -> str:
    if field.type == F.TYPE_MESSAGE:
        return str(field.message_type.full_name)
    if field.type == F.TYPE_ENUM:
        return str(field.enum_type.full_name)
    for name, code in _TYPES.items():
        if code == field.type:
            return name
    raise AssertionError(f"unexpected type {field.type} of {field.full_name}")


def _label(field) -> str:
    if field.is_repeated:
        return REP
    oneof = field.containing_oneof
    if oneof is not None:
        # proto3 `optional` is a synthetic oneof named after the field
        synthetic = oneof.name == f"_{field.name}" and len(oneof.fields) == 1
        return OPT if synthetic else ONE
    return ""


def test_oneofs() -> None:
    for message, oneofs in ONEOFS.items():
        descriptor = pb.DESCRIPTOR.message_types_by_name[message]
        real = {
            o.name: [f.name for f in o.fields]
            for o in descriptor.oneofs
            if not o.name.startswith("_")
        }
        assert real == oneofs
    # an empty NextSubtaskReply means "no subtask": the field has presence
    assert not pb.NextSubtaskReply().HasField("subtask")
    assert pb.NextSubtaskReply().WhichOneof("subtask_oneof") is None
    reply = pb.NextSubtaskReply(subtask=pb.SubtaskReply())
    assert reply.HasField("subtask") and reply.WhichOneof("subtask_oneof") == "subtask"


def test_optional_fields_have_presence() -> None:
    assert pb.ProgressEvent.DESCRIPTOR.fields_by_name["total"].has_presence
    assert pb.ProgressArgs.DESCRIPTOR.fields_by_name["update_step"].has_presence
    assert not pb.ProgressEvent.DESCRIPTOR.fields_by_name["done"].has_presence
    # "total absent = unknown, not the same as 0"
    assert pb.ProgressEvent(total=0.0).HasField("total")
    assert not pb.ProgressEvent().HasField("total")


@pytest.mark.parametrize("enum_name", sorted(ENUMS))
def test_nested_enums(enum_name: str) -> None:
    outer, inner = enum_name.split(".")
    descriptor = pb.DESCRIPTOR.message_types_by_name[outer].enum_types_by_name[inner]
    assert descriptor.full_name == full(enum_name)
    assert [(v.name, v.number) for v in descriptor.values] == ENUMS[enum_name]
    assert not pb.DESCRIPTOR.enum_types_by_name, "enums are nested, none at file level"


def test_python_verify_result_matches_the_descriptor() -> None:
    values = pb.VerifyReply.DESCRIPTOR.enum_types_by_name["VerifyResult"].values
    assert [(m.name, m.value) for m in VerifyResult] == [(v.name, v.number) for v in values]


@pytest.mark.parametrize(
    ("module", "name", "number", "value"), FILE_OPTIONS, ids=[o[1] for o in FILE_OPTIONS]
)
def test_file_option_constants(module, name: str, number: int, value: str) -> None:
    extension = getattr(module, name)
    assert extension.is_extension
    assert extension.number == number
    assert extension.type == F.TYPE_STRING
    assert extension.containing_type.full_name == "google.protobuf.FileOptions"
    assert extension.full_name == f"{PACKAGE}.{name}"
    assert module.DESCRIPTOR.GetOptions().Extensions[extension] == value
    python = constants if module is constants_pb2 else env_constants
    assert getattr(python, name) == value


def test_no_unexpected_file_options() -> None:
    assert set(constants_pb2.DESCRIPTOR.extensions_by_name) == {
        n for m, n, _num, _v in FILE_OPTIONS if m is constants_pb2
    }
    assert set(envs_pb2.DESCRIPTOR.extensions_by_name) == {
        n for m, n, _num, _v in FILE_OPTIONS if m is envs_pb2
    }


def test_docker_prerequisites() -> None:
    fields = envs_pb2.DockerPrerequisites.DESCRIPTOR.fields
    assert [(f.number, f.name, f.type, f.is_repeated) for f in fields] == [
        (1, "image", F.TYPE_STRING, False), (2, "tag", F.TYPE_STRING, False)
    ]


# Bytes as any protobuf implementation of the original .proto encodes them.
GOLDEN = [
    (pb.CreateTaskRequest(task_id="t", max_subtasks_count=2, task_params_json="{}"),
     b"\n\x01t\x10\x02\x1a\x02{}"),
    (pb.CreateTaskReply(env_id="e", prerequisites_json="{}",
                        inf_requirements=pb.Infrastructure(min_memory_mib=1.0)),
     b"\n\x01e\x12\x02{}\x1a\x05\x0d\x00\x00\x80\x3f"),
    (pb.NextSubtaskRequest(task_id="t", subtask_id="s", opaque_node_id="n"),
     b"\n\x01t\x12\x01s\x1a\x01n"),
    (pb.NextSubtaskReply(subtask=pb.SubtaskReply(subtask_params_json="{}", resources=["a"])),
     b"\n\x07\n\x02{}\x12\x01a"),
    (pb.NextSubtaskReply(), b""),
    (pb.ComputeRequest(task_id="t", subtask_id="s", subtask_params_json="{}"),
     b"\n\x01t\x12\x01s\x1a\x02{}"),
    (pb.ComputeReply(output_filepath="o"), b"\n\x01o"),
    (pb.VerifyReply(result=pb.VerifyReply.INCONCLUSIVE, reason="r"), b"\x08\x03\x12\x01r"),
    (pb.DiscardSubtasksRequest(task_id="t", subtask_ids=["a", "b"]), b"\n\x01t\x12\x01a\x12\x01b"),
    (pb.DiscardSubtasksReply(discarded_subtask_ids=["a"]), b"\n\x01a"),
    (pb.RunBenchmarkReply(score=1.0), b"\x0d\x00\x00\x80\x3f"),
    (pb.HasPendingSubtasksReply(has_pending_subtasks=True), b"\x08\x01"),
    (pb.AbortSubtaskRequest(task_id="t", subtask_id="s"), b"\n\x01t\x12\x01s"),
]


@pytest.mark.parametrize(("message", "data"), GOLDEN, ids=[type(m).__name__ for m, _ in GOLDEN])
def test_wire_bytes(message, data: bytes) -> None:
    assert message.SerializeToString() == data
    assert type(message).FromString(data) == message
