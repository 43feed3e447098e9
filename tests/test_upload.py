"""A user's two-feature CSV: accepted formats, every rejection with a clear message, edge cases."""

import warnings
from pathlib import Path

import numpy as np
import pytest

from bn_core import regression as R
from bn_core import theory as T
from bn_core import upload as U
from bn_core.upload import MAX_ABS, MAX_BYTES, MAX_ROWS, MIN_ABS, CsvError, parse_two_feature_csv

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


def _table(rows) -> bytes:
    return ("a,b,y\n" + "".join(f"{a!r},{b!r},{c!r}\n" for a, b, c in np.asarray(rows).tolist())).encode()


@pytest.mark.parametrize("scale", [1e160, 1e300, 1e51])
def test_huge_values_are_rejected_naming_the_column(scale):
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.uniform(1, 10, 30), rng.uniform(1, 200, 30), rng.uniform(0, 5, 30)])
    rows[:, 1] *= scale  # column b is huge but finite
    with pytest.raises(CsvError, match="column 'b'.*magnitude") as exc:
        parse_two_feature_csv(_table(rows))
    assert "Line 2" in str(exc.value)


def test_tiny_nonzero_values_are_rejected_but_zero_is_fine():
    with pytest.raises(CsvError, match="column 'y'.*magnitude"):
        parse_two_feature_csv(b"a,b,y\n1,2,3e-200\n4,5,6\n")
    d = parse_two_feature_csv(b"a,b,y\n0,2,3\n4,0,0\n")
    assert d.X[0, 0] == 0 and d.y[1] == 0


def test_data_at_the_magnitude_bound_runs_every_variant_without_a_numpy_warning():
    """The documented bound's promise: values up to MAX_ABS (and down to MIN_ABS) keep every
    statistic, run, loss grid and stability map finite, without overflow warnings."""
    rng = np.random.default_rng(1)
    rows = np.column_stack([rng.uniform(0.1, 1, 40) * MAX_ABS, rng.uniform(1, 9, 40) * MIN_ABS,
                            rng.uniform(0.1, 1, 40) * MAX_ABS])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = parse_two_feature_csv(_table(rows))
        for v in R.VARIANTS:
            p = R.make_problem(d.X, d.y, v)
            cond = T.conditioning(p.hessian)
            r = R.run(p, 0.5 * cond.max_stable_lr, 10, 3)
            assert not r.diverged and np.all(np.isfinite(r.history["loss"]))
            w = np.linspace(-1.0, 1.0, 5) * max(1.0, float(np.max(np.abs(r.theta_star[:2]))))
            assert np.all(np.isfinite(R.loss_grid(p.stats, w, w, R.slice_value(p))))
        m = R.stability_map(d.X, d.y, R.VARIANTS, np.array([1e-6, 3.0]), "lr", np.array([5, 40]), epochs=2)
        assert m.diverged[:, :, 1].any()  # lr 3 on the raw huge data diverges, quietly


def test_sufficient_statistics_that_overflow_are_rejected_naming_the_column(monkeypatch):
    """The safety net behind the bounds: with the bounds lifted, 1e160 still cannot get through."""
    monkeypatch.setattr(U, "MAX_ABS", float("inf"))
    monkeypatch.setattr(U, "MIN_ABS", 0.0)
    with pytest.raises(CsvError, match="Column 'a'.*overflow"):
        parse_two_feature_csv(b"a,b,y\n1e160,2,3\n4e160,5,6\n")
    with pytest.raises(CsvError, match="Column 'y'.*overflow"):
        parse_two_feature_csv(b"a,b,y\n1,2,3e200\n4,5,6\n")


@pytest.mark.parametrize("data, message", [
    (b"a,b,y\n" + b"1" * 200_000 + b",2,3\n4,5,6\n", "Line 2 cannot be read as CSV"),
    (b"a" * 200_000 + b",b,y\n1,2,3\n4,5,6\n", "Line 1 cannot be read as CSV"),
    (b"  \n\n\t\n", "empty"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not UTF-8"),
    (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00xl/workbook.xml" * 10, "Excel workbook"),
    ("a,b,y\n1,2,3\n4,5,6\n".encode("utf-16"), "UTF-16"),
    ("a,b,y\n1,2,3\n4,5,6\n".encode("utf-16-le"), "NUL bytes"),
    (b"a,b,y\n1,2,3\n", "1 data row"),
    (b"a,b,y\n", "0 data row"),
    (b"a,b,y\n1,NaN,3\n4,5,6\n", "column 'b': 'NaN' is not a finite number"),
    (b"a,b,y\n1,2,-Infinity\n4,5,6\n", "column 'y': '-Infinity' is not a finite number"),
    (b"a,b\n1,2\n3,4\n", "first line has 2: a, b"),
    (b",".join(b"c%d" % i for i in range(10)) + b"\n" + b",".join([b"1"] * 10) + b"\n", "first line has 10"),
    (b"a;b;y\n1,5;2;3\n4,5;5;6\n", "decimal separator"),
])
def test_malformed_uploads_get_a_clear_message(data, message):
    with pytest.raises(CsvError, match=message) as exc:
        parse_two_feature_csv(data)
    text = str(exc.value)
    assert len(text) < 400 and all(ch.isprintable() for ch in text)  # readable, never a dump of the file


def test_a_hundred_thousand_rows_under_the_size_limit_use_the_first_rows():
    data = b"a,b,y\n" + b"".join(b"%d,%d,%d\n" % (i % 100, i % 7, i % 13) for i in range(100_000))
    assert len(data) <= MAX_BYTES
    d = parse_two_feature_csv(data)
    assert len(d.y) == MAX_ROWS and d.notes[0] == f"The file has 100000 rows; the first {MAX_ROWS} are used."
    np.testing.assert_array_equal(d.X[:3], [[0, 0], [1, 1], [2, 2]])


def test_constant_note_follows_the_scalers_rule():
    """A column that varies by round-off only (1e-13 of its size) is constant for the scalers,
    so the reader notes it too; a small but real spread is not flagged."""
    d = parse_two_feature_csv("a,b,y\n1000000,1,3\n1000000.0000001,2,4\n1000000,4,9\n")
    assert any("'a' is constant" in note for note in d.notes)
    d = parse_two_feature_csv("a,b,y\n1e-20,1,3\n2e-20,2,4\n3e-20,4,9\n")
    assert not any("is constant" in note for note in d.notes)
