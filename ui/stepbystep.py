"""Chapter 2 (batch norm, step by step): figure builders and cached wrappers.

Figure builders take arrays and return a ``go.Figure``; they never compute science. The
cached wrappers call :mod:`bn_core.walkthrough` (which runs the core's BatchNorm1d) with
primitive, hashable arguments only, so the cache key is the whole input.
"""

from __future__ import annotations

import base64
import functools
import io

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from bn_core import walkthrough
from ui.page import Experiment
from ui.state import ChoiceParam, FloatParam, IntParam
from ui.theme import CYCLE, LECTURE_TITLE, OKABE_ITO, FigureSpec, style_figure

# --------------------------------------------------------------------------- controls (URL state)


def _grid(lo: float, hi: float, step: float) -> tuple[float, ...]:
    """The values a slider with this step can take, rounded so that they print cleanly."""
    n = int(round((hi - lo) / step))
    return tuple(round(lo + i * step, 6) for i in range(n + 1))


SCALE_OPTIONS = (0.01, 0.03, 0.1, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0)
EPS_OPTIONS = (1e-8, 1e-5, 1e-3, 1e-2, 0.1, 1.0, 10.0)
MOMENTUM_OPTIONS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 0.5, 0.9, 1.0)
SOURCE_LABELS = {"synthetic": "synthetic activations", "digits": "real pre-activations (Linear layer on digits)"}
MODE_LABELS = {"training": "training (batch statistics)", "evaluation": "evaluation (running statistics)"}

SOURCE = ChoiceParam("c2_source", "synthetic", label="input source", choices=tuple(SOURCE_LABELS))
BATCH = IntParam("c2_batch", 32, 1, 512, label="batch size")
FEATURES = IntParam("c2_features", 2, 1, walkthrough.MAX_FEATURES, label="features shown")
SHIFT = FloatParam("c2_shift", 3.0, -50.0, 50.0, options=_grid(-50.0, 50.0, 0.5), label="shift")
SCALE = FloatParam("c2_scale", 2.0, SCALE_OPTIONS[0], SCALE_OPTIONS[-1], options=SCALE_OPTIONS, label="scale")
SEED = IntParam("c2_seed", 0, 0, 10_000, label="seed")
GAMMA = FloatParam("c2_gamma", 1.0, -3.0, 3.0, options=_grid(-3.0, 3.0, 0.1), label="gamma")
BETA = FloatParam("c2_beta", 0.0, -5.0, 5.0, options=_grid(-5.0, 5.0, 0.1), label="beta")
EPS = FloatParam("c2_eps", 1e-5, EPS_OPTIONS[0], EPS_OPTIONS[-1], options=EPS_OPTIONS, label="eps")
MODE = ChoiceParam("c2_mode", "training", label="mode", choices=tuple(MODE_LABELS))
MOMENTUM = FloatParam("c2_momentum", 0.1, MOMENTUM_OPTIONS[0], MOMENTUM_OPTIONS[-1],
                      options=MOMENTUM_OPTIONS, label="momentum")
STEPS = IntParam("c2_steps", 200, 1, 2000, label="running-statistics steps")

#: Every control of the chapter, in page order.
PARAMS = [SOURCE, BATCH, FEATURES, SHIFT, SCALE, SEED, GAMMA, BETA, EPS, MODE, MOMENTUM, STEPS]

#: Widget labels. The symbols are distinct throughout: m is the batch size, ρ the momentum
#: of the running statistics (PyTorch's ``momentum``), μ_B and σ²_B the batch's statistics.
BATCH_LABEL = "batch size m (samples)"
GAMMA_LABEL = "gamma γ (scale)"
MOMENTUM_LABEL = "momentum ρ of the running statistics"
STEPS_LABEL = "training steps (batches)"
#: The chapter's key controls, first in the sidebar (on a projector's first screen).
KEY_CONTROLS = (BATCH_LABEL, GAMMA_LABEL)

#: Where the layer sits: bn_after_activation -> what to say about that placement.
PLACEMENTS = {
    False: "**Before the activation** (Ioffe & Szegedy's choice). The linear transform's output "
           "u = W·h + b is roughly Gaussian, so standardizing it is natural; the activation then "
           "sees inputs with a stable mean and spread (a sigmoid is not pushed into saturation). "
           "The bias b becomes redundant: β takes its place.",
    True: "**After the activation** (a common alternative). Normalizes what the next layer "
          "actually receives; in practice it often works as well. Chapter 3 trains both "
          "placements on digits.",
}

