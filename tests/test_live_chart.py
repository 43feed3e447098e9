"""ui.live_chart: what the Python side guarantees (the browser side: tests/browser/test_live_chart.py).

The point of a live chart is that a rerun with a new figure keeps the element's identity, so
the browser updates the chart in place. That identity rule is Streamlit's (components v2: the
key alone names the element); these tests fail if a Streamlit upgrade changes it.
"""

from __future__ import annotations

import json

import plotly
from streamlit.testing.v1 import AppTest

from tests.apptest import charts
from ui import live_chart

SCRIPT = """
import streamlit as st
from ui.live_chart import live_chart
n = st.number_input("n", value=3)
live_chart({"data": [{"type": "scatter", "x": list(range(int(n))), "y": [1.5] * int(n)}],
            "layout": {"title": {"text": f"{int(n)} points"}}}, key="demo")
box = st.container()
live_chart({"data": [], "layout": {"title": {"text": "in a container"}}}, key="boxed", where=box)
"""


def test_the_element_carries_the_spec_and_keeps_its_identity_when_the_figure_changes():
    at = AppTest.from_string(SCRIPT, default_timeout=30)
    at.run()
    assert not at.exception
    first, boxed = charts(at)
    spec = live_chart.spec_of(first.proto)
    assert spec["data"][0]["x"] == [0, 1, 2] and spec["layout"]["title"]["text"] == "3 points"
    assert live_chart.spec_of(boxed.proto)["layout"]["title"]["text"] == "in a container"

    at.number_input[0].set_value(5).run()
    changed = charts(at)[0]
    assert live_chart.spec_of(changed.proto)["data"][0]["x"] == [0, 1, 2, 3, 4]
    assert changed.proto.id == first.proto.id  # same element: the browser calls Plotly.react on it
    assert changed.proto.id != boxed.proto.id


def test_the_served_plotly_js_is_the_one_the_plotly_package_validates_figures_for():
    path = live_chart.PLOTLY_JS_DIR / "plotly.min.js"
    assert path.is_file()
    head = path.read_text(encoding="utf-8", errors="replace")[:300]
    assert f"plotly.js v{plotly.offline.get_plotlyjs_version()}" in head  # (its route: the browser test)


def test_spec_json_reads_what_was_sent():
    class Proto:  # the two ways a BidiComponent proto can carry data
        def __init__(self, raw=b"", text=""):
            self.bytes, self.json = raw, text

    spec = {"data": [{"y": [1, 2]}], "layout": {}}
    assert live_chart.spec_of(Proto(raw=json.dumps(spec).encode())) == spec
    assert live_chart.spec_of(Proto(text=json.dumps(spec))) == spec


def test_figure_json_is_what_plotly_io_to_json_makes_of_the_figure():
    import datetime

    import numpy as np
    import plotly.io as pio

    specs = [
        {"data": [{"x": np.arange(4), "y": [1.0, float("nan"), float("inf"), None],
                   "z": np.ones((2, 3), dtype=np.float32), "name": "a </script> κ"}],
         "layout": {"title": {"text": "<b>T</b>"}, 1: "non-str key"}, "frames": [{"data": [{"x": [0.5]}]}]},
        {"data": [{"x": [datetime.date(2026, 12, 1)], "y": [np.float64(2.5)]}], "layout": {}},
    ]
    for spec in specs:
        assert json.loads(live_chart.figure_json(spec)) == json.loads(pio.to_json(spec, validate=False))


MEMO_SCRIPT = """
import streamlit as st
from ui import page
from ui.theme import FigureSpec
if "fig" not in st.session_state:  # one figure object for every run, as a cached figure is
    st.session_state.fig = FigureSpec({"data": [{"type": "scatter", "y": [1.0, 2.0]}],
                                       "layout": {"title": {"text": "kept"}, "xaxis": {}, "yaxis": {}}})
st.session_state["lecture"] = st.toggle("big", key="big")
page.chart(st.session_state.fig, key="once")
page.chart(st.session_state.fig, key="twice")
"""


def test_a_figure_specs_json_is_made_once_per_mode_and_is_what_that_mode_sends(monkeypatch):
    from ui import page

    made = []
    fast = live_chart.figure_json
    monkeypatch.setattr(live_chart, "figure_json", lambda spec: made.append(spec) or fast(spec))
    at = AppTest.from_string(MEMO_SCRIPT, default_timeout=30)
    at.run()
    assert not at.exception
    fig = at.session_state.fig
    assert len(made) == 1  # two charts of one figure: one serialization
    small = [live_chart.spec_of(c.proto) for c in charts(at)]
    assert small[0] == small[1] == json.loads(fast(page.lecture_spec(fig.spec, False)))
    at.run()
    assert len(made) == 1  # a rerun re-sends the kept JSON
    at.toggle(key="big").set_value(True).run()
    assert len(made) == 2
    big = [live_chart.spec_of(c.proto) for c in charts(at)]
    assert big[0] == json.loads(fast(page.lecture_spec(fig.spec, True))) != small[0]
    assert big[0]["layout"]["font"]["size"] == page.FONT[True][0]
