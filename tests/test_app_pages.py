"""Every page (the home page and each chapter in pages/) runs under AppTest with its
defaults, without an exception, and draws only finite, titled charts."""

import base64
import json
import math
from pathlib import Path

import numpy as np
import plotly.io as pio
import pytest

from tests.apptest import HOME, TITLES, chart_specs, open_page
from ui import live_chart
from ui.theme import FigureSpec

ROOT = Path(__file__).resolve().parents[1]


def routed_pages() -> list[str]:
    """The home page and every chapter file of the course (ui.course), in order."""
    return list(TITLES)


def test_every_page_file_is_a_chapter_of_the_course_and_linked():
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))
    assert sorted(p for p in routed_pages() if p != HOME) == files


def non_finite_values(node, path="figure") -> list[str]:
    """Paths of every non-finite number in a Plotly figure spec, including typed arrays.

    Plotly sends numpy arrays as ``{"dtype": "f8", "bdata": <base64>}``; those are decoded,
    so a NaN hidden in binary data is found too (a text search would miss it, and could
    also match the letters "NaN" by chance inside the base64 text).
    """
    if isinstance(node, dict):
        if "bdata" in node and "dtype" in node:
            values = np.frombuffer(base64.b64decode(node["bdata"]), dtype=np.dtype(node["dtype"]))
            return [path] if values.dtype.kind == "f" and not np.isfinite(values).all() else []
        return [p for k, v in node.items() for p in non_finite_values(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in non_finite_values(v, f"{path}[{i}]")]
    if isinstance(node, float) and not math.isfinite(node):
        return [path]
    return []


def test_non_finite_values_are_found_in_lists_and_typed_arrays():
    typed = {"dtype": "f8", "bdata": base64.b64encode(np.array([1.0, np.nan]).tobytes()).decode()}
    assert non_finite_values({"data": [{"x": [1.0, float("inf")], "y": typed}]}) == [
        "figure.data[0].x[1]", "figure.data[0].y"]
    finite = {"dtype": "f4", "bdata": base64.b64encode(np.arange(3, dtype="f4").tobytes()).decode()}
    assert non_finite_values({"data": [{"x": [1.0, None], "y": finite}]}) == []


@pytest.mark.parametrize("page", routed_pages())
def test_page_runs_with_defaults(page, monkeypatch):
    serialized = []  # and every chart's JSON parses to what plotly.io.to_json makes of its figure
    fast = live_chart.figure_json

    def checked(spec):
        out = fast(spec)
        assert json.loads(out) == json.loads(pio.to_json(spec, validate=False))
        serialized.append(len(out))
        return out

    monkeypatch.setattr(live_chart, "figure_json", checked)
    # Figures cached by earlier tests keep their JSON (FigureSpec.derived): make it anew here.
    monkeypatch.setattr(FigureSpec, "derived", lambda self, key, make: make())
    at = open_page(page, timeout=180)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title and at.title[0].value == TITLES[page], f"{page} did not open (title {at.title})"
    specs = chart_specs(at)
    assert specs or page == HOME, f"{page} draws no chart"
    assert len(serialized) >= len(specs)
    for spec in specs:
        bad = non_finite_values(spec)
        assert not bad, f"non-finite values in a chart of {page}: {bad[:5]}"
        layout = spec.get("layout", {})
        assert layout.get("title", {}).get("text"), f"a chart of {page} has no title"
    # A download must not rerun the page: a full run of chapter 3 or 4 for a file the student
    # already has, and for 30 students 30 runs (the file is the bytes given, or a deferred
    # callable's, made when clicked).
    for button in at.get("download_button"):
        assert button.proto.ignore_rerun, f"{page}: '{button.proto.label}' reruns the page when clicked"