#: Guided experiments ("Try this"; the home page's lesson links). Each note is checked against
#: the page's own numbers in tests/test_page_step_by_step.py.
EXPERIMENTS = [
    Experiment("A batch of 2",
               "With m = 2 each feature's x̂ takes just two values, +a and −a (a ≤ 1), one sample on each "
               "side of the batch mean, whatever came in: of the two inputs only their order is left.",
               {BATCH.key: 2}),
    Experiment("ε = 10",
               "ε = 10 is larger than every batch variance here (about 2.6 and 0.6), so x̂'s variance "
               "σ²_B/(σ²_B + ε) falls far below 1: ε is meant to be tiny next to the variance.",
               {EPS.key: 10.0}),
    Experiment("Evaluation mode after 5 steps",
               "After 5 steps the running statistics still carry (1 − 0.1)^5 = 0.59 of their initial 0 and 1, "
               "so in evaluation mode this batch's x̂ is far from mean 0 and variance 1.",
               {MODE.key: "evaluation", STEPS.key: 5}),
    Experiment("Real activations, shifted and scaled",
               "The digits' pre-activations shifted by 20 and scaled by 10 land far from 0, yet x̂ is the "
               "same as for the unshifted, unscaled batch (up to ε): batch norm undoes any shift and scale.",
               {SOURCE.key: "digits", SHIFT.key: 20.0, SCALE.key: 10.0}),
]

#: Colour, histogram pattern and dash per pipeline stage (pattern = redundancy for colour).
STAGE_STYLE = {
    "x": {"color": OKABE_ITO["vermillion"], "pattern": "", "dash": "solid", "symbol": "circle",
          "name": "input x", "axis": "x [activation units]"},
    "x_hat": {"color": OKABE_ITO["blue"], "pattern": "/", "dash": "dash", "symbol": "square",
              "name": "normalized x̂", "axis": "x̂ [units of √(σ²_B + ε)]"},
    "y": {"color": OKABE_ITO["green"], "pattern": "x", "dash": "dot", "symbol": "diamond",
          "name": "output y = γ·x̂ + β", "axis": "y [output units]"},
}

#: The x̂ axis title per mode: x̂ is measured in units of the spread the layer divided by,
#: which is the batch's √(σ²_B + ε) only in training mode (and a standard deviation only when ε
#: is small next to σ²_B).
XHAT_AXIS = {True: "x̂ [units of √(σ²_B + ε)]", False: "x̂ [units of √(running var + ε)]"}

#: A batch of at most this many samples is drawn sample by sample (a dot plot whose dots stack
#: up to the bin's count), not as bars: a handful of bars is hard to read, and one sample would
#: be a bar from 0 to 1.
DOTS_UP_TO = 40
#: Bins per panel (explicit, so a panel is never empty whatever the spread).
N_BINS = 30
#: The features of one stage share an x range only if each spans at least this fraction of it;
#: otherwise a feature with a tiny spread would be a sliver on the shared axis.
SHARE_MIN_FRACTION = 0.05

#: Dash per feature (colour comes from ``CYCLE``), so features also read in greyscale.
FEATURE_DASH = ("solid", "dash", "dot", "dashdot")
FEATURE_SYMBOL = ("circle", "square", "diamond", "triangle-up")

#: When a training-mode batch cannot be used, the running statistics are learned at this size.
FALLBACK_TRAIN_BATCH = 32


