import logging
from collections.abc import Iterator

import pytest

from golem_task_api.apputils import start_logging
from golem_task_api.apputils.start_logging import from_arg, parse_level

EXTERNAL = ("tests.apputils.ext1", "tests.apputils.ext2")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    names = (*start_logging.DEFAULT_EXTERNAL_LOGGERS, *EXTERNAL)
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_defaults() -> None:
    from_arg()
    assert logging.getLogger().getEffectiveLevel() == start_logging.DEFAULT_LEVEL
    for name in start_logging.DEFAULT_EXTERNAL_LOGGERS:
        assert logging.getLogger(name).level == logging.INFO


@pytest.mark.parametrize(
    ("arg", "level"),
    [("DEBUG", logging.DEBUG), ("debug", logging.DEBUG), (" Warning ", logging.WARNING),
     ("warn", logging.WARNING), ("40", logging.ERROR), (logging.CRITICAL, logging.CRITICAL)],
)
def test_level_from_arg(arg: str | int, level: int) -> None:
    from_arg(log_level_arg=arg)
    assert logging.getLogger().getEffectiveLevel() == level


@pytest.mark.parametrize("arg", [None, "", 0])
def test_not_given_means_the_default(arg: str | int | None) -> None:
    from_arg(arg, log_level_default=logging.WARNING)
    assert logging.getLogger().level == logging.WARNING


def test_invalid_level_warns_and_uses_the_default(caplog: pytest.LogCaptureFixture) -> None:
    from_arg("loud", log_level_default=logging.ERROR)
    assert logging.getLogger().level == logging.ERROR
    assert any(
        "--log-level: not a log level: 'loud'" in r.getMessage() and r.levelno == logging.WARNING
        for r in caplog.records
    )


def test_external_loggers() -> None:
    from_arg("DEBUG", external_loggers=iter(EXTERNAL), external_log_level="ERROR")
    assert logging.getLogger().level == logging.DEBUG
    for name in EXTERNAL:
        assert logging.getLogger(name).level == logging.ERROR


def test_adds_one_handler_only_when_there_is_none() -> None:
    root = logging.getLogger()
    root.handlers.clear()
    from_arg()
    from_arg("DEBUG")
    assert len(root.handlers) == 1
    assert root.handlers[0].formatter is not None
    assert root.handlers[0].formatter._fmt == start_logging.FORMAT


def test_keeps_an_apps_own_handlers() -> None:
    root = logging.getLogger()
    own = logging.NullHandler()
    root.handlers[:] = [own]
    from_arg("INFO")
    assert root.handlers == [own]


@pytest.mark.parametrize("value", ["loud", True, "", 1.5])
def test_parse_level_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="not a log level"):
        parse_level(value)  # type: ignore[arg-type]
