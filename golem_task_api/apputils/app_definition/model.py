"""The app definition Golem nodes read, and the id they compute from it.

A node identifies an app by `id`: the BLAKE2b-128 hex digest of the
definition's JSON, with the fields in the order below and json.dumps'
default separators. Any change of a value, of the order of the fields, or of
a float written as an int changes the id, so values are normalised here (the
prerequisites to image-then-tag order, the score to a float). The saved file
holds exactly the hashed JSON: its own BLAKE2b-128 digest is the id.
"""

import dataclasses
import difflib
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

AppId = str

MARKET_STRATEGIES = ("brass", "wasm")
PREREQ_KEYS = ("image", "tag")


class AppDefinitionError(ValueError):
    """An app definition (or its config) that Golem nodes would not accept."""


@dataclass(frozen=True)
class AppDefinitionBase:
    # The order of the fields is part of the id: never reorder them.
    name: str
    requestor_env: str
    requestor_prereq: dict[str, str]
    max_benchmark_score: float
    version: str = "0.0"
    description: str = ""
    author: str = ""
    license: str = ""
    market_strategy: str = "brass"

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise AppDefinitionError("invalid app definition: " + "; ".join(problems))
        prereq = {key: self.requestor_prereq[key] for key in PREREQ_KEYS}
        object.__setattr__(self, "requestor_prereq", prereq)
        object.__setattr__(self, "max_benchmark_score", float(self.max_benchmark_score))

    @property
    def id(self) -> AppId:
        return hashlib.blake2b(self.to_json().encode(), digest_size=16).hexdigest()

    @property
    def file_name(self) -> str:
        """`{name}_{version}_{id}.json`, with '/' (as in 'owner/app') replaced by '_'."""
        return f"{self.name}_{self.version}_{self.id}.json".replace("/", "_")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        if not isinstance(data, Mapping):
            raise AppDefinitionError(f"an app definition is a JSON object, got {data!r}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [key for key in data if key not in names]
        if unknown:
            raise AppDefinitionError(
                "unknown app definition fields: "
                + ", ".join(_with_hint(key, names) for key in unknown)
            )
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.name not in data]
        if required:
            raise AppDefinitionError(f"missing app definition fields: {', '.join(required)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise AppDefinitionError(f"an app definition must be JSON: {e}") from e
        return cls.from_dict(data)


AppDefinition = AppDefinitionBase


def _with_hint(key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    return f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key)


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _problems(defn: AppDefinitionBase) -> list[str]:
    problems = [
        f"{field} must be a non-empty string, got {getattr(defn, field)!r}"
        for field in ("name", "requestor_env", "version")
        if not _is_text(getattr(defn, field))
    ]
    problems += [
        f"{field} must be a string, got {getattr(defn, field)!r}"
        for field in ("description", "author", "license")
        if not isinstance(getattr(defn, field), str)
    ]
    prereq = defn.requestor_prereq
    if not (
        isinstance(prereq, Mapping)
        and sorted(prereq) == sorted(PREREQ_KEYS)
        and all(_is_text(prereq[key]) for key in PREREQ_KEYS)
    ):
        problems.append(
            "requestor_prereq must have exactly the keys 'image' and 'tag', both non-empty"
            f" strings (a Docker image and its tag), got {prereq!r}"
        )
    score = defn.max_benchmark_score
    if (
        isinstance(score, bool)
        or not isinstance(score, int | float)
        or not math.isfinite(score)
        or score <= 0
    ):
        problems.append(f"max_benchmark_score must be a positive number, got {score!r}")
    if defn.market_strategy not in MARKET_STRATEGIES:
        problems.append(
            f"market_strategy must be one of {', '.join(MARKET_STRATEGIES)},"
            f" got {defn.market_strategy!r}"
        )
    return problems


__all__ = [
    "MARKET_STRATEGIES",
    "PREREQ_KEYS",
    "AppDefinition",
    "AppDefinitionBase",
    "AppDefinitionError",
    "AppId",
]