def _finite(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def feature_name(j: int) -> str:
    return f"feature {j + 1}"


def clean_zero(v) -> np.ndarray:
    """Round-off noise (a mean of 1e-16) shown as the 0 it is."""
    v = np.asarray(v, dtype=np.float64)
    return np.where(np.abs(v) < 1e-12, 0.0, v)


def _legend_on_top(fig: go.Figure, height: int, top: int) -> go.Figure:
    """Title, then the legend, then the plot area (and its subplot titles): no overlaps.

    ``top`` is the top margin in pixels; title and legend are placed in container
    coordinates so they stay put whatever the figure's height.
    """
    fig.update_layout(
        margin={"t": top},
        title={"yref": "container", "y": 1 - 10 / height, "yanchor": "top"},
        legend={"orientation": "h", "yref": "container", "y": 1 - 40 / height, "yanchor": "top",
                "x": 0.0, "xanchor": "left"},
    )
    return fig


# --------------------------------------------------------------------------- figures
#
# Speed: building a go.Figure validates every property (the 4 x 3 histogram grid took ~0.5 s
# per rerun). So each figure's *layout* is built once with plotly (make_subplots, style_figure)
# and cached; the traces are plain dicts with base64 typed arrays, and the result is wrapped in
# ui.theme's FigureSpec, a go.Figure that hands this trusted spec to ui.page.chart as is.

PIPELINE_TITLE = "A mini-batch through the layer, per feature"
STAGES = ("x", "x_hat", "y")


def _arr(a) -> dict:
    """A finite float array as Plotly's base64 typed array (callers filter non-finite values)."""
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    if not np.all(np.isfinite(a)):  # a programming error upstream; never silenced by python -O
        raise ValueError("non-finite values must be filtered before plotting")
    return {"dtype": "f8", "bdata": base64.b64encode(a.tobytes()).decode("ascii")}


def _axes(row: int, col: int, n_cols: int) -> tuple[str, str]:
    """Trace axis names ("x", "y", "x2", ...) of subplot (row, col), both 1-based."""
    i = (row - 1) * n_cols + col
    return ("x", "y") if i == 1 else (f"x{i}", f"y{i}")


def _spec(layout: dict, data: list[dict], **changes) -> FigureSpec:
    """A FigureSpec on a cached layout with some top-level keys replaced.

    A shallow copy, as in ``ui.valley_figures._layout``: the cached layout (and its large
    template) is shared and never modified, since a FigureSpec is read-only. (A deep copy of
    it cost ~1 ms per figure, four figures per rerun.)
    """
    return FigureSpec({"data": data, "layout": {**layout, **changes}})


@functools.lru_cache(maxsize=16)
def _pipeline_layout(n_features: int, training: bool = True) -> dict:
    fig = make_subplots(
        rows=n_features, cols=3, vertical_spacing=0.09 if n_features > 1 else 0.0,
        horizontal_spacing=0.07,
        column_titles=[STAGE_STYLE[k]["name"] for k in STAGES],
        row_titles=[feature_name(j) for j in range(n_features)],
    )
    height = 190 + 150 * n_features
    style_figure(fig, PIPELINE_TITLE, "", "count [samples]", height=height)
    _legend_on_top(fig, height, top=110)
    fig.update_layout(bargap=0.05, margin={"r": 40})
    for c, key in enumerate(STAGES, start=1):
        axis = XHAT_AXIS[training] if key == "x_hat" else STAGE_STYLE[key]["axis"]
        for r in range(1, n_features + 1):
            fig.update_xaxes(title_text=axis if r == n_features else "", row=r, col=c)
            fig.update_yaxes(rangemode="tozero", row=r, col=c)
            if c > 1:
                fig.update_yaxes(title_text="", row=r, col=c)
    return fig.to_dict()["layout"]


def _span_range(v: np.ndarray) -> tuple[float, float]:
    """(lo, hi) of finite values ``v`` (non-empty), before padding."""
    return float(v.min()), float(v.max())


def _padded(lo: float, hi: float) -> tuple[float, float]:
    """A drawable range around [lo, hi]: 5 % margins, or +-0.5 (more for big numbers) if lo == hi."""
    if hi > lo:
        pad = 0.05 * (hi - lo)
    else:
        pad = 0.5 * max(1.0, 0.1 * abs(lo))
    return lo - pad, hi + pad


def stage_ranges(columns: list[np.ndarray]) -> tuple[list[tuple[float, float] | None], bool]:
    """The x range of each feature's panel in one stage column, and whether they are shared.

    Parameters
    ----------
    columns : list of ndarray, one per feature, finite values only (possibly empty)

    Returns
    -------
    ranges : list of (lo, hi) or None (a feature with no finite value)
    shared : bool
        True when every feature spans at least :data:`SHARE_MIN_FRACTION` of the column's
        common range (then all panels get that range, so locations compare directly);
        otherwise each panel gets its own range.
    """
    spans = [_span_range(v) if v.size else None for v in columns]
    present = [s for s in spans if s is not None]
    if not present:
        return [None] * len(columns), False
    lo, hi = min(s[0] for s in present), max(s[1] for s in present)
    shared = hi > lo and all(s[1] - s[0] >= SHARE_MIN_FRACTION * (hi - lo) for s in present)
    if shared:
        rng = _padded(lo, hi)
        return [rng if s is not None else None for s in spans], True
    return [_padded(*s) if s is not None else None for s in spans], False


def dot_heights(v: np.ndarray, lo: float, hi: float, n_bins: int = N_BINS) -> np.ndarray:
    """Height of each sample's dot in a dot plot: 1 + the samples before it in its bin.

    The tallest dot of a bin sits at the bin's count, so the y axis reads as "count"
    exactly as a histogram's would.
    """
    v = np.asarray(v, dtype=np.float64)
    size = (hi - lo) / n_bins
    idx = np.clip(np.floor((v - lo) / size).astype(np.int64), 0, n_bins - 1)
    heights = np.zeros(v.size)
    seen: dict[int, int] = {}
    for i, b in enumerate(idx):
        seen[int(b)] = seen.get(int(b), 0) + 1
        heights[i] = seen[int(b)]
    return heights


def pipeline_figure(stages: dict) -> go.Figure:
    """Every feature at every stage: input x -> x̂ -> y = γ·x̂ + β.

    Parameters
    ----------
    stages : dict
        ``x``, ``x_hat``, ``y`` (each of shape (batch_size, n_features)), ``mean``
        (n_features,), the mean used to normalize (a dashed line in the input column), and
        ``training`` (bool, default True), which names the x̂ axis's unit.

    Returns
    -------
    go.Figure
        One row per feature, one column per stage. A batch of at most :data:`DOTS_UP_TO`
        samples is a dot plot (one dot per sample, stacked per bin), a larger one a
        histogram; both on :data:`N_BINS` explicit bins per panel. The features of a column
        share one x range when that leaves each of them visible (:func:`stage_ranges`), so
        the features' different locations and spreads are visible before, and gone after.
        Non-finite values are dropped.
    """
    n_features = np.asarray(stages["x"]).shape[1]
    training = bool(stages.get("training", True))
    data, shapes = [], []
    overrides: dict[str, dict] = {}
    layout = _pipeline_layout(n_features, training)
    for c, key in enumerate(STAGES, start=1):
        s = STAGE_STYLE[key]
        cols = [_finite(np.asarray(stages[key])[:, j]) for j in range(n_features)]
        if key == "x":  # the dashed mean line must fall inside its panel too
            means = _finite(stages["mean"]) if stages.get("mean") is not None else np.array([])
            with_mean = [np.append(v, float(np.asarray(stages["mean"])[j])) if means.size == n_features else v
                         for j, v in enumerate(cols)]
            ranges, _ = stage_ranges([_finite(v) for v in with_mean])
        else:
            ranges, _ = stage_ranges(cols)
        for j, (v, rng) in enumerate(zip(cols, ranges, strict=True)):
            xa, ya = _axes(j + 1, c, 3)
            axis_name = "xaxis" + xa[1:]
            if rng is not None:
                overrides[axis_name] = {**layout[axis_name], "range": list(rng), "autorange": False}
            common = {"name": s["name"], "legendgroup": key, "showlegend": j == 0, "xaxis": xa, "yaxis": ya}
            if rng is None:
                data.append({"type": "scatter", "x": [], "y": [], "mode": "markers", **common})
                continue
            size = (rng[1] - rng[0]) / N_BINS
            if v.size <= DOTS_UP_TO:
                heights = dot_heights(v, *rng)
                top = float(heights.max()) if heights.size else 1.0
                y_name = "yaxis" + ya[1:]  # whole counts only: no "0.5 samples" tick
                overrides[y_name] = {**layout[y_name], "range": [0, top + 0.6], "autorange": False,
                                     "dtick": max(1, int(np.ceil(top / 4)))}
                data.append({
                    "type": "scatter", "mode": "markers", "x": _arr(v), "y": _arr(heights),
                    "marker": {"color": s["color"], "symbol": s["symbol"], "size": 9,
                               "line": {"color": "white", "width": 0.8}},
                    "hovertemplate": f"{feature_name(j)}<br>%{{x:.4g}}<extra>{s['name']}</extra>", **common,
                })
            else:
                data.append({
                    "type": "histogram", "x": _arr(v), "autobinx": False,
                    "xbins": {"start": rng[0], "end": rng[1], "size": size},
                    "marker": {"color": s["color"], "line": {"color": "white", "width": 0.5},
                               "pattern": {"shape": s["pattern"], "fgcolor": "white"}},
                    "opacity": 0.9,
                    "hovertemplate": f"{feature_name(j)}<br>%{{x}}<br>%{{y}} samples<extra>{s['name']}</extra>",
                    **common,
                })
    for j in range(n_features):
        mean = float(np.asarray(stages["mean"])[j])
        if np.isfinite(mean):
            xa, ya = _axes(j + 1, 1, 3)
            shapes.append({"type": "line", "xref": xa, "yref": f"{ya} domain", "x0": mean, "x1": mean,
                           "y0": 0, "y1": 1, "line": {"color": OKABE_ITO["black"], "dash": "dash", "width": 1.5}})
    # A legend entry for the dashed mean lines (shapes have none of their own).
    data.append({"type": "scatter", "x": [None], "y": [None], "mode": "lines", "name": "mean used to normalize",
                 "line": {"color": OKABE_ITO["black"], "dash": "dash"}, "xaxis": "x", "yaxis": "y"})
    return _spec(layout, data, shapes=shapes, **overrides)


@functools.lru_cache(maxsize=1)
def _running_layout() -> dict:
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("running mean", "running variance (unbiased)"))
    style_figure(fig, "", "step [training batches]", "", height=480)
    _legend_on_top(fig, 480, top=130)
    fig.update_yaxes(title_text="running mean [activation units]", row=1, col=1)
    fig.update_yaxes(title_text="running variance [activation units²]", row=1, col=2)
    return fig.to_dict()["layout"]


