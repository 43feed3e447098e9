"""Every page routed by app.py runs under AppTest with its defaults, without an exception."""

import ast
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def routed_pages() -> list[str]:
    """The page files named in app.py's st.Page(...) calls, read from its syntax tree."""
    tree = ast.parse((ROOT / "app.py").read_text())
    return [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "Page"
        and node.args and isinstance(node.args[0], ast.Constant)
    ]


def test_every_page_file_is_routed_and_every_route_exists():
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))
    assert sorted(routed_pages()) == files


@pytest.mark.parametrize("page", routed_pages())
def test_page_runs_with_defaults(page):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, f"{page} has no title"
    charts = at.get("plotly_chart")
    assert charts, f"{page} draws no chart"
    for chart in charts:
        spec = json.loads(chart.proto.spec)
        text = json.dumps(spec)
        assert "NaN" not in text and "Infinity" not in text, f"non-finite value in a chart of {page}"
        layout = spec.get("layout", {})
        assert layout.get("title", {}).get("text"), f"a chart of {page} has no title"
