"""One look for every chart: a colour-blind-safe palette and a common layout.

The palette is Okabe & Ito's (2008), which stays distinguishable under the common forms of
colour blindness. Every series that is told apart by colour is also told apart by a dash
style or marker symbol, so a chart still reads in greyscale.

:class:`FigureSpec` is the house figure type of every chapter: a prebuilt, trusted Plotly
spec that :func:`ui.page.chart` (a :mod:`ui.live_chart`) serializes as is, because validating
a ``go.Figure`` property by property cost up to ~100 ms per chart on every rerun.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}

#: Colour, dash and marker per input variant of chapter 1 (raw is the "bad" warm colour).
VARIANT_STYLE = {
    "raw": {"color": OKABE_ITO["vermillion"], "dash": "solid", "symbol": "circle"},
    "minmax": {"color": OKABE_ITO["purple"], "dash": "dot", "symbol": "diamond"},
    "standardized": {"color": OKABE_ITO["blue"], "dash": "dash", "symbol": "square"},
    "batchnorm": {"color": OKABE_ITO["green"], "dash": "dashdot", "symbol": "triangle-up"},
}

#: Colour and dash for the two arms of the network experiments.
ARM_STYLE = {
    "plain": {"color": OKABE_ITO["vermillion"], "dash": "solid", "symbol": "circle"},
    "bn": {"color": OKABE_ITO["blue"], "dash": "dash", "symbol": "square"},
}

#: A key of a figure's ``layout.meta``: the (shorter) title lecture mode shows instead, where the
#: larger title font would overrun a half-width column (see ``ui.page.lecture_spec``).
LECTURE_TITLE = "lecture_title"
#: A key of ``layout.meta``: layout settings lecture mode merges in (one level deep), e.g. fewer
#: ticks on a narrow axis whose larger labels Plotly would otherwise turn on their side.
LECTURE_LAYOUT = "lecture_layout"

#: Sequential colour scale for surfaces and heat maps (perceptually uniform, colour-blind safe).
SEQUENTIAL = "Viridis"

#: Ordered colours for an arbitrary number of series (per layer, per feature, ...).
CYCLE = [OKABE_ITO[k] for k in ("blue", "orange", "green", "vermillion", "purple", "sky", "black", "yellow")]


#: Plotly's registered template every chart uses.
HOUSE_TEMPLATE = "plotly_white"


def _set_template(fig: go.Figure, name: str) -> None:
    """``fig.update_layout(template=name)`` without validating Plotly's own template again.

    Assigning a template by name validates and copies every property of it: about 8 ms per
    figure, 40 % of building chapter 3's four charts after a new run. A registered template
    is valid by construction, so this assigns it the way Plotly assigns its default template
    to every new figure (``BaseFigure._initialize_layout_template``: validation switched off
    for that one assignment); the figure's JSON is the same (tests/test_theme.py). Falls back
    to the validated assignment if a Plotly version lacks those internals.
    """
    layout = getattr(fig, "_layout_obj", None)
    if layout is None or not getattr(fig, "_allow_disable_validation", False) or not hasattr(layout, "_validate"):
        fig.update_layout(template=name)
        return
    import plotly.io as pio

    validate = layout._validate
    layout._validate = False
    try:
        layout.template = pio.templates[name]
    finally:
        layout._validate = validate


def style_figure(fig: go.Figure, title: str, x_title: str, y_title: str, *, height: int = 420) -> go.Figure:
    """Give ``fig`` a title, axis titles (with units), a legend and the house margins.

    Parameters
    ----------
    fig : go.Figure
        The figure to style in place.
    title, x_title, y_title : str
        Chart title and axis titles; axis titles should carry units in brackets,
        e.g. ``"step (parameter updates)"``.
    height : int
        Figure height in pixels.

    Returns
    -------
    go.Figure
        The same figure, for chaining.
    """
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        height=height,
        # The legend sits below the x-axis title, so it never covers the chart title or data,
        # however narrow the column the chart is drawn in.
        margin={"l": 60, "r": 20, "t": 60, "b": 110},
        legend={"orientation": "h", "yanchor": "top", "y": -0.28, "xanchor": "left", "x": 0.0},
        font={"size": 13},
    )
    _set_template(fig, HOUSE_TEMPLATE)
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return fig


class KeepsDerived:
    """For read-only objects shared by the sessions: values derived from one are kept with it.

    :meth:`derived` computes a value the first time a key is asked and returns the kept one
    after; it lives exactly as long as the object. A subclass sets ``self._derived = {}``
    (a dataclass: a ``field(default_factory=dict)``). ``make`` must depend only on the object
    and the key; two threads may both compute a missing value, and either result is the same
    (dict assignment is atomic), so no lock is needed.
    """

    _derived: dict

    def derived(self, key: tuple, make: Callable[[], Any]) -> Any:
        """``make()``, computed the first time ``key`` is asked of this object, then kept with it."""
        try:
            return self._derived[key]
        except KeyError:
            value = self._derived[key] = make()
            return value


class FigureSpec(KeepsDerived, go.Figure):
    """A ``go.Figure`` that carries a prebuilt, trusted spec ``{"data", "layout", "frames"}``.

    ``to_dict``/``to_plotly_json`` return the spec as is (no per-property validation), which
    is all ``st.plotly_chart`` and ``plotly.io.to_json`` need. Use :attr:`spec` to inspect it.

    The ``go.Figure`` part is never used, so every instance shares the internals of one empty
    figure built once (initialising a ``go.Figure`` validates its layout: 1-3 ms per figure,
    on every rerun for the stability map's moving star). Treat a FigureSpec as read-only.

    Because it is read-only, what is derived from it is kept with it (:class:`KeepsDerived`:
    its JSON for the browser, a copy at another animation speed).
    """

    _blank_state: dict | None = None

    def __init__(self, spec: dict):
        if FigureSpec._blank_state is None:
            # An empty template: go.Figure() would deep-copy Plotly's default template, which
            # this object never uses (the spec carries the house template).
            FigureSpec._blank_state = dict(go.Figure(layout={"template": {}}).__dict__)
        self.__dict__.update(FigureSpec._blank_state)
        self._spec = spec
        self._derived: dict = {}

    @property
    def spec(self) -> dict:
        return self._spec

    def to_dict(self) -> dict:
        return self._spec

    def to_plotly_json(self) -> dict:
        return self._spec

    def __reduce__(self):
        return (FigureSpec, (self._spec,))
