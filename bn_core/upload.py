"""A user's own two-feature regression data: parse and validate a small CSV, with clear messages.

The expected file is plain text with three numeric columns, **feature 1, feature 2, target**
(the target last), separated by commas, semicolons or tabs, with or without a header row::

    area_m2,rooms,price_k
    84.2,3,296.1
    ...

Everything that can be wrong is reported by :class:`CsvError` with the line and column of the
first problem, in words a student can act on. Nothing here draws random numbers.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

import numpy as np

#: Largest accepted file, and the most rows used (more are cut, with a note).
MAX_BYTES = 1_000_000
MAX_ROWS = 500


class CsvError(ValueError):
    """The CSV cannot be used; the message says why and where."""


@dataclass(frozen=True)
class CsvDataset:
    """Two features and a target from a user's CSV.

    Attributes
    ----------
    X : ndarray of shape (n_samples, 2)
    y : ndarray of shape (n_samples,)
    feature_names : tuple of str
        Two names (from the header, or ``("x1", "x2")``).
    target_name : str
    notes : tuple of str
        Things the user should know (rows cut, constant feature, ...).
    true_weights : None
        Unknown for real data (the seed recipe has 2 and 3).
    """

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple
    target_name: str
    notes: tuple = ()
    true_weights: None = None


def _number(text: str) -> float | None:
    try:
        x = float(text.strip())
    except ValueError:
        return None
    return x


def parse_two_feature_csv(data: bytes | str, max_rows: int = MAX_ROWS) -> CsvDataset:
    """Parse ``data`` (the file's bytes or text) into a :class:`CsvDataset`.

    Raises
    ------
    CsvError
        Not UTF-8 text, too large, not 3 columns, a row of another length, a value that is not
        a finite number (the line, column and value are named), or fewer than 2 data rows.
    """
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise CsvError(f"The file is {len(data) / 1e6:.1f} MB; at most {MAX_BYTES / 1e6:.0f} MB is accepted.")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CsvError("The file is not UTF-8 text: save it as CSV (UTF-8) from your spreadsheet.") from exc
    else:
        text = data
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise CsvError("The file is empty.")
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    first = [c.strip() for c in rows[0]]
    has_header = any(_number(c) is None for c in first)
    if len(first) != 3:
        raise CsvError(f"Expected 3 columns (feature 1, feature 2, target: the target last); the first line has "
                       f"{len(first)}: {', '.join(first) or '(nothing)'}.")
    names = first if has_header else ["x1", "x2", "y"]
    body = rows[1:] if has_header else rows
    values = []
    for i, row in enumerate(body):
        line_no = i + (2 if has_header else 1)
        if len(row) != 3:
            raise CsvError(f"Line {line_no} has {len(row)} values; every line needs 3 ({', '.join(names)}).")
        parsed = []
        for name, cell in zip(names, row, strict=True):
            x = _number(cell)
            if cell.strip() == "":
                raise CsvError(f"Line {line_no}, column '{name}': the value is missing.")
            if x is None or not math.isfinite(x):
                raise CsvError(f"Line {line_no}, column '{name}': '{cell.strip()}' is not a finite number.")
            parsed.append(x)
        values.append(parsed)
    if len(values) < 2:
        raise CsvError(f"The file has {len(values)} data row(s); at least 2 are needed to fit a regression.")
    notes = []
    if len(values) > max_rows:
        notes.append(f"The file has {len(values)} rows; the first {max_rows} are used.")
        values = values[:max_rows]
    arr = np.array(values, dtype=float)
    X, y = arr[:, :2], arr[:, 2]
    with np.errstate(all="ignore"):
        spread = X.max(axis=0) - X.min(axis=0)
    for j in range(2):
        if spread[j] == 0:
            notes.append(f"Feature '{names[j]}' is constant: it carries no information, its scale is set to 1 and "
                         f"the condition number is infinite.")
    if np.max(np.abs(arr)) > 1e12:
        notes.append("Some values exceed 1e12 in magnitude: raw gradient descent needs tiny steps on such data.")
    return CsvDataset(X, y, (names[0], names[1]), names[2], tuple(notes))
