import json
import random
from pathlib import Path

import pytest

from apps.tutorial import pow
from apps.tutorial.params import SubtaskParams
from apps.tutorial.verification import poisson_at_most, sample_size_for, verify_range

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


def test_a_range_that_was_not_searched_fails_on_the_count(tmp_path: Path) -> None:
    # ~312 solutions expected: none, or a third of them, cannot be honest.
    for reported in ([], HONEST[: len(HONEST) // 3]):
        verdict = verify_range(DATA, PARAMS, result(tmp_path, {"nonces": reported}))
        assert not verdict.ok
        assert "the range was not fully searched" in (verdict.reason or "")


def test_few_omissions_where_solutions_are_sparse_are_caught(tmp_path: Path) -> None:
    # Difficulty 10 over 20000 nonces: ~20 solutions; 3 % of the range would
    # hold less than one, so the sample grows to hold ~16.
    params = SubtaskParams(start=0, end=20000, difficulty=10, data_file="data.bin")
    honest = pow.search(DATA, 0, 20000, 10)
    assert sample_size_for(params) == 16 * 1024
    dropped = honest[1::2]
    caught = sum(
        not verify_range(DATA, params, result(tmp_path, {"nonces": dropped}),
                         random.Random(seed)).ok
        for seed in range(20)
    )
    assert caught == 20


@pytest.mark.parametrize(
    ("count", "mean", "low", "high"),
    [(0, 5.0, 6.7e-3, 6.8e-3), (10, 5.0, 1.0, 1.0), (4000, 5000.0, 0.0, 1e-40)],
)
def test_poisson_tail(count: int, mean: float, low: float, high: float) -> None:
    assert low <= poisson_at_most(count, mean) <= high
