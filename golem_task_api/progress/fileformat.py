"""One line of a progress file, as a child process writes it.

Accepted (surrounding whitespace, and so CRLF endings, ignored):

    3/10        done/total
    3/?         total unknown
    30%         30/100
    {"done": 3, "total": 10, "unit": "Frames", "message": "rendering",
     "step": 0, "step_count": 2}     any of these keys; "total": null = unknown

A line is a whole value, like one `report()` call: fields it leaves out take
report()'s defaults. Numbers are plain decimals (no sign, no nan/inf, no hex),
finite, done >= 0 and done <= total. Anything else raises ValueError, never
comes out as 0.
"""

import json
import re
from typing import Any, NoReturn

from golem_task_api.progress.value import ProgressValue

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_FRACTION = re.compile(rf"({_NUMBER})[ \t]*/[ \t]*({_NUMBER}|\?)")
_PERCENT = re.compile(rf"({_NUMBER})[ \t]*%")
_KEYS = ("done", "total", "unit", "message", "step", "step_count")
_NUMBER_TYPES = (int, float)


def parse_line(line: str | bytes) -> ProgressValue:
    """The value of one line (without or with its line ending); ValueError if bad."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("not UTF-8") from None
    text = line.strip()
    if not text:
        raise ValueError("empty line")
    if text.startswith("{"):
        return _parse_json(text)
    match = _FRACTION.fullmatch(text)
    if match:
        done, total = match.groups()
        return _checked(done=float(done), total=None if total == "?" else float(total))
    match = _PERCENT.fullmatch(text)
    if match:
        return _checked(done=float(match.group(1)), total=100.0)
    raise ValueError("expected N/M, N/?, N% or a JSON object")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number here")


def _parse_json(text: str) -> ProgressValue:
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"bad JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError("JSON must be an object")
    unknown = sorted(set(obj) - set(_KEYS))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}; expected any of {', '.join(_KEYS)}")
    for key in ("done", "total"):
        value = obj.get(key)
        if key in obj and not (_is_json_number(value) or (key == "total" and value is None)):
            raise ValueError(f"{key} must be a number, got {json.dumps(value)}")
    for key in ("step", "step_count"):
        value = obj.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{key} must be an integer, got {json.dumps(value)}")
    for key in ("unit", "message"):
        if not isinstance(obj.get(key, ""), str):
            raise ValueError(f"{key} must be a string, got {json.dumps(obj[key])}")
    return _checked(**obj)


def _is_json_number(value: Any) -> bool:
    return isinstance(value, _NUMBER_TYPES) and not isinstance(value, bool)


def _checked(**fields: Any) -> ProgressValue:
    try:
        return ProgressValue.checked(**fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc).removeprefix("progress ")) from None


__all__ = ["parse_line"]