def running_stats_figure(hist: dict, momentum: float) -> go.Figure:
    """Running mean and running (unbiased) variance vs step, with the population as reference.

    Parameters
    ----------
    hist : dict
        ``step`` (k + 1,), ``running_mean`` and ``running_var`` (k + 1, n_features),
        ``pop_mean`` and ``pop_var`` (n_features,).
    momentum : float
        Shown in the title.
    """
    steps = np.asarray(hist["step"], dtype=np.float64)
    n_features = np.asarray(hist["running_mean"]).shape[1]
    data = []
    for c, (key, pop_key) in enumerate((("running_mean", "pop_mean"), ("running_var", "pop_var")), start=1):
        xa, ya = _axes(1, c, 2)
        for j in range(n_features):
            colour = CYCLE[j % len(CYCLE)]
            series = np.asarray(hist[key], dtype=np.float64)[:, j]
            ok = np.isfinite(series)
            data.append({"type": "scatter", "x": _arr(steps[ok]), "y": _arr(series[ok]), "mode": "lines",
                         "name": f"{feature_name(j)}: running", "legendgroup": f"f{j}", "showlegend": c == 1,
                         "line": {"color": colour, "dash": FEATURE_DASH[j % 4], "width": 2},
                         "xaxis": xa, "yaxis": ya})
            pop = float(np.asarray(hist[pop_key])[j])
            if np.isfinite(pop):
                data.append({"type": "scatter", "x": [float(steps[0]), float(steps[-1])], "y": [pop, pop],
                             "mode": "lines+markers", "name": f"{feature_name(j)}: population",
                             "legendgroup": f"f{j}", "showlegend": c == 1,
                             "line": {"color": colour, "dash": "dot", "width": 1},
                             "marker": {"symbol": FEATURE_SYMBOL[j % 4], "size": 8, "color": colour},
                             "xaxis": xa, "yaxis": ya})
    layout = _running_layout()
    title = dict(layout["title"], text=f"Running statistics and the population they estimate (momentum ρ = {momentum:g})")
    return _spec(layout, data, title=title)


