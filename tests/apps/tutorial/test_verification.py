import json
import random
from pathlib import Path

import pytest

from apps.tutorial import pow
from apps.tutorial.params import SubtaskParams
from apps.tutorial.verification import verify_range

DATA = b"verification"
PARAMS = SubtaskParams(start=1000, end=21000, difficulty=6, data_file="data.bin")
HONEST = pow.search(DATA, PARAMS.start, PARAMS.end, PARAMS.difficulty)


def result(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "result.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_an_honest_result_passes(tmp_path: Path) -> None:
    verdict = verify_range(DATA, PARAMS, result(tmp_path, {"nonces": HONEST[::-1]}))
    assert verdict.ok and verdict.reason is None
    assert verdict.nonces == HONEST


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("not json", "not valid JSON"),
        ({"nonce": []}, 'must be {"nonces": [integers]}'),
        ({"nonces": ["1"]}, 'must be {"nonces": [integers]}'),
        ({"nonces": [True]}, 'must be {"nonces": [integers]}'),
        ({"nonces": HONEST + HONEST[:1]}, "lists a nonce twice"),
        ({"nonces": [*HONEST, 5]}, "nonce 5 is outside the range [1000, 21000)"),
        ({"nonces": sorted({*HONEST, HONEST[0] + 1} - {HONEST[0]})}, "leading zero bits"),
    ],
)
def test_a_bad_or_forged_result_fails_with_a_reason(
    tmp_path: Path, content: object, reason: str
) -> None:
    if isinstance(content, dict) and content.get("nonces") and "leading" in reason:
        # Replace a real solution by a neighbour that is not one.
        fake = next(n for n in range(HONEST[0] + 1, PARAMS.end)
                    if n not in HONEST and not pow.is_solution(DATA, n, PARAMS.difficulty))
        content = {"nonces": [fake, *HONEST[1:]]}
    verdict = verify_range(DATA, PARAMS, result(tmp_path, content))
    assert not verdict.ok
    assert reason in (verdict.reason or "")


def test_a_missing_file_fails(tmp_path: Path) -> None:
    verdict = verify_range(DATA, PARAMS, tmp_path / "result.json")
    assert not verdict.ok and "no result file" in (verdict.reason or "")


def test_an_incomplete_result_is_caught_by_the_sample(tmp_path: Path) -> None:
    # The provider reported only the first half: a 3 % sample of 20000
    # nonces (600) finds one of the ~150 omitted solutions practically always;
    # seeded, so the test is deterministic.
    half = HONEST[: len(HONEST) // 2]
    caught = sum(
        not verify_range(DATA, PARAMS, result(tmp_path, {"nonces": half}), random.Random(seed)).ok
        for seed in range(20)
    )
    assert caught == 20


def test_an_empty_result_of_a_range_with_solutions_fails(tmp_path: Path) -> None:
    verdict = verify_range(DATA, PARAMS, result(tmp_path, {"nonces": []}), random.Random(1))
    assert not verdict.ok
    assert "missing from the result" in (verdict.reason or "")
