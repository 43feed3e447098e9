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

from bn_core.scaling import fit_minmax

#: Largest accepted file in MB, as Streamlit counts them (1 MB = 1024 * 1024 bytes): the server's
#: ``maxUploadSize`` in .streamlit/config.toml and the uploader's ``max_upload_size`` use the
#: same number, so the browser refuses a larger file before it is sent.
MAX_MB = 1
MAX_BYTES = MAX_MB * 1024 * 1024
#: The most rows used (more are cut, with a note).
MAX_ROWS = 500

#: Accepted magnitudes: every value must satisfy ``|x| <= MAX_ABS`` and, unless it is 0,
#: ``|x| >= MIN_ABS``. The chapter squares and multiplies values: ``D^T D`` sums ``x^2`` over up
#: to ``MAX_ROWS`` rows, and the drawn loss grid evaluates ``x^2 w^2`` with weights up to
#: ``|y / x|``, i.e. up to the 6th power of the bound. With ``10^50`` that is at most
#: ``500 * 10^300``, still below the largest double (1.8e308); squares of values below
#: ``10^-50`` would underflow to 0 and make a varying feature look constant. Rescale data
#: outside this range (e.g. choose other units).
MAX_ABS = 1e50
MIN_ABS = 1e-50

#: Characters of the first line inspected to guess the delimiter (the sniffer is slow on
#: very long lines, and a header never needs more).
SNIFF_CHARS = 4096

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


def _short(text: str, limit: int = 60) -> str:
    """``text`` for a message: printable, and cut to ``limit`` characters."""
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[:limit] + "…"


def _decode(data: bytes) -> str:
    """The file's text (UTF-8, with or without BOM); anything else is a :class:`CsvError` saying what it is."""
    if len(data) > MAX_BYTES:
        raise CsvError(f"The file is {len(data) / 2**20:.2f} MB; at most {MAX_MB} MB is accepted.")
    if data[:4] == b"PK\x03\x04":
        raise CsvError("This looks like an Excel workbook or another zip archive, not a CSV: open it in your "
                       "spreadsheet and save it as CSV (UTF-8).")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise CsvError("The file is UTF-16 text (what a spreadsheet saves as 'Unicode text'): save it as "
                       "CSV (UTF-8) instead.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvError("The file is not UTF-8 text (is it a binary file, or saved in another encoding?): "
                       "save it as CSV (UTF-8) from your spreadsheet.") from exc
    if "\x00" in text:
        raise CsvError("The file contains NUL bytes: it is a binary file or UTF-16 text without a byte-order "
                       "mark. Save it as CSV (UTF-8) from your spreadsheet.")
    return text


def _cell_value(cell: str, name: str, line_no: int) -> float:
    """One cell as a float within the accepted range, or a :class:`CsvError` saying where and why."""
    text = cell.strip()
    if text == "":
        raise CsvError(f"Line {line_no}, column '{name}': the value is missing.")
    x = _number(text)
    if x is None or not math.isfinite(x):
        hint = " (use a dot as the decimal separator and no thousands separators)" if "," in text else ""
        raise CsvError(f"Line {line_no}, column '{name}': '{_short(text)}' is not a finite number{hint}.")
    if abs(x) > MAX_ABS or 0 < abs(x) < MIN_ABS:
        raise CsvError(f"Line {line_no}, column '{name}': {_short(text)} is outside the accepted magnitude range "
                       f"{MIN_ABS:.0e} … {MAX_ABS:.0e} (squares of such values overflow or underflow): "
                       f"rescale the column, e.g. by choosing other units.")
    return x


def _check_statistics(X: np.ndarray, y: np.ndarray, names: list) -> None:
    """Reject data whose sufficient statistics (X^T X, X^T y, y^T y, centered sums of squares)
    are not finite, naming the column. A safety net behind the magnitude bounds."""
    cols = np.column_stack([X, y])
    with np.errstate(all="ignore"):
        gram = cols.T @ cols
        centered = cols - cols.mean(axis=0)
        spread = np.sum(centered * centered, axis=0)
    for j, name in enumerate(names):
        if not (np.all(np.isfinite(gram[j])) and np.isfinite(spread[j])):
            raise CsvError(f"Column '{name}': its sums of squares overflow in floating point (the values are too "
                           f"large); rescale the column, e.g. by choosing other units.")


