"""Pure conversions between wire messages and the Python values of the API.

The only module besides the servicers and clients that touches generated
code, so the mapping of every field lives in one place.
"""

import json
from typing import Any

from golem_task_api.enums import VerifyResult
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.structs import Infrastructure, Subtask, Task
from golem_task_api.validation import parse_params


def task_to_reply(task: Task) -> pb.CreateTaskReply:
    reply = pb.CreateTaskReply(
        env_id=task.env_id,
        prerequisites_json=json.dumps(task.prerequisites),
    )
    min_memory = task.inf_requirements.min_memory_mib
    if min_memory is not None:
        reply.inf_requirements.min_memory_mib = min_memory
    return reply


def task_from_reply(reply: pb.CreateTaskReply) -> Task:
    prerequisites = parse_params("prerequisites_json", reply.prerequisites_json or "{}")
    # proto3 cannot tell an unset float from 0: 0 means "no requirement".
    min_memory = reply.inf_requirements.min_memory_mib or None
    return Task(
        env_id=reply.env_id,
        prerequisites=prerequisites,
        inf_requirements=Infrastructure(min_memory_mib=min_memory),
    )


def subtask_to_reply(subtask: Subtask | None) -> pb.NextSubtaskReply:
    if subtask is None:
        return pb.NextSubtaskReply()
    return pb.NextSubtaskReply(
        subtask=pb.SubtaskReply(
            subtask_params_json=json.dumps(subtask.params),
            resources=subtask.resources,
        )
    )


def subtask_from_reply(reply: pb.NextSubtaskReply) -> Subtask | None:
    if not reply.HasField("subtask"):
        return None
    subtask = reply.subtask
    return Subtask(
        params=parse_params("subtask_params_json", subtask.subtask_params_json),
        resources=list(subtask.resources),
    )


# A verdict's reason is for people; a huge one is cut, not an error.
MAX_REASON = 64 * 1024


def verify_to_reply(result: VerifyResult, reason: str | None) -> pb.VerifyReply:
    reason = reason or ""
    if len(reason) > MAX_REASON:
        reason = reason[: MAX_REASON - 1] + "…"
    return pb.VerifyReply(
        result=pb.VerifyReply.VerifyResult.ValueType(result.value), reason=reason
    )


# VerifyResult(value) by a dict lookup (Enum.__call__ costs ~1 us); an
# unknown value still goes through VerifyResult() and its ValueError.
_VERIFY_RESULTS: dict[int, VerifyResult] = {r.value: r for r in VerifyResult}


def verify_from_reply(reply: pb.VerifyReply) -> tuple[VerifyResult, str]:
    value = reply.result
    result = _VERIFY_RESULTS.get(value)
    return (VerifyResult(value) if result is None else result), reply.reason


def params_to_json(params: dict[str, Any]) -> str:
    return json.dumps(params)


__all__ = [
    "params_to_json",
    "subtask_from_reply",
    "subtask_to_reply",
    "task_from_reply",
    "task_to_reply",
    "verify_from_reply",
    "verify_to_reply",
]
