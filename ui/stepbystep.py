"""Chapter 2 (batch norm, step by step): figure builders and cached wrappers.

Figure builders take arrays and return a ``go.Figure``; they never compute science. The
cached wrappers call :mod:`bn_core.walkthrough` (which runs the core's BatchNorm1d) with
primitive, hashable arguments only, so the cache key is the whole input.
"""

from __future__ import annotations

import io

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from bn_core import walkthrough
from ui.state import ChoiceParam, FloatParam, IntParam
from ui.theme import CYCLE, OKABE_ITO, style_figure

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

#: Colour, histogram pattern and dash per pipeline stage (pattern = redundancy for colour).
STAGE_STYLE = {
    "x": {"color": OKABE_ITO["vermillion"], "pattern": "", "dash": "solid",
          "name": "input x", "axis": "x [activation units]"},
    "x_hat": {"color": OKABE_ITO["blue"], "pattern": "/", "dash": "dash",
              "name": "normalized x̂", "axis": "x̂ [batch std. deviations]"},
    "y": {"color": OKABE_ITO["green"], "pattern": "x", "dash": "dot",
          "name": "output y = γ·x̂ + β", "axis": "y [output units]"},
}

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


def pipeline_figure(stages: dict, title: str = "A mini-batch through the layer, per feature") -> go.Figure:
    """Histograms of every feature at every stage: input x -> x̂ -> y = γ·x̂ + β.

    Parameters
    ----------
    stages : dict
        ``x``, ``x_hat``, ``y`` (each of shape (batch_size, n_features)) and ``mean``
        (n_features,), the mean used to normalize (drawn as a line in the input column).

    Returns
    -------
    go.Figure
        One row per feature, one column per stage; x axes shared within a column so the
        features' different locations and spreads are visible before, and gone after.
    """
    keys = ("x", "x_hat", "y")
    n_features = np.asarray(stages["x"]).shape[1]
    fig = make_subplots(
        rows=n_features, cols=3, shared_xaxes="columns", vertical_spacing=0.06 if n_features > 1 else 0.0,
        horizontal_spacing=0.07,
        column_titles=[STAGE_STYLE[k]["name"] for k in keys],
        row_titles=[feature_name(j) for j in range(n_features)],
    )
    for j in range(n_features):
        for c, key in enumerate(keys, start=1):
            s = STAGE_STYLE[key]
            values = _finite(np.asarray(stages[key])[:, j])
            fig.add_trace(
                go.Histogram(
                    x=values, name=s["name"], legendgroup=key, showlegend=(j == 0), nbinsx=30,
                    marker={"color": s["color"], "line": {"color": "white", "width": 0.5},
                            "pattern": {"shape": s["pattern"], "fgcolor": "white"}},
                    opacity=0.9,
                    hovertemplate=f"{feature_name(j)}<br>%{{x}}<br>%{{y}} samples<extra>{s['name']}</extra>",
                ),
                row=j + 1, col=c,
            )
        mean = float(np.asarray(stages["mean"])[j])
        if np.isfinite(mean):
            fig.add_vline(x=mean, line={"color": OKABE_ITO["black"], "dash": "dash", "width": 1.5},
                          row=j + 1, col=1)
    # A legend entry for the dashed mean lines (shapes have none of their own).
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="mean used to normalize",
                             line={"color": OKABE_ITO["black"], "dash": "dash"}), row=1, col=1)
    height = 190 + 170 * n_features
    style_figure(fig, title, "", "count [samples]", height=height)
    _legend_on_top(fig, height, top=110)
    fig.update_layout(bargap=0.05, margin={"r": 40})
    for c, key in enumerate(keys, start=1):
        fig.update_xaxes(title_text=STAGE_STYLE[key]["axis"], row=n_features, col=c)
        for r in range(1, n_features):
            fig.update_xaxes(title_text="", row=r, col=c)
    for r in range(1, n_features + 1):
        for c in (2, 3):
            fig.update_yaxes(title_text="", row=r, col=c)
    return fig


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
    steps = np.asarray(hist["step"])
    n_features = np.asarray(hist["running_mean"]).shape[1]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("running mean", "running variance (unbiased)"))
    for c, (key, pop_key) in enumerate((("running_mean", "pop_mean"), ("running_var", "pop_var")), start=1):
        for j in range(n_features):
            colour = CYCLE[j % len(CYCLE)]
            series = np.asarray(hist[key])[:, j]
            ok = np.isfinite(series)
            fig.add_trace(go.Scatter(
                x=steps[ok], y=series[ok], mode="lines", name=f"{feature_name(j)}: running",
                legendgroup=f"f{j}", showlegend=(c == 1),
                line={"color": colour, "dash": FEATURE_DASH[j % 4], "width": 2},
            ), row=1, col=c)
            pop = float(np.asarray(hist[pop_key])[j])
            if np.isfinite(pop):
                fig.add_trace(go.Scatter(
                    x=[steps[0], steps[-1]], y=[pop, pop], mode="lines+markers",
                    name=f"{feature_name(j)}: population", legendgroup=f"f{j}", showlegend=(c == 1),
                    line={"color": colour, "dash": "dot", "width": 1},
                    marker={"symbol": FEATURE_SYMBOL[j % 4], "size": 8, "color": colour},
                ), row=1, col=c)
    style_figure(fig, f"Running statistics converge to the population (momentum {momentum:g})",
                 "step [training batches]", "", height=480)
    _legend_on_top(fig, 480, top=130)
    fig.update_yaxes(title_text="running mean [activation units]", row=1, col=1)
    fig.update_yaxes(title_text="running variance [activation units²]", row=1, col=2)
    return fig


