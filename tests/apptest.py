"""Open a page under AppTest the way Streamlit documents it.

The app uses Streamlit's ``pages/`` layout: ``app.py`` is the home page, each chapter a file
in ``pages/``. ``AppTest.switch_page`` comes after a first ``run()`` of the home page, as a
browser would arrive; the chapter's settings go in as URL query parameters.
"""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from ui import course, live_chart

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
HOME = course.HOME

#: page file -> its title (the page's first heading), home page included.
TITLES = {HOME: "BatchNorm Lab", **{c.file: c.title for c in course.chapters()}}
PAGES = list(TITLES)


def open_page(page: str, query: dict | None = None, timeout: float = 120) -> AppTest:
    """Run ``page`` (``app.py`` or a file in ``pages/``) with URL ``query`` parameters."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    if page != HOME:
        at.run()
        at.switch_page(page)
    for k, v in (query or {}).items():
        at.query_params[k] = str(v)
    at.run()
    return at


def charts(at: AppTest) -> list:
    """The page's charts, in page order (:mod:`ui.live_chart` elements; AppTest sees their protos)."""
    return [el for el in at.get(live_chart.ELEMENT_TYPE) if el.proto.component_name == live_chart.COMPONENT]


def chart_json(el) -> str:
    """One chart's figure as the JSON text the browser receives."""
    return live_chart.spec_json(el.proto)


def chart_specs(at: AppTest, **json_kwargs) -> list[dict]:
    """Every chart's Plotly spec, in page order (``json.loads`` keyword arguments pass through)."""
    return [json.loads(chart_json(el), **json_kwargs) for el in charts(at)]


def figures(at: AppTest) -> dict[str, dict]:
    """Chart title -> Plotly spec (the JSON the browser receives), for every chart on the page."""
    return {spec["layout"]["title"]["text"]: spec for spec in chart_specs(at)}


def figure(at: AppTest, title_start: str) -> dict:
    """The one chart whose title starts with ``title_start``."""
    matches = [s for t, s in figures(at).items() if t.startswith(title_start)]
    assert len(matches) == 1, f"expected one chart titled {title_start!r}, got {list(figures(at))}"
    return matches[0]
