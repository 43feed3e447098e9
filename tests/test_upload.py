"""A user's two-feature CSV: accepted formats, every rejection with a clear message, edge cases."""

from pathlib import Path

import numpy as np
import pytest

from bn_core import regression as R
from bn_core.upload import MAX_BYTES, CsvError, parse_two_feature_csv

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "example_two_features.csv"


def test_example_file_parses_and_has_the_valley():
    d = parse_two_feature_csv(EXAMPLE.read_bytes())
    assert d.feature_names == ("area_m2", "rooms") and d.target_name == "price_k"
    assert d.X.shape == (60, 2) and d.y.shape == (60,) and d.notes == ()
    raw = np.linalg.eigvalsh(R.make_problem(d.X, d.y, "raw").hessian)
    std = np.linalg.eigvalsh(R.make_problem(d.X, d.y, "standardized").hessian)
    assert raw[-1] / raw[0] > 50 * std[-1] / std[0]  # a valley raw, a bowl standardized


@pytest.mark.parametrize("text", [
    "a,b,y\n1,2,3\n4,5,6\n",
    "a;b;y\n1;2;3\n4;5;6\n",
    "a\tb\ty\n1\t2\t3\n4\t5\t6\n",
    "1,2,3\n4,5,6\n",
    "\ufeffa,b,y\r\n1,2,3\r\n\r\n4,5,6\r\n",
])
def test_accepted_formats(text):
    d = parse_two_feature_csv(text.encode("utf-8"))
    np.testing.assert_array_equal(d.X, [[1, 2], [4, 5]])
    np.testing.assert_array_equal(d.y, [3, 6])


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"\xff\xfe\x00garbage", "UTF-8"),
    (b"a,b\n1,2\n3,4\n", "3 columns"),
    (b"a,b,c,d\n1,2,3,4\n", "3 columns"),
    (b"a,b,y\n1,2,3\n4,5\n", "Line 3 has 2 values"),
    (b"a,b,y\n1,2,3\n4,x,6\n", "Line 3, column 'b': 'x' is not a finite number"),
    (b"a,b,y\n1,2,nan\n4,5,6\n", "'nan' is not a finite number"),
    (b"a,b,y\n1,2,inf\n4,5,6\n", "'inf' is not a finite number"),
    (b"a,b,y\n1,,3\n4,5,6\n", "missing"),
    (b"a,b,y\n1,2,3\n", "at least 2"),
    (b"x" * (MAX_BYTES + 1), "MB"),
])
def test_rejections_say_what_and_where(data, message):
    with pytest.raises(CsvError, match=message):
        parse_two_feature_csv(data)


def test_too_many_rows_are_cut_with_a_note():
    text = "a,b,y\n" + "".join(f"{i},{i % 7},{i * 2}\n" for i in range(30))
    d = parse_two_feature_csv(text, max_rows=10)
    assert len(d.y) == 10 and "first 10" in d.notes[0]


def test_constant_feature_is_accepted_noted_and_runs():
    d = parse_two_feature_csv("a,b,y\n5,1,3\n5,2,4\n5,4,9\n")
    assert any("'a' is constant" in note for note in d.notes)
    for v in R.VARIANTS:
        r = R.run(R.make_problem(d.X, d.y, v), 1e-3, 3, 5)
        assert np.all(np.isfinite(r.history["loss"]))