def eval_gap_figure(hist: dict) -> go.Figure:
    """Mean |y_train − y_eval| of the same batch vs step, per feature.

    ``hist`` needs ``step`` (k + 1,) and ``eval_gap`` (k + 1, n_features).
    """
    steps = np.asarray(hist["step"])
    gap = np.asarray(hist["eval_gap"])
    fig = go.Figure()
    for j in range(gap.shape[1]):
        ok = np.isfinite(gap[:, j])
        fig.add_trace(go.Scatter(
            x=steps[ok], y=gap[ok, j], mode="lines", name=feature_name(j),
            line={"color": CYCLE[j % len(CYCLE)], "dash": FEATURE_DASH[j % 4], "width": 2},
        ))
    style_figure(fig, "Same batch: train vs eval gap per step", "step [training batches]",
                 "mean |y_train − y_eval| [output units]", height=420)
    return _legend_on_top(fig, 420, top=110)


def train_vs_eval_scatter(y_train: np.ndarray, y_first: np.ndarray, y_last: np.ndarray,
                          step_first: int, step_last: int) -> go.Figure:
    """Each sample's output in evaluation mode (y) against training mode (x), early and late.

    Points on the diagonal mean both modes agree.
    """
    a = np.asarray(y_train, dtype=np.float64).ravel()
    fig = go.Figure()
    series = ((y_first, f"eval after step {step_first}", OKABE_ITO["orange"], "circle"),
              (y_last, f"eval after step {step_last}", OKABE_ITO["blue"], "square"))
    finite_all = [_finite(a)]
    for y_eval, name, colour, symbol in series:
        b = np.asarray(y_eval, dtype=np.float64).ravel()
        ok = np.isfinite(a) & np.isfinite(b)
        finite_all.append(b[ok])
        fig.add_trace(go.Scatter(x=a[ok], y=b[ok], mode="markers", name=name,
                                 marker={"color": colour, "symbol": symbol, "size": 7, "opacity": 0.7,
                                         "line": {"color": "white", "width": 0.5}}))
    lo_hi = np.concatenate(finite_all)
    if lo_hi.size:
        lo, hi = float(lo_hi.min()), float(lo_hi.max())
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="same output (y = x)",
                                 line={"color": OKABE_ITO["black"], "dash": "dash", "width": 1}))
    style_figure(fig, "Same batch: eval vs train output, early and late",
                 "training-mode output y [output units]", "evaluation-mode output y [output units]",
                 height=420)
    return _legend_on_top(fig, 420, top=110)


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


def plus(v: float) -> str:
    return f"- {fmt(-v)}" if float(v) < 0 else f"+ {fmt(v)}"


# --------------------------------------------------------------------------- cached wrappers


@st.cache_data(max_entries=64, show_spinner=False)
def cached_batch(source: str, batch_size: int, n_features: int, shift: float, scale: float,
                 seed: int) -> np.ndarray:
    return walkthrough.make_batch(source, batch_size, n_features, shift, scale, seed)


@st.cache_data(max_entries=32, show_spinner="Training the running statistics…")
def cached_running(source: str, batch_size: int, n_features: int, shift: float, scale: float,
                   seed: int, momentum: float, n_steps: int, eps: float, gamma: float,
                   beta: float) -> dict:
    """The running-statistics run; the probe is the page's own batch (same arguments)."""
    probe = walkthrough.make_batch(source, batch_size, n_features, shift, scale, seed)
    train_bs = batch_size if batch_size >= 2 else FALLBACK_TRAIN_BATCH
    return walkthrough.running_stats_demo(source, train_bs, n_features, shift, scale, momentum,
                                          n_steps, seed, eps=eps, gamma=gamma, beta=beta, probe=probe)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_pass(source: str, batch_size: int, n_features: int, shift: float, scale: float,
                seed: int, gamma: float, beta: float, eps: float, training: bool,
                running_mean: tuple[float, ...] | None = None,
                running_var: tuple[float, ...] | None = None) -> dict:
    x = walkthrough.make_batch(source, batch_size, n_features, shift, scale, seed)
    rm = None if running_mean is None else np.asarray(running_mean, dtype=np.float64)
    rv = None if running_var is None else np.asarray(running_var, dtype=np.float64)
    return walkthrough.pass_batch(x, gamma, beta, eps, training=training, running_mean=rm, running_var=rv)
