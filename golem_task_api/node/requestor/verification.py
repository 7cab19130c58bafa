"""One Verify, read as a verdict the node can act on, whatever the app answered.

Besides the four results, a Verify of a subtask whose verdict the app has
already taken (the node died between the app's answer and its own record)
answers FAILED_PRECONDITION "... is verified" or "... is failed": that *is*
the verdict, taken without running the app's check a second time. An app
whose Verify raises, or runs out of time, gives FAILURE as in Golem, but the
provider is not blamed for it.
"""

import enum
from dataclasses import dataclass

from golem_task_api.enums import VerifyResult
from golem_task_api.errors import AppError, DeadlineExceeded, FailedPrecondition, NotFound
from golem_task_api.node.requestor.apps import RequestorApp


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"           # the provider's result is bad
    AWAITING_DATA = "awaiting_data"
    APP_FAILED = "app_failed"       # the app's Verify raised or timed out
    GONE = "gone"                   # aborted, discarded, or unknown to the app


@dataclass(frozen=True)
class VerifyOutcome:
    verdict: Verdict
    result: str   # what the app said: SUCCESS, FAILURE, INCONCLUSIVE, ... or the error
    reason: str
    repeated: bool = False  # the app had already taken this verdict


_SETTLED_MESSAGES = (
    (" is verified", Verdict.ACCEPTED, "SUCCESS"),
    (" is failed", Verdict.REJECTED, "FAILURE"),
)


async def verify_once(
    app: RequestorApp, task_id: str, subtask_id: str, timeout: float | None = None
) -> VerifyOutcome:
    try:
        if timeout is None:
            result, reason = await app.call(lambda c: c.verify(task_id, subtask_id))
        else:
            result, reason = await app.call(
                lambda c: c.verify(task_id, subtask_id, timeout=timeout)
            )
    except FailedPrecondition as exc:
        for marker, verdict, name in _SETTLED_MESSAGES:
            if marker in exc.message:
                return VerifyOutcome(verdict, name, f"already {name} in the app", repeated=True)
        return VerifyOutcome(Verdict.GONE, "FAILED_PRECONDITION", exc.message)
    except NotFound as exc:
        return VerifyOutcome(Verdict.GONE, "NOT_FOUND", exc.message)
    except (AppError, DeadlineExceeded) as exc:
        what = "timed out" if isinstance(exc, DeadlineExceeded) else "failed"
        return VerifyOutcome(
            Verdict.APP_FAILED, exc.status.name, f"the app's Verify {what}: {exc.message}"
        )
    reason = reason or ""
    if result is VerifyResult.SUCCESS:
        return VerifyOutcome(Verdict.ACCEPTED, result.name, reason)
    if result is VerifyResult.AWAITING_DATA:
        return VerifyOutcome(Verdict.AWAITING_DATA, result.name, reason)
    return VerifyOutcome(
        Verdict.REJECTED, result.name, reason or f"the app's verdict: {result.name}"
    )


__all__ = ["Verdict", "VerifyOutcome", "verify_once"]