def constant_note(feature: str) -> str:
    """The note for a constant feature (the app recognizes it with :func:`is_constant_note`)."""
    return (f"Feature '{feature}' is constant: it carries no information, its scale is set to 1 and "
            "the condition number is infinite.")


def is_constant_note(note: str, feature_names) -> bool:
    """True for :func:`constant_note`'s note about one of ``feature_names``."""
    return any(note == constant_note(f) for f in feature_names)


def parse_two_feature_csv(data: bytes | str, max_rows: int = MAX_ROWS) -> CsvDataset:
    """Parse ``data`` (the file's bytes or text) into a :class:`CsvDataset`.

    Only the first ``max_rows`` data rows are read and validated; further rows are counted
    and reported in ``notes``.

    Raises
    ------
    CsvError
        Not text (binary, a workbook, not UTF-8/UTF-16), too large, a malformed line (e.g. a
        field longer than the csv module's limit), not 3 columns, a row of another length, a
        value that is not a finite number or is outside ``MIN_ABS … MAX_ABS`` (the line,
        column and value are named), sums of squares that overflow, or fewer than 2 data rows.
    """
    text = _decode(data) if isinstance(data, bytes) else data
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise CsvError("The file is empty.")
    try:
        delimiter = csv.Sniffer().sniff(lines[0][:SNIFF_CHARS], delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)
    try:
        first = [c.strip() for c in next(reader)]
    except csv.Error as exc:
        raise CsvError(f"Line 1 cannot be read as CSV ({exc}); a header or a value that long is not a table of "
                       f"numbers.") from exc
    has_header = any(_number(c) is None for c in first)
    if len(first) != 3:
        shown = _short(", ".join(first), 120) or "(nothing)"
        raise CsvError(f"Expected 3 columns (feature 1, feature 2, target: the target last); the first line has "
                       f"{len(first)}: {shown}.")
    names = [_short(c, 40) for c in first] if has_header else ["x1", "x2", "y"]
    rows = [] if has_header else [first]
    n_data = len(lines) - (1 if has_header else 0)
    try:
        for row in reader:
            if len(rows) >= max_rows:
                break
            rows.append(row)
    except csv.Error as exc:
        line_no = len(rows) + (2 if has_header else 1)
        raise CsvError(f"Line {line_no} cannot be read as CSV ({exc}): is a value extremely long, or a quote "
                       f"left open?") from exc
    values = []
    for i, row in enumerate(rows):
        line_no = i + (2 if has_header else 1)
        if len(row) != 3:
            raise CsvError(f"Line {line_no} has {len(row)} values; every line needs 3 ({', '.join(names)}).")
        values.append([_cell_value(cell, name, line_no) for name, cell in zip(names, row, strict=True)])
    if len(values) < 2:
        raise CsvError(f"The file has {len(values)} data row(s); at least 2 are needed to fit a regression.")
    notes = []
    if n_data > max_rows:
        notes.append(f"The file has {n_data} rows; the first {max_rows} are used.")
    arr = np.array(values, dtype=float)
    X, y = arr[:, :2], arr[:, 2]
    _check_statistics(X, y, names)
    # The scalers' own rule (a spread at most 1e-12 of the magnitude), so this note and the
    # page's constant-feature warning always agree.
    for j in np.flatnonzero(fit_minmax(X).constant):
        notes.append(constant_note(names[j]))
    if np.max(np.abs(arr)) > 1e12:
        notes.append("Some values exceed 1e12 in magnitude: raw gradient descent needs tiny steps on such data.")
    return CsvDataset(X, y, (names[0], names[1]), names[2], tuple(notes))
