"""Open a chapter under AppTest the way Streamlit documents it.

``AppTest.switch_page`` must come after a first ``run()``: before it, Streamlit knows pages
only by file name, and ours are registered by ``st.navigation`` with custom ``url_path``s,
so a switch before the first run silently stays on the default page (chapter 1).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


def _pages() -> list[tuple[str, str, bool]]:
    """(file, title, is_default) for every st.Page(...) call in app.py."""
    found = []
    for node in ast.walk(ast.parse((ROOT / "app.py").read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "Page" and node.args:
            kw = {k.arg: k.value for k in node.keywords}
            default = isinstance(kw.get("default"), ast.Constant) and kw["default"].value is True
            found.append((node.args[0].value, kw["title"].value, default))
    return found


PAGES = _pages()
TITLES = {file: title for file, title, _ in PAGES}
DEFAULT_PAGE = next(file for file, _, default in PAGES if default)


def open_page(page: str, query: dict | None = None, timeout: float = 120) -> AppTest:
    """Run ``app.py`` on ``page`` with URL ``query`` parameters; return the AppTest."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    for k, v in (query or {}).items():
        at.query_params[k] = str(v)
    at.run()
    if page != DEFAULT_PAGE:
        at.switch_page(page)
        at.run()
    return at


def figures(at: AppTest) -> dict[str, dict]:
    """Chart title -> Plotly spec (the JSON the browser receives), for every chart on the page."""
    out = {}
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        out[spec["layout"]["title"]["text"]] = spec
    return out


def figure(at: AppTest, title_start: str) -> dict:
    """The one chart whose title starts with ``title_start``."""
    matches = [s for t, s in figures(at).items() if t.startswith(title_start)]
    assert len(matches) == 1, f"expected one chart titled {title_start!r}, got {list(figures(at))}"
    return matches[0]