@functools.lru_cache(maxsize=4)
def _simple_layout(title: str, x_title: str, y_title: str, height: int) -> dict:
    fig = style_figure(go.Figure(), title, x_title, y_title, height=height)
    return _legend_on_top(fig, height, top=110).to_dict()["layout"]


def eval_gap_figure(hist: dict) -> go.Figure:
    """Mean |x̂_train − x̂_eval| of the same batch vs step, per feature (outputs differ by |γ|×).

    ``hist`` needs ``step`` (k + 1,) and ``eval_gap`` (k + 1, n_features).
    """
    steps = np.asarray(hist["step"], dtype=np.float64)
    gap = np.asarray(hist["eval_gap"], dtype=np.float64)
    data = []
    for j in range(gap.shape[1]):
        ok = np.isfinite(gap[:, j])
        data.append({"type": "scatter", "x": _arr(steps[ok]), "y": _arr(gap[ok, j]), "mode": "lines",
                     "name": feature_name(j),
                     "line": {"color": CYCLE[j % len(CYCLE)], "dash": FEATURE_DASH[j % 4], "width": 2}})
    return _spec(_simple_layout("Same batch: train vs eval gap in x̂ per step", "step [training batches]",
                                "mean |x̂_train − x̂_eval| [x̂ units]", 420), data,
                 meta={LECTURE_TITLE: "Train vs eval gap in x̂"})  # fits half the projector at 25 px


