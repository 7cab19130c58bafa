import hashlib

import pytest

from apps.tutorial import pow
from apps.tutorial.params import SubtaskParams, TaskParams, split_range
from golem_task_api.errors import InvalidArgument


def leading_zero_bits(data: bytes, nonce: int) -> int:
    digest = hashlib.sha256(data + nonce.to_bytes(8, "big")).digest()
    return 256 - int.from_bytes(digest, "big").bit_length()


@pytest.mark.parametrize("difficulty", [0, 1, 4, 9])
def test_search_finds_exactly_the_solutions(difficulty: int) -> None:
    data = b"tutorial"
    expected = [n for n in range(3000) if leading_zero_bits(data, n) >= difficulty]
    assert pow.search(data, 0, 3000, difficulty) == expected
    assert pow.solutions_among(data, range(3000), difficulty) == expected


def test_search_of_a_sub_range_and_chunk_callbacks() -> None:
    done: list[int] = []
    found = pow.search(b"x", 1000, 1000 + 2 * pow.CHUNK + 5, 3, on_chunk=done.append)
    assert all(1000 <= n < 1000 + 2 * pow.CHUNK + 5 for n in found)
    assert done == [pow.CHUNK, 2 * pow.CHUNK, 2 * pow.CHUNK + 5]


def test_search_stops_when_asked() -> None:
    with pytest.raises(InterruptedError):
        pow.search(b"x", 0, 10 * pow.CHUNK, 1, should_stop=lambda: True)


def test_extreme_difficulties() -> None:
    assert pow.is_solution(b"x", 5, 0)
    assert not pow.is_solution(b"x", 5, 256)
    with pytest.raises(ValueError, match="0-256"):
        pow.threshold(257)


@pytest.mark.parametrize(
    ("space", "parts", "expected"),
    [
        (10, 3, [(0, 4), (4, 7), (7, 10)]),
        (2, 5, [(0, 1), (1, 2)]),
        (1, 1, [(0, 1)]),
        (9, 3, [(0, 3), (3, 6), (6, 9)]),
    ],
)
def test_split_range_is_contiguous_and_even(space: int, parts: int, expected: list) -> None:
    assert split_range(space, parts) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"difficulty": 1}, "search_space must be an integer"),
        ({"difficulty": "8", "search_space": 10}, "difficulty must be an integer"),
        ({"difficulty": True, "search_space": 10}, "difficulty must be an integer"),
        ({"difficulty": 300, "search_space": 10}, "difficulty must be 0-256"),
        ({"difficulty": 1, "search_space": 0}, "search_space must be 1-"),
        ({"difficulty": 1, "search_space": 10, "resources": "data.bin"}, "resources must be"),
        ({"difficulty": 1, "search_space": 10, "resources": []}, "resources must be"),
        ({"difficulty": 1, "search_space": 10, "colour": "red"}, "unknown task params: colour"),
    ],
)
def test_bad_task_params_are_invalid_arguments(params: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        TaskParams.from_dict(params)


def test_subtask_params_round_trip_and_checks() -> None:
    params = SubtaskParams(5, 10, 3, "data.bin")
    assert SubtaskParams.from_dict(params.to_dict()) == params
    assert params.size == 5
    with pytest.raises(InvalidArgument, match="end must be"):
        SubtaskParams.from_dict({"start": 5, "end": 5, "difficulty": 1, "data_file": "d"})
    with pytest.raises(InvalidArgument, match="data_file"):
        SubtaskParams.from_dict({"start": 0, "end": 5, "difficulty": 1})
