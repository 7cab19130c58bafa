"""Running one script on one provider: what happens at the worker's `yield`.

Commands run in order. The first one that fails stops the script: its own
result becomes the `BatchError`, every later command's result a
`CommandNotExecutedError` that names it, and the same `BatchError` is raised
here (the engine throws it into the worker). If the run is cancelled, every
command not yet ended is cancelled. So every command's result is settled
before this returns, whichever way it returns (yapapi left them pending).
"""

import asyncio
from collections.abc import Callable
from typing import Any

from golem_task_api.node.workgen.commands import Command
from golem_task_api.node.workgen.errors import (
    BatchError,
    BatchTimeoutError,
    CommandExecutionError,
    CommandNotExecutedError,
    ProcessFailedError,
)
from golem_task_api.node.workgen.events import (
    CommandFailed,
    CommandFinished,
    CommandStarted,
    EventBus,
    EventKind,
    ScriptFailed,
    ScriptFinished,
    ScriptStarted,
)
from golem_task_api.node.workgen.progress import Progress, ProgressThrottle
from golem_task_api.node.workgen.provider import Provider
from golem_task_api.node.workgen.script import Script


async def run_script(script: Script, provider: Provider, events: EventBus) -> list[Any]:
    """Every command's result, in order; raises `BatchError` on the first failure."""

    def emit(kind: EventKind, index: int | None = None) -> None:
        events.emit(
            kind,
            batch_id=script.id,
            index=index,
            task_id=script.task_id,
            provider_id=provider.id,
        )

    commands = script.commands
    emit(ScriptStarted(tuple(c.describe() for c in commands)))
    loop = asyncio.get_running_loop()
    deadline = None if script.timeout is None else loop.time() + script.timeout
    results: list[Any] = []
    current: int | None = None
    try:
        for index, command in enumerate(commands):
            current = index
            results.append(await _run_command(script, index, command, provider, emit, deadline))
    except BatchError as error:
        for later in commands[error.index + 1 if error.index is not None else 0 :]:
            later._set_exception(_not_executed(later, error))
        emit(ScriptFailed(error.index, str(error)))
        raise
    except BaseException:
        for command in commands:
            if not command.done():
                command._cancel()
        emit(ScriptFailed(current, "cancelled"))
        raise
    emit(ScriptFinished())
    return results


async def _run_command(
    script: Script,
    index: int,
    command: Command[Any],
    provider: Provider,
    emit: Callable[[EventKind, int | None], None],
    deadline: float | None,
) -> Any:
    emit(CommandStarted(command.name, command.describe()), index)

    def send(value: Progress) -> None:
        emit(value, index)

    throttle = None if command.progress is None else ProgressThrottle(command.progress, send)
    on_progress = _ignore if throttle is None else throttle.update
    timeout = asyncio.timeout_at(deadline)
    try:
        async with timeout:
            value = await command.execute(provider, on_progress)
    except Exception as exc:
        if throttle is not None:
            throttle.flush()
        error = _command_error(script, index, command, provider, exc, timeout.expired())
        command._set_exception(error)
        returncode = exc.returncode if isinstance(exc, ProcessFailedError) else None
        emit(CommandFailed(command.name, str(error), returncode), index)
        raise error from None if isinstance(error, BatchTimeoutError) else exc
    finally:
        if throttle is not None:
            throttle.flush()
    command._set_result(value)
    emit(CommandFinished(command.name, command.return_code(value)), index)
    return value


def _command_error(
    script: Script,
    index: int,
    command: Command[Any],
    provider: Provider,
    exc: Exception,
    expired: bool,
) -> BatchError:
    where = f"command {index} ({command.describe()}) on provider {provider.id}"
    if expired:
        return BatchTimeoutError(
            f"script {script.id} ran out of its {script.timeout:g} s timeout in {where}",
            batch_id=script.id,
            index=index,
            command=command.describe(),
        )
    reason = str(exc) or type(exc).__name__
    return CommandExecutionError(
        f"{where} failed: {reason}",
        batch_id=script.id,
        index=index,
        command=command.describe(),
    )


def _not_executed(command: Command[Any], error: BatchError) -> CommandNotExecutedError:
    assert command.index is not None
    return CommandNotExecutedError(
        f"command {command.index} ({command.describe()}) was not executed because"
        f" command {error.index} ({error.command}) failed: {error}",
        index=command.index,
        failed_index=error.index,
    )


def _ignore(value: Progress) -> None:
    pass


__all__ = ["run_script"]