def train_vs_eval_scatter(y_train: np.ndarray, y_first: np.ndarray, y_last: np.ndarray,
                          step_first: int, step_last: int) -> go.Figure:
    """Each sample's output in evaluation mode (y) against training mode (x), early and late.

    All arrays of shape (batch_size, n_features); points on the diagonal mean both modes agree.
    """
    a = np.asarray(y_train, dtype=np.float64).ravel()
    series = ((y_first, f"eval after step {step_first}", OKABE_ITO["orange"], "circle"),
              (y_last, f"eval after step {step_last}", OKABE_ITO["blue"], "square"))
    data, finite_all = [], [_finite(a)]
    for y_eval, name, colour, symbol in series:
        b = np.asarray(y_eval, dtype=np.float64).ravel()
        ok = np.isfinite(a) & np.isfinite(b)
        finite_all.append(b[ok])
        data.append({"type": "scatter", "x": _arr(a[ok]), "y": _arr(b[ok]), "mode": "markers", "name": name,
                     "marker": {"color": colour, "symbol": symbol, "size": 7, "opacity": 0.7,
                                "line": {"color": "white", "width": 0.5}}})
    lo_hi = np.concatenate(finite_all)
    if lo_hi.size:
        lo, hi = float(lo_hi.min()), float(lo_hi.max())
        data.append({"type": "scatter", "x": [lo, hi], "y": [lo, hi], "mode": "lines", "name": "same output (y = x)",
                     "line": {"color": OKABE_ITO["black"], "dash": "dash", "width": 1}})
    return _spec(_simple_layout("Same batch: eval vs train output, early and late",
                                "training-mode output y [output units]",
                                "evaluation-mode output y [output units]", 420), data,
                 meta={LECTURE_TITLE: "Eval vs train output"})


def placement_dot(bn_after_activation: bool) -> str:
    """Graphviz DOT source of one hidden layer with batch norm before or after the activation."""
    node = 'shape=box, style="rounded,filled", fillcolor="white", color="#000000", fontname="Helvetica"'
    bn = 'shape=box, style="rounded,filled,bold", fillcolor="#56B4E9", color="#0072B2", fontname="Helvetica"'
    order = (["lin", "act", "bn"] if bn_after_activation else ["lin", "bn", "act"])
    labels = {
        "lin": "Linear\\nu = W·h + b",
        "bn": "BatchNorm1d\\nγ·x̂ + β",
        "act": "activation\\ng(·)",
    }
    lines = ["digraph G {", "rankdir=LR;", 'bgcolor="transparent";',
             f'h [label="h (previous layer)", {node}, style="dashed"];',
             f'out [label="next layer", {node}, style="dashed"];']
    for k in order:
        lines.append(f'{k} [label="{labels[k]}", {bn if k == "bn" else node}];')
    chain = ["h", *order, "out"]
    lines.append(" -> ".join(chain) + ";")
    lines.append("}")
    return "\n".join(lines)


def batch_csv(stages: dict) -> str:
    """The batch before and after, one row per sample: ``x_j``, ``x_hat_j``, ``y_j`` per feature."""
    x = np.asarray(stages["x"])
    cols = {"sample": np.arange(1, x.shape[0] + 1)}
    for j in range(x.shape[1]):
        for key in ("x", "x_hat", "y"):
            if stages.get(key) is not None:
                cols[f"{key}_{j + 1}"] = np.asarray(stages[key])[:, j]
    buf = io.StringIO()
    header = ",".join(cols)
    buf.write(header + "\n")
    rows = np.column_stack([np.asarray(v, dtype=np.float64) for v in cols.values()])
    for r in rows:
        buf.write(str(int(r[0])) + "," + ",".join(f"{v:.10g}" for v in r[1:]) + "\n")
    return buf.getvalue()


# --------------------------------------------------------------------------- formula text


def fmt(v: float) -> str:
    """A number for a formula: 4 significant digits, scientific only when needed."""
    v = float(v)
    if not np.isfinite(v):
        return r"\text{undefined}"
    text = f"{v:.4g}"
    if "e" in text:
        mant, exp = text.split("e")
        return rf"{mant}\times 10^{{{int(exp)}}}"
    return text


def minus(v: float) -> str:
    """``- v`` written nicely: ``- 3.2`` or ``+ 3.2`` for a negative ``v``."""
    return f"+ {fmt(-v)}" if float(v) < 0 else f"- {fmt(v)}"


