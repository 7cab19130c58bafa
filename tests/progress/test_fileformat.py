import pytest

from golem_task_api.progress import ProgressValue as V
from golem_task_api.progress import parse_line

GOOD = [
    ("1/4", V(1, 4)),
    ("1/4\n", V(1, 4)),
    ("3/4\r\n", V(3, 4)),
    ("  2 / 8 \t", V(2, 8)),
    ("0/0", V(0, 0)),
    ("4/4", V(4, 4)),
    ("2.5/10", V(2.5, 10)),
    (".5/1.", V(0.5, 1)),
    ("1e3/1E4", V(1000, 10000)),
    ("7/?", V(7, None)),
    ("7 / ?", V(7, None)),
    ("50%", V(50, 100)),
    ("12.5 %", V(12.5, 100)),
    ("0%", V(0, 100)),
    ("100%", V(100, 100)),
    (b"5/10\n", V(5, 10)),
    (
        '{"done": 3, "total": 10, "unit": "Frames", "message": "rendering",'
        ' "step": 1, "step_count": 2}',
        V(3, 10, "Frames", "rendering", 1, 2),
    ),
    ('{"done": 3}', V(3)),
    ('{"done": 1.5, "total": null}', V(1.5, None)),
    ('{"message": "loading the scene"}', V(0, message="loading the scene")),
    ("{}", V()),
    ('{"done": 2, "total": 2}\r\n', V(2, 2)),
    ('{"message": "a \\"quoted\\" ünïcödé"}', V(message='a "quoted" ünïcödé')),
]


@pytest.mark.parametrize(("line", "value"), GOOD, ids=[repr(g[0]) for g in GOOD])
def test_good_lines(line, value):
    parsed = parse_line(line)
    assert parsed == value
    assert isinstance(parsed.done, float)


BAD = [
    ("", "empty"),
    ("   \r\n", "empty"),
    ("1/", "expected"),  # half written
    ('{"done": 1', "bad JSON"),  # half written
    ("abc/10", "expected"),
    ("50", "expected"),
    ("0.5", "expected"),
    ("-1/10", "expected"),
    ("+5/10", "expected"),
    ("11/10", "done must be <= total"),
    ("5/0", "done must be <= total"),
    ("nan/10", "expected"),
    ("inf/10", "expected"),
    ("10/nan", "expected"),
    ("1e999/1e999", "finite"),
    ("5/10/2", "expected"),
    ("0x10/20", "expected"),
    ("1_000/2000", "expected"),
    ("/10", "expected"),
    ("5 10", "expected"),
    ("%", "expected"),
    ("150%", "done must be <= total"),
    ("-5%", "expected"),
    ("٣/٤", "expected"),  # digits, but not ASCII ones
    ("#argo progress=1/2", "expected"),
    (b"\xff/10", "UTF-8"),
    ('{"done": "3"}', "done must be a number"),
    ('{"done": true}', "done must be a number"),
    ('{"done": null}', "done must be a number"),
    ('{"total": "10"}', "total must be a number"),
    ('{"total": false}', "total must be a number"),
    ('{"done": -1}', ">= 0"),
    ('{"done": 5, "total": 4}', "done must be <= total"),
    ('{"done": NaN}', "not a number"),
    ('{"done": Infinity}', "not a number"),
    ('{"done": -Infinity}', "not a number"),
    ('{"done": 1e999}', "finite"),
    ('{"done": 1' + "0" * 5000 + "}", "bad JSON"),
    ('{"step": 1.0, "step_count": 2}', "step must be an integer"),
    ('{"step": true, "step_count": 2}', "step must be an integer"),
    ('{"step": 2, "step_count": 2}', "< step_count"),
    ('{"step": 1}', "step must be 0"),
    ('{"step": -1, "step_count": 2}', "step must be in"),
    ('{"step_count": 4294967296}', "step_count must be in"),
    ('{"unit": 5}', "unit must be a string"),
    ('{"message": ["x"]}', "message must be a string"),
    ('{"done": 1, "tota": 2}', "unknown key"),
    ("[1, 2]", "expected"),
    ('"5/10"', "expected"),
    ("{" + '"a": [' * 100_000 + "}", "JSON"),
]


@pytest.mark.parametrize(("line", "reason"), BAD, ids=[repr(b[0])[:40] for b in BAD])
def test_bad_lines_raise_value_error_never_zero(line, reason):
    with pytest.raises(ValueError, match=reason):
        parse_line(line)
