"""ui.theme: style_figure's quick template assignment gives the figure Plotly's validated one."""

import json

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from ui.theme import HOUSE_TEMPLATE, style_figure


def _json(fig: go.Figure) -> str:
    return json.dumps(fig.to_dict(), sort_keys=True)


def _validated(fig: go.Figure, *args, **kw) -> go.Figure:
    """style_figure as it was: the template assigned by name, validated by Plotly."""
    style_figure(fig, *args, **kw)
    fig.update_layout(template=go.layout.Template())  # drop it, then assign it the slow way
    fig.update_layout(template=HOUSE_TEMPLATE)
    return fig


def test_style_figure_gives_the_same_figure_as_the_validated_template():
    for make in (go.Figure, lambda: make_subplots(rows=1, cols=2, subplot_titles=("a", "b"))):
        fast = style_figure(make(), "title", "x [units]", "y [units]", height=360)
        slow = _validated(make(), "title", "x [units]", "y [units]", height=360)
        assert _json(fast) == _json(slow)
        assert fast.to_dict()["layout"]["template"] == pio.templates[HOUSE_TEMPLATE].to_plotly_json()


def test_changing_one_figures_template_changes_no_other_figure():
    pristine = pio.templates[HOUSE_TEMPLATE].to_plotly_json()
    first = style_figure(go.Figure(), "a", "x", "y")
    first.layout.template.layout.font.size = 77
    first.update_layout(template_layout_paper_bgcolor="#123456")
    second = style_figure(go.Figure(), "b", "x", "y")
    assert second.to_dict()["layout"]["template"] == pristine
    assert pio.templates[HOUSE_TEMPLATE].to_plotly_json() == pristine


def test_a_figure_spec_computes_what_is_derived_from_it_once_per_key_and_not_into_a_copy():
    import pickle

    from ui.theme import FigureSpec

    fig, calls = FigureSpec({"data": [], "layout": {"title": {"text": "t"}}}), []
    make = lambda tag: (lambda: calls.append(tag) or f"value {tag}")  # noqa: E731
    assert fig.derived(("a",), make("a")) == "value a"
    assert fig.derived(("a",), make("a-again")) == "value a"  # kept: the second maker never runs
    assert fig.derived(("b",), make("b")) == "value b"
    assert calls == ["a", "b"]
    other = FigureSpec(fig.spec)  # the same spec in another figure: nothing derived yet
    assert other.derived(("a",), make("other")) == "value other"
    copy = pickle.loads(pickle.dumps(fig))  # a cache_data copy carries the spec, not what was derived
    assert copy.spec == fig.spec and copy.derived(("a",), make("copy")) == "value copy"
    try:
        fig.derived(("c",), lambda: 1 / 0)
    except ZeroDivisionError:
        pass
    assert fig.derived(("c",), make("c")) == "value c"  # a failed maker keeps nothing