def paren(v: float) -> str:
    """A factor in a product: negative numbers in parentheses, ``2 \\cdot (-0.5)``."""
    return f"({fmt(v)})" if float(v) < 0 else fmt(v)


def plus(v: float) -> str:
    return f"- {fmt(-v)}" if float(v) < 0 else f"+ {fmt(v)}"


# --------------------------------------------------------------------------- cached wrappers


@st.cache_data(max_entries=32, show_spinner="Training the running statistics…")
def cached_running(source: str, batch_size: int, n_features: int, shift: float, scale: float,
                   seed: int, momentum: float, n_steps: int, eps: float) -> dict:
    """The running-statistics run (γ = 1, β = 0: it does not depend on them, so moving the
    γ/β sliders never re-runs it). The probe is the page's own batch (same arguments), so
    ``eval_gap`` is the mean |x̂_train − x̂_eval| of that batch per step."""
    probe = walkthrough.make_batch(source, batch_size, n_features, shift, scale, seed)
    train_bs = batch_size if batch_size >= 2 else FALLBACK_TRAIN_BATCH
    return walkthrough.running_stats_demo(source, train_bs, n_features, shift, scale, momentum,
                                          n_steps, seed, eps=eps, probe=probe)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_train_vs_eval(source: str, batch_size: int, n_features: int, shift: float, scale: float,
                         seed: int, momentum: float, n_steps: int, eps: float, gamma: float,
                         beta: float) -> dict:
    """The page's batch through the core layer in training mode, and in evaluation mode with
    the running statistics after step 1 and after the last step: ``y_train``, ``y_first``,
    ``y_last`` (each (batch_size, n_features)), ``step_first`` and ``step_last``."""
    run = cached_running(source, batch_size, n_features, shift, scale, seed, momentum, n_steps, eps)
    x = walkthrough.make_batch(source, batch_size, n_features, shift, scale, seed)
    first = min(1, int(n_steps))
    out = {"step_first": first, "step_last": int(n_steps),
           "y_train": walkthrough.pass_batch(x, gamma, beta, eps, training=True)["y"]}
    for name, k in (("y_first", first), ("y_last", -1)):
        out[name] = walkthrough.pass_batch(x, gamma, beta, eps, training=False,
                                           running_mean=run["running_mean"][k],
                                           running_var=run["running_var"][k])["y"]
    return out


@st.cache_data(max_entries=64, show_spinner=False)
def cached_pass(source: str, batch_size: int, n_features: int, shift: float, scale: float,
                seed: int, gamma: float, beta: float, eps: float, training: bool,
                running_mean: tuple[float, ...] | None = None,
                running_var: tuple[float, ...] | None = None) -> dict:
    x = walkthrough.make_batch(source, batch_size, n_features, shift, scale, seed)
    rm = None if running_mean is None else np.asarray(running_mean, dtype=np.float64)
    rv = None if running_var is None else np.asarray(running_var, dtype=np.float64)
    return walkthrough.pass_batch(x, gamma, beta, eps, training=training, running_mean=rm, running_var=rv)


# --------------------------------------------------------------------------- "what to see" sentences
#
# Each sentence is computed from the record its chart draws (the same ``stages`` / ``run``
# dicts), so it cannot contradict the chart; tests run them over the page's settings grid.


def _g(v: float, digits: int = 3) -> str:
    """A number for prose: ``digits`` significant digits, no trailing noise."""
    v = float(v)
    return f"{v:.{digits}g}" if np.isfinite(v) else "undefined"


def _span(values, digits: int = 3) -> str:
    """``"0.29"`` when the values agree to ``digits`` digits, else ``"between 0.09 and 0.29"``."""
    v = _finite(values)
    lo, hi = _g(v.min(), digits), _g(v.max(), digits)
    return lo if lo == hi else f"between {lo} and {hi}"


#: x̂'s variance counts as "1" in prose when every feature is within this of 1.
UNIT_VARIANCE_TOL = 0.01


