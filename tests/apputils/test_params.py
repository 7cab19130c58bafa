import pytest

from golem_task_api.apputils.params import integer, refuse_unknown
from golem_task_api.errors import InvalidArgument


def test_refuse_unknown_passes_known_keys() -> None:
    refuse_unknown({"a": 1}, {"a", "b"})
    refuse_unknown({}, frozenset())


def test_refuse_unknown_names_the_unknown_and_the_known() -> None:
    with pytest.raises(InvalidArgument) as caught:
        refuse_unknown({"a": 1, "zz": 2, "colour": 3}, ["b", "a"], "subtask params")
    assert caught.value.message == "unknown subtask params: colour, zz (known: a, b)"


@pytest.mark.parametrize("value", [0, 5, 10])
def test_integer(value: int) -> None:
    assert integer(value, "samples", 0, 10) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "samples must be an integer, got True"),
        (1.0, "samples must be an integer, got 1.0"),
        ("3", "samples must be an integer, got '3'"),
        (None, "samples must be an integer, got None"),
        (11, "samples must be 0-10, got 11"),
        (-1, "samples must be 0-10, got -1"),
    ],
)
def test_integer_refuses(value: object, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        integer(value, "samples", 0, 10)
    assert caught.value.message == message
