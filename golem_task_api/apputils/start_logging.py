"""Logging for an app's entrypoint, from a `--log-level` argument (the original `from_arg`).

For anything more elaborate, use logging.config.dictConfig.
"""

import logging
from collections.abc import Iterable

DEFAULT_LEVEL = logging.INFO
# Chatty libraries an app's log is not about: hpack/peewee as in the original
# package, grpc for this one's transport.
DEFAULT_EXTERNAL_LOGGERS = ("hpack", "peewee", "grpc")
LOG_LEVEL_VALUES = ["CRITICAL", "ERROR", "INFO", "WARNING", "DEBUG"]
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

LogLevelArg = str | int

logger = logging.getLogger(__name__)


def parse_level(value: LogLevelArg) -> int:
    """The numeric level of 'DEBUG', 'debug', 'warn', '10' or 10; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a log level: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        level = logging.getLevelNamesMapping().get(text.upper())
        if level is not None:
            return level
    raise ValueError(f"not a log level: {value!r} (one of {', '.join(LOG_LEVEL_VALUES)})")


def _level_or(value: LogLevelArg | None, default: int, what: str) -> int:
    # Falsy means "not given", as in the original (so 0 and '' too).
    if not value:
        return default
    try:
        return parse_level(value)
    except ValueError as e:
        logger.warning("%s: %s; using %s", what, e, logging.getLevelName(default))
        return default


def from_arg(
    log_level_arg: LogLevelArg | None = None,
    log_level_default: int = DEFAULT_LEVEL,
    external_loggers: Iterable[str] = DEFAULT_EXTERNAL_LOGGERS,
    external_log_level: LogLevelArg = DEFAULT_LEVEL,
) -> None:
    """Log to stderr at `log_level_arg` (a name or a number; if not given or
    invalid, `log_level_default`), and set `external_loggers` to
    `external_log_level`.

    A handler is added only if the root logger has none, so calling this
    twice, or after the app configured logging itself, adds no duplicates.
    """
    logging.basicConfig(format=FORMAT)
    level = _level_or(log_level_arg, parse_level(log_level_default), "--log-level")
    logging.getLogger().setLevel(level)
    external_level = _level_or(external_log_level, DEFAULT_LEVEL, "external log level")
    external_loggers = tuple(external_loggers)
    for name in external_loggers:
        logging.getLogger(name).setLevel(external_level)
    logger.debug(
        "log level %s; %s at %s",
        logging.getLevelName(level),
        ", ".join(external_loggers),
        logging.getLevelName(external_level),
    )


__all__ = [
    "DEFAULT_EXTERNAL_LOGGERS",
    "DEFAULT_LEVEL",
    "LOG_LEVEL_VALUES",
    "LogLevelArg",
    "from_arg",
    "parse_level",
]
