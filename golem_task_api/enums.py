"""Enums of the wire protocol, with the values of proto/golem_task_api.proto."""

import enum


class VerifyResult(enum.Enum):
    SUCCESS = 0
    FAILURE = 1
    AWAITING_DATA = 2
    INCONCLUSIVE = 3


__all__ = ["VerifyResult"]
