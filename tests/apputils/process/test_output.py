"""Input, output, environment and errors of run_cmd, with real child processes."""

import logging
import os
import subprocess
from pathlib import Path

import pytest

from golem_task_api.apputils.process import CAPTURE, DEVNULL, PIPE, STDOUT, run_cmd
from golem_task_api.apputils.process.output import MAX_LINE

from .children import PYTHON


def py(code: str) -> list[str]:
    return [PYTHON, "-c", "import os, sys\n" + code]


async def test_capture() -> None:
    result = await run_cmd(
        py("print('out'); print('err', file=sys.stderr)"), stdout=CAPTURE, stderr=CAPTURE
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"out\n", b"err\n")
    assert result.args[0] == PYTHON


async def test_not_captured_is_none() -> None:
    result = await run_cmd(py("print('x')"), stdout=DEVNULL)
    assert result.stdout is None and result.stderr is None


async def test_stderr_into_stdout() -> None:
    code = "print('a', flush=True); print('b', file=sys.stderr, flush=True); print('c')"
    result = await run_cmd(py(code), stdout=CAPTURE, stderr=STDOUT)
    assert result.stdout == b"a\nb\nc\n"


async def test_to_files(tmp_path: Path) -> None:
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    out.write_text("old content that is replaced\n")
    await run_cmd(py("print('o'); print('e', file=sys.stderr)"), stdout=out, stderr=str(err))
    assert out.read_text() == "o\n"
    assert err.read_text() == "e\n"


async def test_stdout_and_stderr_to_one_path(tmp_path: Path) -> None:
    log = tmp_path / "both.log"
    code = "print('a', flush=True); print('b', file=sys.stderr, flush=True); print('c')"
    await run_cmd(py(code), stdout=log, stderr=tmp_path / "." / "both.log")
    assert log.read_text() == "a\nb\nc\n"


async def test_to_an_open_file(tmp_path: Path) -> None:
    with open(tmp_path / "log", "wb") as f:
        f.write(b"header\n")
        f.flush()
        await run_cmd(py("print('body')"), stdout=f)
    assert (tmp_path / "log").read_bytes() == b"header\nbody\n"


async def test_to_a_logger(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("tests.apputils.child")
    caplog.set_level(logging.INFO, logger=log.name)
    await run_cmd(py("print('one'); print('two', file=sys.stderr)"), stdout=log, stderr=log)
    messages = sorted(r.getMessage() for r in caplog.records if r.name == log.name)
    program = Path(PYTHON).name
    assert messages == [f"{program}: one", f"{program}: two"]


async def test_lines_to_a_function() -> None:
    lines: list[str] = []
    code = r"sys.stdout.write('a\nb\r\nc\rd\n\n\ne'); sys.stdout.flush(); sys.stdout.write('f\n')"
    await run_cmd(py(code), stdout=lines.append)
    assert lines == ["a", "b", "c", "d", "ef"]


async def test_long_lines_and_bad_utf8() -> None:
    lines: list[str] = []
    code = f"sys.stdout.buffer.write(b'z' * {3 * MAX_LINE} + b'\\n' + b'caf\\xe9\\n')"
    await run_cmd(py(code), stdout=lines.append)
    assert "".join(lines[:-1]) == "z" * 3 * MAX_LINE
    assert len(lines) > 2
    assert lines[-1] == "caf\N{REPLACEMENT CHARACTER}"


async def test_a_failing_line_handler_does_not_kill_the_command(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(line: str) -> None:
        raise ValueError("handler bug")

    code = "for i in range(20000): print(i)"
    result = await run_cmd(py(code), stdout=broken, stderr=CAPTURE)
    assert result.returncode == 0  # not killed by SIGPIPE
    failures = [r for r in caplog.records if "output handler failed" in r.getMessage()]
    assert len(failures) == 1


async def test_stdin_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(b"hello")
    result = await run_cmd(py("print(sys.stdin.read().upper())"), stdin=tmp_path / "in",
                           stdout=CAPTURE)
    assert result.stdout == b"HELLO\n"


async def test_stdin_is_empty_by_default() -> None:
    result = await run_cmd(py("print(repr(sys.stdin.read()))"), stdout=CAPTURE)
    assert result.stdout == b"''\n"


async def test_cwd(tmp_path: Path) -> None:
    result = await run_cmd(py("print(os.getcwd())"), cwd=tmp_path, stdout=CAPTURE)
    assert result.stdout == f"{tmp_path}\n".encode()


async def test_env_replaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_APP", "1")
    code = "print(os.environ.get('ONLY'), os.environ.get('FROM_APP'))"
    result = await run_cmd(py(code), env={"ONLY": "yes"}, stdout=CAPTURE)
    assert result.stdout == b"yes None\n"


async def test_env_update_extends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_APP", "1")
    code = "print(os.environ.get('ADDED'), os.environ.get('FROM_APP'))"
    result = await run_cmd(py(code), env_update={"ADDED": "2"}, stdout=CAPTURE)
    assert result.stdout == b"2 1\n"
    assert "ADDED" not in os.environ


async def test_check() -> None:
    with pytest.raises(subprocess.CalledProcessError) as info:
        await run_cmd(py("print('why', file=sys.stderr); sys.exit(4)"), check=True,
                      stderr=CAPTURE)
    assert info.value.returncode == 4
    assert info.value.stderr == b"why\n"
    result = await run_cmd(py("pass"), check=True)
    result.check_returncode()


@pytest.mark.parametrize(
    ("cmd", "message"),
    [
        ("ls -l", "not one string"),
        (b"ls", "not one string"),
        ([], "non-empty list"),
        (["ls", 3], "expected str"),
    ],
)
async def test_bad_commands(cmd: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        await run_cmd(cmd)  # type: ignore[arg-type]


async def test_missing_program(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await run_cmd([str(tmp_path / "no-such-program")])


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"stdin": PIPE}, ValueError, "stdin cannot be PIPE"),
        ({"stdout": STDOUT}, ValueError, "only be given for stderr"),
        ({"stdout": True}, TypeError, "expected an output"),
        ({"stderr": object()}, TypeError, "expected an output"),
        ({"stdin": 1.5}, TypeError, "stdin: expected"),
    ],
)
async def test_bad_streams(
    options: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await run_cmd(py("pass"), **options)  # type: ignore[arg-type]