def describe_pipeline(stages: dict, eps: float, gamma: float, beta: float) -> str:
    """The "what to see" line under the pipeline chart, from the stages it draws.

    Training mode: x̂ has mean 0 and variance σ²_B/(σ²_B + ε) per feature; the sentence says
    "variance 1" only if every feature is within :data:`UNIT_VARIANCE_TOL` of 1, and otherwise
    gives the variances and blames ε. Evaluation mode: the batch's x̂ mean and variance, which
    the running statistics do not make 0 and 1. One sample: its x̂ values.
    """
    x_hat = np.asarray(stages["x_hat"], dtype=np.float64)
    m = x_hat.shape[0]
    training = bool(stages.get("training", True))
    if m < 2:
        per = "feature" if x_hat.shape[1] == 1 else "features 1 to " + str(x_hat.shape[1])
        xs = ", ".join(_g(v) for v in x_hat[0])
        ys = ", ".join(_g(v) for v in np.asarray(stages["y"])[0])
        return (f"One sample, in evaluation mode: x̂ = {xs} and y = γ·x̂ + β = {ys} ({per}); "
                "a single sample has no spread to show.")
    var_hat = x_hat.var(axis=0)
    y_std = np.asarray(stages["y"], dtype=np.float64).std(axis=0)
    y_part = f"y = γ·x̂ + β then has mean β = {_g(beta)} and standard deviation {_span(y_std)} (|γ| times x̂'s)."
    if training:
        var_b = np.asarray(stages["var"], dtype=np.float64)
        if np.all(np.abs(var_hat - 1.0) <= UNIT_VARIANCE_TOL):
            pm = "; with m = 2 every x̂ is ±1 (to two digits): one sample on each side of the mean" if m == 2 else ""
            return ("Whatever came in, x̂ has mean 0 and variance 1 (to two digits) in every feature"
                    f"{pm}. " + y_part)
        # Blame ε only next to the variances it is not small against (at m = 2 one feature's
        # σ²_B was 7.69e-05 and the other's 0.0665, where ε = 1e-05 is small).
        off = np.abs(var_hat - 1.0) > UNIT_VARIANCE_TOL
        which = ("the batch variance" if off.all() else
                 "the batch variance of feature" + ("s " if off.sum() > 1 else " ")
                 + ", ".join(str(j + 1) for j in np.flatnonzero(off)) + ",")
        return (f"x̂ has mean 0 but variance {_span(var_hat)}, not 1: ε = {_g(eps)} is not small next to "
                f"{which} σ²_B = {_span(var_b[off])}, and x̂'s variance is σ²_B/(σ²_B + ε). " + y_part)
    mean_hat = clean_zero(x_hat.mean(axis=0))
    return (f"Evaluation mode: normalized with the running statistics, this batch's x̂ has mean "
            f"{_span(mean_hat, 2)} and variance {_span(var_hat, 2)}, not exactly 0 and 1 (those hold for "
            "the batch's own statistics only). " + y_part)


def describe_running(run: dict, momentum: float) -> str:
    """The line under the running-statistics chart: how far the last step is from the population."""
    k = int(np.asarray(run["step"])[-1])
    rm, rv = np.asarray(run["running_mean"])[-1], np.asarray(run["running_var"])[-1]
    pm, pv = np.asarray(run["pop_mean"]), np.asarray(run["pop_var"])
    weight = (1.0 - float(momentum)) ** k
    with np.errstate(all="ignore"):
        rel_var = np.abs(rv / pv - 1.0)
    worst_mean = float(np.max(np.abs(rm - pm)))
    return (f"After {k} step{'s' if k != 1 else ''} the initial values (0 and 1) still weigh "
            f"(1 − ρ)^{k} = {_g(weight, 2)}; the running means are within {_g(worst_mean, 2)} of the "
            f"population means and the running variances within {_g(100 * float(np.max(rel_var)), 2)} % "
            "of the population variances.")


def describe_eval_gap(run: dict, both: dict, momentum: float) -> str:
    """The line under the train-vs-eval charts, from the gap they draw."""
    gap = np.asarray(run["eval_gap"], dtype=np.float64)
    first, last = int(both["step_first"]), int(both["step_last"])
    start = f"The same batch in both modes: after step {first} its x̂ differ by {_g(gap[first].mean())} on average"
    if last == first:
        return start + "."
    weight = (1.0 - float(momentum)) ** last
    text = f"{start}, after step {last} by {_g(gap[-1].mean())} (outputs y differ by |γ| times that). "
    if weight > 0.05:
        return text + (f"After {last} steps the initial 0 and 1 still weigh (1 − ρ)^{last} = {_g(weight, 2)} "
                       "in the running statistics: much of the gap is that.")
    return text + ("What remains is this batch's own deviation from the population: training-mode outputs "
                   "depend on which samples share the batch, evaluation-mode outputs do not.")
