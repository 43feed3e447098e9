"""Chapter 3 (batch norm in a network): figure builders and the Streamlit glue around training.

Three kinds of functions live here:

* **Figure builders** (``fig_*``): plain arrays / history dicts in, ``go.Figure`` out. They
  never call Streamlit, so they are unit-tested directly. Every builder drops non-finite
  values before plotting (a diverged run stops with a NaN or an exploding loss; NaN/inf
  must never reach a chart) and draws the two arms in the house style
  (:data:`ui.theme.ARM_STYLE`: Okabe-Ito colour *and* dash/marker, so greyscale still reads).
* **Cached wrappers** (``sweep_cached``, ``init_grad_norms_cached``): thin ``st.cache_data``
  layers over :mod:`bn_core.experiments` with a progress bar; single runs train in
  :func:`trainer`'s worker pool.
* **Cached charts** (``*_chart``): each builder's figure built once per training run (or sweep)
  with ``st.cache_resource`` and handed to :func:`ui.page.chart` as a read-only
  :class:`ui.theme.FigureSpec`, so a rerun does not rebuild validated figures.

Why the progress bar is created *inside* the cached functions rather than passed in as a
``_progress`` callback: ``st.cache_data`` records every Streamlit call made while the
function runs and replays it on a cache hit. A callback that updates a bar created *outside*
the function makes the replay fail on the second run (``CacheReplayClosureError``). A bar
created, updated and emptied inside the function replays harmlessly (it ends empty).

A *history* is the dict of arrays recorded by :func:`bn_core.train.train`:
``step``, ``train_loss``, ``train_acc``, ``test_acc`` of shape ``(n_rec,)``,
``act_pct`` of shape ``(n_rec, depth, 3)``, ``grad_norm`` of shape ``(n_rec, depth + 1)``,
and per optimisation step ``batch_loss`` and ``step_time`` of shape ``(n_steps_done,)``.
Evaluation entries may be NaN (e.g. a batch-norm network's step-0 evaluation that overflows):
the builders drop them.
Builders take ``histories``, a mapping ``arm -> history`` with ``arm`` in :data:`ARMS`;
a missing arm (e.g. batch norm cannot train on a batch of one) is simply not drawn.
:func:`bn_core.parallel.train_for_page` adds ``wall_time_s`` of shape ``(1,)``: the whole run's
wall-clock time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from bn_core.experiments import SWEEPABLE, gradient_norms_at_init, sweep
from bn_core.parallel import TrainPool
from bn_core.train import PERCENTILES, TrainConfig, TrainResult, digits
from ui import state
from ui.page import Experiment
from ui.progress import progress_bar
from ui.theme import ARM_STYLE, LECTURE_TITLE, OKABE_ITO, SEQUENTIAL, FigureSpec, style_figure

#: The two arms of every experiment: the plain network and the batch-normalized one.
ARMS = ("plain", "bn")
ARM_LABEL = {"plain": "without BN", "bn": "with BN"}

History = Mapping[str, np.ndarray]


# --------------------------------------------------------------------------- controls (URL state)

LR_OPTIONS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
INIT_OPTIONS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
# widget choices (named so they do not shadow bn_core's ACTIVATIONS / OPTIMIZERS tables)
ACTIVATION_CHOICES = ("sigmoid", "tanh", "relu")
OPTIMIZER_CHOICES = ("sgd", "momentum")
PLACEMENTS = ("bn_before", "bn_after")
PLACEMENT_LABEL = {"bn_before": "before the activation (Ioffe & Szegedy)",
                   "bn_after": "after the activation"}
OPTIMIZER_LABEL = {"sgd": "SGD", "momentum": "SGD + momentum 0.9"}
MAX_DEPTH = 10
MAX_STEPS = 5000
DEFAULT_STEPS = 1000
DEFAULT_LR = 0.3
#: Evaluations per run (plus step 0): the x resolution of every "vs step" chart. Each one
#: evaluates the whole training and test sets (1797 images) in both arms; 20 instead of 30
#: takes a default run of both arms from about 0.66 s to 0.55 s of CPU (measured idle).
RECORDS_PER_RUN = 20
SWEEP_MAX_STEPS = 1000  # per sweep run (36 runs)
DEEP_MAX_STEPS = 1000  # per deep-network run
#: Training samples of the default digits split (the batch-size maximum); a test checks it
#: against bn_core.train.digits(), so PARAMS can be built at import without loading the data.
N_TRAIN = 1347

LR_LABEL = "Learning rate"
#: The chapter's key control, first in the sidebar (on a projector's first screen).
KEY_CONTROLS = (LR_LABEL,)


def make_params(n_train: int = N_TRAIN) -> list[state.Param]:
    """Every control of this chapter, mirrored in the URL (keys prefixed ``c3_``)."""
    return [
        state.FloatParam("c3_lr", DEFAULT_LR, label="learning rate", lo=LR_OPTIONS[0], hi=LR_OPTIONS[-1],
                         options=LR_OPTIONS),
        state.IntParam("c3_batch", 60, label="batch size", lo=1, hi=n_train),
        state.IntParam("c3_depth", 3, label="hidden layers", lo=1, hi=MAX_DEPTH),
        state.IntParam("c3_width", 100, label="units per layer", lo=2, hi=256),
        state.ChoiceParam("c3_act", "sigmoid", label="activation", choices=ACTIVATION_CHOICES),
        state.FloatParam("c3_init", 0.1, label="initial weight std", lo=INIT_OPTIONS[0], hi=INIT_OPTIONS[-1],
                         options=INIT_OPTIONS),
        state.ChoiceParam("c3_place", "bn_before", label="BN placement", choices=PLACEMENTS),
        state.IntParam("c3_steps", DEFAULT_STEPS, label="steps", lo=1, hi=MAX_STEPS),
        state.ChoiceParam("c3_opt", "sgd", label="optimizer", choices=OPTIMIZER_CHOICES),
        state.IntParam("c3_seed", 0, label="seed", lo=0, hi=10_000),
        state.IntParam("c3_layer", 3, label="probed layer", lo=1, hi=MAX_DEPTH),
        state.BoolParam("c3_sweeps", False, label="robustness sweeps"),
        state.IntParam("c3_gdepth", 10, label="deep network's hidden layers", lo=2, hi=12),
        state.ChoiceParam("c3_gact", "sigmoid", label="deep network's activation", choices=("sigmoid", "tanh")),
        state.BoolParam("c3_gtrain", False, label="train the deep networks"),
    ]


#: Every control of the chapter, in sidebar order.
PARAMS = make_params()

#: A network that has learned the digits reaches at least this test accuracy (chance: 0.1;
#: the default BN network reaches 0.97).
LEARNED_ACC = 0.9
#: At or below this batch size a BN network that has not learned is called a collapse and
#: pointed to chapter 4 (where batch norm breaks).
SMALL_BATCH = 16
CHAPTER4_LINK = "[chapter 4, *The curse of batch norm*](/curse-of-batch-norm)"

#: Guided experiments ("Try this"; the home page's lesson links). Every note is checked
#: against the page's own runs in tests/test_page_network.py.
EXPERIMENTS = [
    Experiment("BN at learning rate 10",
               "At learning rate 10 the plain network stays at chance level (test accuracy about 0.1), "
               "while the network with BN reaches above 0.95.",
               {"c3_lr": 10.0}),
    Experiment("Batch size 2",
               "At batch size 2 the BN network collapses to less than half of the 0.97 it reaches at the "
               "default batch of 60: each unit is normalized with the mean and variance of two examples "
               "(chapter 4, The curse of batch norm).",
               {"c3_batch": 2}),
    Experiment("ReLU, initial weight std 1",
               "With ReLU units and initial weights of std 1 the plain network diverges at step 2, "
               "while the BN network trains to above 0.9.",
               {"c3_act": "relu", "c3_init": 1.0}),
    Experiment("ReLU, initial weight std 3",
               "At std 3 the plain network's loss explodes before its first update (step 0), and the "
               "BN network still trains to above 0.9.",
               {"c3_act": "relu", "c3_init": 3.0}),
]


# --------------------------------------------------------------------------- cost estimate

#: Training both arms is not started automatically when it is estimated to take longer [s].
COST_THRESHOLD_S = 20.0
#: The robustness sweeps (up to 36 runs) are not started automatically above this estimate [s];
#: higher than for one pair of runs because the sweeps are already opt-in (about 50 s by default).
SWEEP_THRESHOLD_S = 120.0
# Calibration, measured 2026-11-22 ~01:24 UTC on this two-core machine (load average about 4)
# with bn_core.train.train, plain and bn_before one after the other, 30 evaluations per run:
#   3 x 100, batch 60, 1000 steps (the page default):    1.0 s + 3.0 s = 4.0 s
#   6 x 200, batch 300, 300 steps:                         3.7 s + 5.2 s = 8.9 s
#   10 x 256, batch 1347, 100 steps (the largest network):  15.6 s + 21.9 s = 37.5 s
# Per step, both arms together cost about 0.46 ns per "unit" of
# batch x (64*width + (depth-1)*width^2 + 10*width) (the matrix products: 0.457 and 0.46 ns for
# the two large configs) plus a fixed ~0.5 ms per layer (Python and small-array overhead, which
# dominates the default network: estimate 2.8 s against 4.0 s measured under load, and
# benchmarks/bench_chapter3_default.py's budget of 2 s on an idle machine).
NS_PER_UNIT_BOTH_ARMS = 0.46
MS_PER_LAYER_STEP_BOTH_ARMS = 0.5


def units_per_step(config: TrainConfig) -> float:
    """Multiply-adds of one forward pass over a batch: ``batch * (64 w + (d-1) w^2 + 10 w)``."""
    w, d = float(config.width), float(config.depth)
    return float(config.batch_size) * (64.0 * w + (d - 1.0) * w * w + 10.0 * w)


def estimate_seconds(config: TrainConfig, arms: int = 2) -> float:
    """Estimated wall time [s] to train ``arms`` arms (1 or 2) of ``config`` (see the calibration above)."""
    per_step = (NS_PER_UNIT_BOTH_ARMS * 1e-9 * units_per_step(config)
                + MS_PER_LAYER_STEP_BOTH_ARMS * 1e-3 * (config.depth + 1))
    return float(config.steps) * per_step * arms / 2.0


def cost_drivers(config: TrainConfig) -> str:
    """What makes a run expensive, in words (the factors of :func:`estimate_seconds`)."""
    return (f"{config.steps} steps × a batch of {config.batch_size} examples × {config.depth} hidden "
            f"layer{'s' if config.depth != 1 else ''} of {config.width} units (the time grows with "
            "steps × batch × depth × width²)")


def format_seconds(seconds: float) -> str:
    """``"about 40 s"`` / ``"about 12 min"`` for a warning's prose."""
    return f"about {seconds:.0f} s" if seconds < 120 else f"about {seconds / 60:.0f} min"


# --------------------------------------------------------------------------- helpers


def finite_xy(x, y, *, positive: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Keep the points where both ``x`` and ``y`` are finite (and ``y > 0`` if ``positive``).

    Parameters
    ----------
    x, y : array_like of shape (n,)
    positive : bool
        Also drop ``y <= 0`` (for a log axis).

    Returns
    -------
    x, y : ndarray of shape (m,), m <= n
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    keep = np.isfinite(x) & np.isfinite(y)
    if positive:
        keep &= y > 0
    return x[keep], y[keep]


def _line(arm: str, **extra) -> dict:
    style = ARM_STYLE[arm]
    return {"color": style["color"], "dash": style["dash"], "width": 2.5, **extra}


def _marker(arm: str, **extra) -> dict:
    style = ARM_STYLE[arm]
    return {"color": style["color"], "symbol": style["symbol"], "size": 7, **extra}


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _last_finite(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    fx, fy = finite_xy(x, y)
    return (float(fx[-1]), float(fy[-1])) if len(fx) else None


#: Pixels between the bottom of the plot area and the top of a legend drawn below it.
LEGEND_GAP_PX = 80


def _legend_below(fig: go.Figure, extra_bottom: int = 70) -> go.Figure:
    """Move the legend under the x axis title, clear of the (sub)plot titles."""
    # The legend's top sits LEGEND_GAP_PX below the plot area, under the tick labels and the
    # x axis title in lecture mode's larger fonts too (legend y is in paper units, so it is
    # scaled by the plot area's height: a fixed -0.27 overlapped the axis title of the
    # shorter sweep charts); the top margin leaves room for the title above the subplot titles.
    top, bottom = 80, 70 + extra_bottom
    plot_h = (fig.layout.height or 420) - top - bottom
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -LEGEND_GAP_PX / plot_h,
                              "xanchor": "left", "x": 0.0},
                      margin={"b": bottom, "t": top})
    return fig


def _panel_note(fig: go.Figure, col: int, text: str) -> None:
    """A grey note in the middle of subplot ``col`` of a one-row figure.

    An empty trace goes with it: Plotly draws a subplot's axes (and a shared y axis's tick
    labels, which live on the first panel) only for subplots that hold a trace.
    """
    x = 0.22 if col == 1 else 0.78
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=x, y=0.5,
                       font={"size": 13, "color": "grey"})
    fig.add_trace(go.Scatter(x=[], y=[], mode="markers", showlegend=False, hoverinfo="skip",
                             name="(no data)"), row=1, col=col)


def _empty_note(fig: go.Figure, text: str) -> None:
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font={"size": 14, "color": OKABE_ITO["black"]})


def step_time_stats_ms(history: History) -> tuple[float, float, float] | None:
    """Median, 25th and 75th percentile of the measured time per training step, in ms.

    Returns None when no finite step time was recorded.
    """
    t = np.asarray(history.get("step_time", []), dtype=float)
    t = t[np.isfinite(t)] * 1e3
    if t.size == 0:
        return None
    q25, med, q75 = np.percentile(t, [25, 50, 75])
    return float(med), float(q25), float(q75)


def final_value(history: History, key: str) -> float | None:
    """The last finite value of ``history[key]``, or None."""
    v = np.asarray(history.get(key, []), dtype=float)
    v = v[np.isfinite(v)]
    return float(v[-1]) if v.size else None


# --------------------------------------------------------------------------- figures


def fig_training_curves(histories: Mapping[str, History],
                        diverged: Mapping[str, int | None] | None = None) -> go.Figure:
    """Training loss (log axis) and test accuracy against step, one line per arm.

    The analogue of Ioffe & Szegedy (2015), Figure 1(a). A diverged arm ends at its last
    finite record and gets an ``x`` marker named "diverged at step k".
    """
    diverged = diverged or {}
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("cross-entropy loss (full training set)", "test accuracy"))
    for arm in ARMS:
        if arm not in histories:
            continue
        h = histories[arm]
        for col, key, positive in ((1, "train_loss", True), (2, "test_acc", False)):
            x, y = finite_xy(h["step"], h[key], positive=positive)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=ARM_LABEL[arm],
                                     legendgroup=arm, showlegend=col == 1, line=_line(arm),
                                     marker=_marker(arm, size=5)), row=1, col=col)
            k = diverged.get(arm)
            end = _last_finite(x, y) if k is not None else None
            if end is not None:
                fig.add_trace(go.Scatter(
                    x=[end[0]], y=[end[1]], mode="markers", legendgroup=arm, showlegend=col == 1,
                    name=f"{ARM_LABEL[arm]}: diverged at step {k}",
                    marker={"symbol": "x", "size": 14, "color": ARM_STYLE[arm]["color"]}),
                    row=1, col=col)
    style_figure(fig, "Loss and test accuracy during training (cf. Ioffe & Szegedy 2015, Fig. 1a)",
                 "step [parameter updates]", "", height=420)
    fig.update_yaxes(title_text="loss [nats], log", type="log", exponentformat="power",
                     row=1, col=1)
    fig.update_yaxes(title_text="accuracy [fraction]", range=[0, 1.02], row=1, col=2)
    _legend_below(fig)
    if not fig.data:
        _empty_note(fig, "no run to show")
    return fig


def fig_activation_percentiles(histories: Mapping[str, History], layer: int,
                               activation: str = "sigmoid", unit: int = 0,
                               placement: str = "bn_before",
                               diverged: Mapping[str, int | None] | None = None) -> go.Figure:
    """15th/50th/85th percentiles of one unit's input to the nonlinearity, over training.

    Analogue of Ioffe & Szegedy (2015), Figure 1(b, c): left without BN, right with BN, on a
    shared y axis so drift and stability compare directly.

    Parameters
    ----------
    histories : mapping arm -> history with ``act_pct`` of shape (n_rec, depth, 3)
    layer : int
        Hidden layer, 1-based (1 = first hidden layer).
    diverged : mapping arm -> divergence step or None, optional
        Names why an arm has no record (e.g. "diverged at step 0").

    Notes
    -----
    The BN network's step-0 record is evaluated with the initial running statistics (mean 0,
    variance 1), i.e. not normalized; with large weights it is orders of magnitude off and
    would flatten the rest. The shared y range therefore leaves it out, and a note in the BN
    panel gives its median when it falls outside.
    """
    diverged = diverged or {}
    titles = tuple(f"{ARM_LABEL[a]}" + (" (BN after the activation)" if a == "bn" and placement == "bn_after" else "")
                   for a in ARMS)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=titles)
    in_range: list[np.ndarray] = []
    off_chart: tuple[float, float, float, float] | None = None  # BN step 0 left out: step, median, min, max
    for col, arm in enumerate(ARMS, start=1):
        h = histories.get(arm)
        if h is None:
            _panel_note(fig, col, f"no run {ARM_LABEL[arm]}")
            continue
        pct = np.asarray(h["act_pct"], dtype=float)
        step = np.asarray(h["step"], dtype=float)
        if pct.ndim != 3 or not 1 <= layer <= pct.shape[1] or pct.shape[0] == 0:
            k = diverged.get(arm)
            _panel_note(fig, col, "no record: diverged at step 0,<br>before the first update" if k == 0
                        else "no finite record to show")
            continue
        n = min(len(step), pct.shape[0])
        step, p = step[:n], pct[:n, layer - 1, :]
        keep = np.isfinite(step) & np.all(np.isfinite(p), axis=1)
        step, p = step[keep], p[keep]
        if not step.size:
            _panel_note(fig, col, "no finite record to show")
            continue
        later = step > 0 if arm == "bn" else np.ones(step.size, dtype=bool)
        in_range.append(p[later].ravel() if later.any() else p.ravel())
        colour = ARM_STYLE[arm]["color"]
        fig.add_trace(go.Scatter(x=step, y=p[:, 0], mode="lines", name=f"{ARM_LABEL[arm]}: 15th percentile",
                                 legendgroup=f"{arm}-band", showlegend=False,
                                 line={"color": colour, "dash": "dot", "width": 1}), row=1, col=col)
        fig.add_trace(go.Scatter(x=step, y=p[:, 2], mode="lines", name=f"{ARM_LABEL[arm]}: 15th–85th percentile",
                                 legendgroup=f"{arm}-band", fill="tonexty", fillcolor=_rgba(colour, 0.18),
                                 line={"color": colour, "dash": "dot", "width": 1}), row=1, col=col)
        fig.add_trace(go.Scatter(x=step, y=p[:, 1], mode="lines+markers", name=f"{ARM_LABEL[arm]}: median",
                                 line=_line(arm), marker=_marker(arm, size=5)), row=1, col=col)
        if arm == "bn" and later.any() and not later.all():
            off_chart = (float(step[~later][0]), float(p[~later][0, 1]), float(p[~later].min()), float(p[~later].max()))
    # The percentiles are named in the legend (15th-85th band, median): the title stays short
    # enough for a projector in lecture mode.
    style_figure(fig, f"Input to the {activation} of unit {unit}, hidden layer {layer} (cf. Fig. 1b,c)",
                 "step [parameter updates]", "", height=420)
    fig.update_yaxes(title_text="pre-activation [units]", row=1, col=1)
    if in_range:
        values = np.concatenate(in_range)
        lo, hi = float(values.min()), float(values.max())
        pad = 0.08 * (hi - lo) if hi > lo else 0.5 * max(1.0, abs(lo))
        lo, hi = lo - pad, hi + pad
        fig.update_yaxes(range=[lo, hi], autorange=False, row=1, col=1)
        if off_chart is not None and (off_chart[2] < lo or off_chart[3] > hi):
            fig.add_annotation(text=f"step 0 (initial running statistics, not yet<br>normalized): median "
                               f"{off_chart[1]:.3g}, off the chart", showarrow=False, xref="x2 domain",
                               yref="y2 domain", x=0.02, y=0.98, xanchor="left", yanchor="top",
                               font={"size": 12, "color": "#444444"}, align="left")
    _legend_below(fig)
    if not fig.data:
        _empty_note(fig, "no run to show")
    return fig


def fig_sweep(result: Mapping[str, np.ndarray], arm_norms: Mapping[str, str], *, title: str,
              x_title: str, current: float | None = None) -> go.Figure:
    """Final test accuracy against a swept setting (log x axis), one line per arm.

    Parameters
    ----------
    result : dict from :func:`bn_core.experiments.sweep`: ``values`` of shape (n,), the
        chance level ``chance_acc`` (drawn as a dotted line when present) and, per norm,
        ``f"{norm}/test_acc"`` and ``f"{norm}/diverged_at"`` (-1 when the run did not
        diverge) of shape (n,).
    arm_norms : mapping arm -> norm name used in ``result`` (e.g. ``{"plain": "none",
        "bn": "bn_before"}``).
    current : float, optional
        The value used by the main run, drawn as a vertical line.
    """
    fig = go.Figure()
    values = np.asarray(result["values"], dtype=float)
    for arm in ARMS:
        norm = arm_norms.get(arm)
        if norm is None or f"{norm}/test_acc" not in result:
            continue
        acc = np.asarray(result[f"{norm}/test_acc"], dtype=float)
        x, y = finite_xy(values, acc)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=ARM_LABEL[arm], legendgroup=arm,
                                 line=_line(arm), marker=_marker(arm, size=9)))
        div = np.asarray(result.get(f"{norm}/diverged_at", np.full(len(values), -1)), dtype=float)
        n = min(len(values), len(div), len(acc))
        bad = np.isfinite(values[:n]) & (div[:n] >= 0)
        if bad.any():
            # A diverged run is drawn at the accuracy the sweep reports for it: its last finite
            # evaluation before divergence (chance level if there was none); 0 only as a last
            # resort for a hand-made result with a non-finite accuracy.
            yd = np.where(np.isfinite(acc[:n][bad]), acc[:n][bad], 0.0)
            fig.add_trace(go.Scatter(
                x=values[:n][bad], y=yd, mode="markers", name=f"{ARM_LABEL[arm]}: diverged",
                legendgroup=arm, text=[f"diverged at step {int(k)}" for k in div[:n][bad]],
                hovertemplate="%{x}: %{text}<extra></extra>",
                marker={"symbol": "x", "size": 13, "color": ARM_STYLE[arm]["color"]}))
    chance = float(np.asarray(result.get("chance_acc", np.nan)))
    fv = values[np.isfinite(values) & (values > 0)]
    if fv.size and 0 < chance <= 1:  # the chance level the sweep itself used
        fig.add_trace(go.Scatter(x=[fv.min(), fv.max()], y=[chance, chance], mode="lines",
                                 name=f"chance (1/{round(1 / chance)} classes)",
                                 line={"color": OKABE_ITO["black"], "dash": "dot", "width": 1}))
    if current is not None and np.isfinite(current) and current > 0:
        # A shape on a log axis takes data units, an annotation log10 units: the label is
        # placed at log10(current) so it sits on its line (issue 10, item 17).
        fig.add_vline(x=current, line={"color": "grey", "dash": "longdash", "width": 1})
        fig.add_annotation(x=math.log10(current), xref="x", y=0.02, yref="paper", text="current setting",
                           showarrow=False, xanchor="left", yanchor="bottom", xshift=4,
                           font={"color": "#444444"})
    style_figure(fig, title, x_title, "accuracy [fraction]", height=400)
    fig.update_xaxes(type="log", exponentformat="power")
    fig.update_yaxes(range=[-0.03, 1.03])
    _legend_below(fig)
    if not fig.data:
        _empty_note(fig, "no sweep to show")
    return fig


def fig_grad_norms_init(norms: Mapping[str, np.ndarray], depth: int, activation: str) -> go.Figure:
    """Per-layer weight-gradient norm at initialization (log y), one line per arm.

    Parameters
    ----------
    norms : mapping arm -> ndarray of shape (depth + 1,), the L2 norm of dLoss/dW for each
        Linear layer (layer 1 = input side, depth + 1 = output layer).
    """
    fig = go.Figure()
    for arm in ARMS:
        if arm not in norms:
            continue
        g = np.asarray(norms[arm], dtype=float)
        x, y = finite_xy(np.arange(1, g.size + 1), g, positive=True)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=ARM_LABEL[arm],
                                 line=_line(arm), marker=_marker(arm, size=9)))
    style_figure(fig, f"Gradient norm per layer at initialization: {depth} hidden {activation} layers",
                 "Linear layer [1 = next to the input, last = output layer]",
                 "‖∂loss/∂W‖ [L2], log", height=400)
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_xaxes(dtick=1)
    _legend_below(fig)
    if not fig.data:
        _empty_note(fig, "no gradient norms to show")
    return fig


#: Legend entries per row of the per-layer gradient chart (110 px each).
LEGEND_PER_ROW = 7


def fig_grad_norms_training(histories: Mapping[str, History]) -> go.Figure:
    """Per-layer weight-gradient norm against step, left without BN and right with BN.

    One line per Linear layer, coloured along a sequential (Viridis) scale from the input
    side (dark) to the output layer (light), with alternating dashes, on a shared log y axis.
    """
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=tuple(ARM_LABEL[a] for a in ARMS))
    dashes = ("solid", "dash", "dot", "dashdot")
    symbols = ("circle", "square", "diamond", "triangle-up", "cross", "star")
    for col, arm in enumerate(ARMS, start=1):
        h = histories.get(arm)
        if h is None:
            _panel_note(fig, col, f"no run {ARM_LABEL[arm]}")
            continue
        g = np.asarray(h["grad_norm"], dtype=float)
        if g.ndim != 2:
            continue
        n_layers = g.shape[1]
        colours = sample_colorscale(SEQUENTIAL, list(np.linspace(0.0, 0.9, n_layers)))
        for j in range(n_layers):
            x, y = finite_xy(h["step"], g[:, j], positive=True)
            fig.add_trace(go.Scatter(
                x=x, y=y, mode="lines+markers", name=f"layer {j + 1}" + (" (output)" if j == n_layers - 1 else ""),
                legendgroup=f"layer{j}", showlegend=col == 1,
                line={"color": colours[j], "dash": dashes[j % len(dashes)], "width": 1.8},
                marker={"color": colours[j], "symbol": symbols[j % len(symbols)], "size": 4}),
                row=1, col=col)
    n_max = max((np.asarray(h["grad_norm"]).shape[-1] for h in histories.values()), default=0)
    rows = math.ceil(n_max / LEGEND_PER_ROW) if n_max else 1
    style_figure(fig, "Gradient norm per layer during training", "step [parameter updates]", "",
                 height=420 + 24 * rows)
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_yaxes(title_text="‖∂loss/∂W‖ [L2 norm], log scale", row=1, col=1)
    # A horizontal legend below the plot with room for every row: a vertical one beside it
    # scrolled once there were more layers than fitted its height (issue 10, item 17).
    fig.update_layout(legend={"orientation": "h", "x": 0.0, "xanchor": "left", "y": -0.16, "yanchor": "top",
                              "entrywidth": 110, "entrywidthmode": "pixels"},
                      margin={"b": 90 + 26 * rows})
    if not fig.data:
        _empty_note(fig, "no run to show")
    return fig


def fig_generalization_gap(histories: Mapping[str, History]) -> go.Figure:
    """Train minus test accuracy (percentage points), one line per arm.

    Left against step; right against training accuracy, so the arms compare at the same
    degree of fit (a network that has not fitted the training set has a small gap for the
    wrong reason).
    """
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("against step", "against training accuracy"))
    for arm in ARMS:
        h = histories.get(arm)
        if h is None:
            continue
        train_acc = np.asarray(h["train_acc"], dtype=float)
        with np.errstate(all="ignore"):  # inf - inf in a broken record must not warn; it is dropped
            gap = 100.0 * (train_acc - np.asarray(h["test_acc"], dtype=float)[: len(train_acc)])
        for col, xs in ((1, h["step"]), (2, train_acc)):
            x, y = finite_xy(xs, gap)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers" if col == 1 else "markers",
                                     name=ARM_LABEL[arm], legendgroup=arm,
                                     showlegend=col == 1, line=_line(arm), marker=_marker(arm, size=5)),
                          row=1, col=col)
    style_figure(fig, "Generalization gap: train accuracy − test accuracy", "", "", height=400)
    fig.update_xaxes(title_text="step [parameter updates]", row=1, col=1)
    fig.update_xaxes(title_text="training accuracy [fraction]", row=1, col=2)
    fig.update_yaxes(title_text="gap [% points]", row=1, col=1)
    fig.add_hline(y=0, line={"color": "grey", "width": 1})
    _legend_below(fig)
    if not fig.data:
        _empty_note(fig, "no run to show")
    return fig


def fig_step_time(histories: Mapping[str, History]) -> go.Figure:
    """Median measured time per training step per arm (bars), whiskers from 25th to 75th percentile."""
    fig = go.Figure()
    for arm in ARMS:
        h = histories.get(arm)
        stats = step_time_stats_ms(h) if h is not None else None
        if stats is None:
            continue
        med, q25, q75 = stats
        fig.add_trace(go.Bar(
            x=[ARM_LABEL[arm]], y=[med], name=ARM_LABEL[arm],
            hovertemplate=f"median {med:.3g} ms (25th–75th: {q25:.3g}–{q75:.3g} ms)<extra></extra>",
            marker={"color": ARM_STYLE[arm]["color"], "pattern": {"shape": "" if arm == "plain" else "/"}},
            error_y={"type": "data", "symmetric": False, "array": [q75 - med], "arrayminus": [med - q25]}))
    style_figure(fig, "Cost: measured time per training step (median; whiskers 25th–75th percentile)",
                 "network", "time per step [ms]", height=360)
    fig.update_layout(meta={LECTURE_TITLE: "Cost: time per training step (median; whiskers 25th–75th)"})
    if not fig.data:
        _empty_note(fig, "no timings to show")
    return fig


# --------------------------------------------------------------------------- tables


def histories_to_frames(results: Mapping[str, TrainResult]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two long tables of the arms' histories, for CSV download.

    Returns
    -------
    records : DataFrame
        One row per arm and evaluation: ``arm, norm, step, train_loss, train_acc, test_acc``,
        ``act_p{15,50,85}_layer{l}`` and ``grad_norm_layer{k}``.
    steps : DataFrame
        One row per arm and optimisation step: ``arm, norm, step, batch_loss, step_time_s``.
    """
    rec_parts, step_parts = [], []
    for arm, res in results.items():
        h = res.history
        n = len(h["step"])
        cols: dict[str, object] = {"arm": ARM_LABEL.get(arm, arm), "norm": res.config.norm,
                                   "step": np.asarray(h["step"])[:n]}
        for key in ("train_loss", "train_acc", "test_acc"):
            cols[key] = np.asarray(h[key], dtype=float)[:n]
        pct = np.asarray(h["act_pct"], dtype=float)
        for layer in range(pct.shape[1] if pct.ndim == 3 else 0):
            for i, q in enumerate(PERCENTILES):
                cols[f"act_p{q:g}_layer{layer + 1}"] = pct[:n, layer, i]
        g = np.asarray(h["grad_norm"], dtype=float)
        for k in range(g.shape[1] if g.ndim == 2 else 0):
            cols[f"grad_norm_layer{k + 1}"] = g[:n, k]
        rec_parts.append(pd.DataFrame(cols))
        bl = np.asarray(h.get("batch_loss", []), dtype=float)
        st_ = np.asarray(h.get("step_time", []), dtype=float)
        m = min(len(bl), len(st_))
        step_parts.append(pd.DataFrame({"arm": ARM_LABEL.get(arm, arm), "norm": res.config.norm,
                                        "step": np.arange(1, m + 1), "batch_loss": bl[:m],
                                        "step_time_s": st_[:m]}))
    records = pd.concat(rec_parts, ignore_index=True) if rec_parts else pd.DataFrame()
    steps = pd.concat(step_parts, ignore_index=True) if step_parts else pd.DataFrame()
    return records, steps


def histories_csv(results: Mapping[str, TrainResult], table: str) -> str:
    """One of :func:`histories_to_frames`' tables as CSV text: ``table`` is "records" or "steps".

    Meant as a deferred ``st.download_button(data=...)`` callable: built only when clicked.
    """
    records, steps = histories_to_frames(results)
    return {"records": records, "steps": steps}[table].to_csv(index=False)


# --------------------------------------------------------------------------- cached charts
#
# Building a validated go.Figure costs tens of milliseconds (make_subplots, add_trace and
# update_layout validate every property), and a page rerun that changes nothing, or only an
# unrelated widget, would rebuild all of them. The wrappers below build each chart once per
# run (or sweep) and keep it as a FigureSpec, whose ``to_dict`` hands the finished spec to
# ui.page.chart without copying or validating it again. The cached figures are shared
# between sessions: treat them as read-only.
#
# The cache key identifies the data, not the dict of arrays: ``runs_key`` names each run by
# its config and its measured times (unique to one training run, so a run retrained after
# the pool evicted it, with new step times, gets new charts); sweeps and gradient norms
# at initialization are deterministic functions of their arguments, which are the key.


def runs_key(results: Mapping[str, TrainResult]) -> tuple:
    """A hashable name for the training runs behind a chart (arm, config, measured times)."""
    key = []
    for arm in sorted(results):
        h = results[arm].history
        wall = np.asarray(h.get("wall_time_s", [np.nan]), dtype=float)
        key.append((arm, results[arm].config, float(np.sum(h.get("step_time", []))), float(wall[0])))
    return tuple(key)


@st.cache_resource(max_entries=64, show_spinner=False)
def _cached_figure(kind: str, key: tuple, _build: Callable[[], go.Figure]) -> FigureSpec:
    """``_build()`` frozen into a FigureSpec, cached under ``(kind, key)`` (``_build`` is not hashed)."""
    return FigureSpec(_build().to_dict())


def training_curves_chart(results: Mapping[str, TrainResult]) -> FigureSpec:
    """:func:`fig_training_curves` of ``results``, cached (read-only)."""
    return _cached_figure("curves", runs_key(results),
                          lambda: fig_training_curves(arms_of(results), diverged_of(results)))


def activation_percentiles_chart(results: Mapping[str, TrainResult], layer: int, activation: str,
                                 unit: int, placement: str) -> FigureSpec:
    """:func:`fig_activation_percentiles` of ``results``, cached (read-only)."""
    return _cached_figure(
        "percentiles", (runs_key(results), layer, activation, unit, placement),
        lambda: fig_activation_percentiles(arms_of(results), layer, activation, unit, placement,
                                           diverged_of(results)))


def generalization_gap_chart(results: Mapping[str, TrainResult]) -> FigureSpec:
    """:func:`fig_generalization_gap` of ``results``, cached (read-only)."""
    return _cached_figure("gap", runs_key(results), lambda: fig_generalization_gap(arms_of(results)))


def step_time_chart(results: Mapping[str, TrainResult]) -> FigureSpec:
    """:func:`fig_step_time` of ``results``, cached (read-only)."""
    return _cached_figure("time", runs_key(results), lambda: fig_step_time(arms_of(results)))


def grad_norms_training_chart(results: Mapping[str, TrainResult]) -> FigureSpec:
    """:func:`fig_grad_norms_training` of ``results``, cached (read-only)."""
    return _cached_figure("grad_train", runs_key(results), lambda: fig_grad_norms_training(arms_of(results)))


def arm_norms(batch_size: int, placement: str) -> tuple[str, ...]:
    """The norm of each arm, in the order of :data:`ARMS`: the plain one alone on a batch of one,
    where batch normalization cannot train."""
    return ("none", placement) if batch_size >= 2 else ("none",)


def by_arm(values: Mapping, norms: tuple[str, ...]) -> dict:
    """``{norm: value}`` as ``{arm: value}`` (``ARMS[i] -> norms[i]``), for the norms present."""
    return {arm: values[n] for arm, n in zip(ARMS, norms, strict=False) if n in values}


def grad_norms_init_chart(base: TrainConfig, norms: tuple[str, ...],
                          grad_norms: Mapping[str, np.ndarray]) -> FigureSpec:
    """:func:`fig_grad_norms_init` of ``grad_norms = init_grad_norms_cached(base, norms)``, cached.

    Cached under ``(base, norms)`` (the gradient norms are a deterministic function of them);
    arms get the norms in order (``ARMS[i] -> norms[i]``).
    """
    arms = by_arm(grad_norms, norms)
    return _cached_figure("grad_init", (base, norms),
                          lambda: fig_grad_norms_init(arms, base.depth, base.activation))


def sweep_chart(base: TrainConfig, field: str, values: tuple[float, ...], norms: tuple[str, ...],
                result: Mapping[str, np.ndarray], *, title: str, x_title: str,
                current: float | None) -> FigureSpec:
    """:func:`fig_sweep` of ``result``, the output of ``sweep_cached(base, field, values, norms)``.

    Cached under those arguments (a sweep is a deterministic function of them); arms get the
    norms in order (``ARMS[i] -> norms[i]``).
    """
    arm_norms = dict(zip(ARMS, norms, strict=False))
    return _cached_figure(
        "sweep", (base, field, values, norms, title, x_title, current),
        lambda: fig_sweep(result, arm_norms, title=title, x_title=x_title, current=current))


# --------------------------------------------------------------------------- Streamlit glue


@st.cache_data(max_entries=8, show_spinner=False)
def sweep_cached(base: TrainConfig, field: str, values: tuple[float, ...],
                 norms: tuple[str, ...], label: str) -> dict[str, np.ndarray]:
    """:func:`bn_core.experiments.sweep` with a progress bar, cached; its runs train in
    :func:`trainer`'s worker processes (both cores), and the sweep collects them in order."""
    pool = trainer()
    cast = SWEEPABLE[field]
    # Queue every run as a prefetch: idle workers start them ahead of the sweep's loop, yet
    # another session's request is never queued behind 36 sweep runs. (A config that cannot
    # train is skipped here and reported by sweep().)
    pool.prefetch(replace(base, norm=n, **{field: cast(v)}) for n in norms for v in values)

    def from_pool(config: TrainConfig, data=None, progress=None) -> TrainResult:
        result = pool.submit(config).result()
        if progress is not None:
            progress(1.0)
        return result

    with progress_bar(label) as update, np.errstate(all="ignore"):
        return sweep(base, field, list(values), norms=norms, progress=update, train_fn=from_pool)


@st.cache_data(max_entries=1, show_spinner=False)
def n_train() -> int:
    """Number of training samples of the default digits split (the batch-size maximum)."""
    return int(digits().X_train.shape[0])


@st.cache_data(max_entries=16, show_spinner=False)
def init_grad_norms_cached(base: TrainConfig, norms: tuple[str, ...]) -> dict[str, np.ndarray]:
    """:func:`bn_core.experiments.gradient_norms_at_init`, cached (one forward/backward per norm)."""
    with np.errstate(all="ignore"):
        return gradient_norms_at_init(base, norms=norms)


def arms_of(results: Mapping[str, TrainResult]) -> dict[str, History]:
    """``arm -> history`` for the arms that trained."""
    return {arm: res.history for arm, res in results.items()}


def diverged_of(results: Mapping[str, TrainResult]) -> dict[str, int | None]:
    """``arm -> divergence step`` (None when the arm did not diverge)."""
    return {arm: res.diverged_at for arm, res in results.items()}


__all__: Sequence[str] = [
    "ARMS", "ARM_LABEL", "arm_norms", "by_arm", "finite_xy", "step_time_stats_ms", "final_value",
    "fig_training_curves", "fig_activation_percentiles", "fig_sweep", "fig_grad_norms_init",
    "fig_grad_norms_training", "fig_generalization_gap", "fig_step_time", "histories_to_frames",
    "histories_csv", "runs_key", "training_curves_chart", "activation_percentiles_chart",
    "generalization_gap_chart", "step_time_chart", "grad_norms_training_chart", "grad_norms_init_chart",
    "sweep_chart", "sweep_cached", "init_grad_norms_cached", "n_train", "arms_of",
    "diverged_of",
]


# --------------------------------------------------------------------------- "what to see" sentences
#
# Each sentence is computed from the record its chart draws, so it cannot contradict it;
# tests/test_network_figures.py runs them over real and hand-made records.


def _acc(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def first_step_reaching(history: History, key: str, level: float) -> int | None:
    """The first recorded step at which ``history[key] >= level`` (None if never)."""
    s, v = finite_xy(history.get("step", []), history.get(key, []))
    hit = np.flatnonzero(v >= level)
    return int(s[hit[0]]) if hit.size else None


def describe_outcome(results: Mapping[str, TrainResult], batch_size: int) -> dict:
    """The verdict on the training curves: who learned the digits, and a collapse when BN failed
    at a small batch.

    Returns
    -------
    dict
        ``text`` (the "what to see" sentence), ``learned`` (arm -> bool: final test accuracy
        >= :data:`LEARNED_ACC` and no divergence), ``bn_collapsed`` (BN trained but did not
        learn, at a batch size <= :data:`SMALL_BATCH`), ``delta_ok`` (True when the BN arm
        learned: only then is "+x points vs plain" shown as a gain).
    """
    acc = {a: final_value(r.history, "test_acc") for a, r in results.items()}
    div = {a: r.diverged_at for a, r in results.items()}
    learned = {a: acc[a] is not None and acc[a] >= LEARNED_ACC and div[a] is None for a in results}
    out = {"learned": learned, "bn_collapsed": False, "delta_ok": bool(learned.get("bn"))}
    if not results:
        out["text"] = "No network trained with these settings."
        return out

    def said(arm: str) -> str:
        if div[arm] is not None:
            return f"diverged at step {div[arm]}"
        return f"test accuracy {_acc(acc[arm])}"

    if "bn" not in results:
        out["text"] = (f"Only the plain network trains on a batch of one sample: {said('plain')} "
                       f"({'it learned the digits' if learned['plain'] else 'it did not learn the digits'}; "
                       f"chance is 0.1).")
        return out
    if "plain" not in results:
        out["text"] = f"Only the BN network ran: {said('bn')}."
        return out
    both = f"without BN {said('plain')}, with BN {said('bn')}"
    if learned["plain"] and learned["bn"]:
        s_p = first_step_reaching(results["plain"].history, "test_acc", LEARNED_ACC)
        s_b = first_step_reaching(results["bn"].history, "test_acc", LEARNED_ACC)
        text = f"Both networks learned the digits ({both})"
        if s_p is not None and s_b is not None and s_b != s_p:
            faster = "BN" if s_b < s_p else "the plain network"
            text += (f"; {faster} got to {LEARNED_ACC:g} first (step {min(s_b, s_p)} against "
                     f"{max(s_b, s_p)})")
        out["text"] = text + "."
    elif learned["bn"]:
        out["text"] = (f"Only the network with BN learned the digits to a test accuracy of "
                       f"{LEARNED_ACC:g} or more ({both}; chance is 0.1).")
    elif learned["plain"]:
        out["text"] = (f"Only the plain network learned the digits to a test accuracy of "
                       f"{LEARNED_ACC:g} or more ({both}).")
    else:
        out["text"] = f"Neither network learned the digits ({both}; chance is 0.1, a trained network reaches above {LEARNED_ACC:g})."
    if not learned["bn"] and div["bn"] is None and batch_size <= SMALL_BATCH:
        out["bn_collapsed"] = True
        out["text"] += (f" **Batch norm collapsed:** with batches of {batch_size} it normalizes every unit with "
                        f"the mean and variance of only {batch_size} examples, and these noisy statistics are "
                        f"not the running averages it uses in evaluation. See {CHAPTER4_LINK}.")
    return out


#: What to try after a divergence, by whether it happened before any update (step 0).
DIVERGENCE_ADVICE = {
    True: "The initial network's loss already exploded, before any update, so the learning rate played "
          "no part: try a smaller initial weight std.",
    False: "Try a smaller learning rate or initial weight std.",
}


def divergence_advice(diverged_at: int) -> str:
    """Advice that fits the divergence step (at step 0 the learning rate has not acted yet)."""
    return DIVERGENCE_ADVICE[int(diverged_at) == 0]


def describe_percentiles(histories: Mapping[str, History], layer: int) -> str:
    """How far the probed unit's band moves and how its width changes, per arm (steps > 0)."""
    parts = []
    for arm in ARMS:
        h = histories.get(arm)
        if h is None:
            continue
        pct = np.asarray(h["act_pct"], dtype=float)
        step = np.asarray(h["step"], dtype=float)
        if pct.ndim != 3 or pct.shape[0] == 0 or layer > pct.shape[1]:
            parts.append(f"{ARM_LABEL[arm]} there is no record")
            continue
        p = pct[: len(step), layer - 1, :]
        keep = (step[: len(p)] > 0) & np.all(np.isfinite(p), axis=1)
        p = p[keep]
        if len(p) < 2:
            parts.append(f"{ARM_LABEL[arm]} there are too few records after step 0")
            continue
        drift = float(np.max(p[:, 1]) - np.min(p[:, 1]))
        width = p[:, 2] - p[:, 0]
        parts.append(f"{ARM_LABEL[arm]} the median moves within a range of {drift:.3g} and the band's width "
                     f"goes from {width[0]:.3g} to {width[-1]:.3g}")
    if not parts:
        return "No run to show."
    return "From the first update on, " + "; ".join(parts) + "."


def describe_sweep(result: Mapping[str, np.ndarray], arm_norms: Mapping[str, str], what: str) -> str:
    """How many of the swept values each arm learns at (final test accuracy >= LEARNED_ACC)."""
    values = np.asarray(result["values"], dtype=float)
    parts = []
    for arm in ARMS:
        norm = arm_norms.get(arm)
        if norm is None or f"{norm}/test_acc" not in result:
            continue
        acc = np.asarray(result[f"{norm}/test_acc"], dtype=float)
        div = np.asarray(result.get(f"{norm}/diverged_at", np.full(len(values), -1)))
        good = (acc >= LEARNED_ACC) & (div < 0)
        where = (f" ({values[good].min():g} to {values[good].max():g})" if good.sum() > 1
                 else f" ({values[good][0]:g})" if good.sum() == 1 else "")
        parts.append(f"{ARM_LABEL[arm]} at {int(good.sum())} of the {len(values)} {what}s{where}")
    return f"Test accuracy of at least {LEARNED_ACC:g}: " + "; ".join(parts) + "."


def _factor(x: float) -> str:
    return f"{x:.2g}" if 0.01 <= x <= 100 else f"{x:.1e}"


def describe_grad_init(grad_norms: Mapping[str, np.ndarray]) -> str:
    """The change of the gradient norm from the output layer down to the first, per arm."""
    parts = []
    for arm in ARMS:
        g = np.asarray(grad_norms.get(arm, []), dtype=float)
        if g.size < 2:
            continue
        if not (np.isfinite(g[0]) and np.isfinite(g[-1]) and g[-1] > 0):
            parts.append(f"{ARM_LABEL[arm]} the norms are not finite")
            continue
        parts.append(f"{ARM_LABEL[arm]} by a factor of {_factor(g[0] / g[-1])}")
    if not parts:
        return "No gradient norms to show."
    return "From the output layer down to the first layer the gradient norm changes " + "; ".join(parts) + "."


def grad_spread_decades(history: History) -> float | None:
    """Median over records after step 0 of log10(max / min) of the layers' gradient norms."""
    g = np.asarray(history.get("grad_norm", []), dtype=float)
    step = np.asarray(history.get("step", []), dtype=float)
    if g.ndim != 2 or g.shape[0] == 0:
        return None
    rows = g[(step[: len(g)] > 0) & np.all(np.isfinite(g) & (g > 0), axis=1)]
    if not len(rows):
        return None
    return float(np.median(np.log10(rows.max(axis=1) / rows.min(axis=1))))


def describe_grad_training(histories: Mapping[str, History]) -> str:
    """How widely the layers' gradient norms spread during training, per arm, and which bunches them."""
    spread = {arm: grad_spread_decades(h) for arm, h in histories.items()}
    parts = [f"{ARM_LABEL[a]} {spread[a]:.2g} decades" for a in ARMS if spread.get(a) is not None]
    if not parts:
        return "No gradient norms after step 0 to compare."
    text = "During training the layers' gradient norms span (median over records, largest / smallest) " + \
        " and ".join(parts)
    a, b = spread.get("plain"), spread.get("bn")
    if a is not None and b is not None:
        if a - b >= 0.5:
            text += ": BN bunches them together"
        elif b - a >= 0.5:
            text += ": here BN spreads them more"
        else:
            text += ": both bunch about equally (within half a decade)"
    return text + "."


def _gap_at_level(history: History, level: float) -> float | None:
    """Train − test accuracy (points) at the first record whose training accuracy >= level."""
    hit = _record_at_level(history, level)
    return hit[1] if hit else None


def _record_at_level(history: History, level: float) -> tuple[float, float] | None:
    """(training accuracy, train − test gap in points) at the first record whose training
    accuracy >= level, or None."""
    tr = np.asarray(history.get("train_acc", []), dtype=float)
    te = np.asarray(history.get("test_acc", []), dtype=float)[: len(tr)]
    ok = np.flatnonzero(np.isfinite(tr) & np.isfinite(te) & (tr >= level))
    return (float(tr[ok[0]]), float(100 * (tr[ok[0]] - te[ok[0]]))) if ok.size else None


#: Below this training accuracy neither network has fitted much: no gap comparison there.
FAIR_GAP_LEVEL = 0.5


def describe_gap(histories: Mapping[str, History]) -> str:
    """The generalization gaps, compared at a training accuracy both arms reach (if any)."""
    final = {}
    best = {}
    for arm in ARMS:
        h = histories.get(arm)
        if h is None:
            continue
        tr = np.asarray(h["train_acc"], dtype=float)
        te = np.asarray(h["test_acc"], dtype=float)[: len(tr)]
        ok = np.isfinite(tr) & np.isfinite(te)
        if ok.any():
            final[arm] = float(100 * (tr[ok][-1] - te[ok][-1]))
            best[arm] = float(tr[ok].max())
    if not final:
        return "No finite accuracies to compare."
    text = "Final gap " + ", ".join(f"{ARM_LABEL[a]} {final[a]:.1f} points" for a in ARMS if a in final) + "."
    if len(best) < 2:
        return text
    level = min(best.values())
    if level < FAIR_GAP_LEVEL:
        return text + (f" The plain and BN networks share no training accuracy above {FAIR_GAP_LEVEL:g} "
                       f"(the lower one peaks at {level:.2f}), so their gaps cannot be compared fairly here.")
    hit = {a: _record_at_level(histories[a], level) for a in ARMS}
    # Each arm's gap is read at its first record at or above the level, and an arm can jump
    # past it (BN goes from 0.1 to 0.96 in one evaluation): say where each was read.
    at = ", ".join(f"{ARM_LABEL[a]} at {hit[a][0]:.2f}" for a in ARMS)
    return text + (f" Where each first reaches the highest training accuracy both reach, {level:.2f} "
                   f"(right panel; {at}), the gap is {hit['plain'][1]:.1f} points without BN and "
                   f"{hit['bn'][1]:.1f} with BN. One seed is one sample: "
                   "the sign of such a small difference can change with the seed.")


def describe_cost(stats: Mapping[str, tuple[float, float, float] | None]) -> str:
    """The measured cost of a BN step against a plain one (median times of this run)."""
    p, b = stats.get("plain"), stats.get("bn")
    if not p or not b or p[0] <= 0:
        return "Only one network trained: nothing to compare."
    return (f"Measured on this run, a step with BN took {b[0] / p[0]:.2f} times as long as a plain step "
            f"(median {b[0]:.3g} ms against {p[0]:.3g} ms).")


# --------------------------------------------------------------------------- both cores, one run per config


#: How much lower the training workers' CPU priority is than the server's (see :func:`trainer`).
TRAIN_NICE = 19


@st.cache_resource(show_spinner=False)
def trainer() -> TrainPool:
    """The process pool shared by every session (two workers: the server's two cores).

    Its runs leave out ``test_acc_batch_stats`` (the test set in training mode): this chapter
    never shows it (chapter 4 does, from its own runs), and it cost an extra pass over the
    test set at each of a run's 21 evaluations.

    The workers run at nice 19, the lowest CPU priority (``TRAIN_NICE``), requested runs
    included: the server's one event loop answers every student, and on two cores training
    competed with it as an equal. Prefetch runs that one chapter-3 visit queued were still
    training while a class moved chapter 1's slider, and slowed those moves about twofold
    (``benchmarks/bench_classroom.py``; the figures are in the README's "A class at once").
    A student's own requested run slows down while the server is busy with others.
    """
    return TrainPool(workers=int(os.environ.get("BN_LAB_TRAIN_WORKERS", "2")), test_batch_stats=False,
                     nice=TRAIN_NICE)


def lr_neighbours(config: TrainConfig) -> list[TrainConfig]:
    """``config`` at every other learning rate of the slider, nearest first (for prefetching)."""
    order = sorted((v for v in LR_OPTIONS if v != config.lr), key=lambda v: abs(math.log(v / config.lr)))
    return [replace(config, lr=v) for v in order]


#: Prefetch the slider's other learning rates only when a run is estimated cheaper than this [s].
PREFETCH_MAX_S = 1.5
#: ``BN_LAB_PREFETCH=0`` switches prefetching off (to measure on-demand training alone).
PREFETCH = os.environ.get("BN_LAB_PREFETCH", "1") != "0"


def train_arms(base: TrainConfig, placement: str, prefetch: bool = True) -> tuple[dict, dict]:
    """Train the plain and the BN arm in parallel (one per core), shared by every session.

    Returns ``(results, errors)`` keyed by arm. For a cheap run, the same settings at the
    slider's other learning rates are queued to train while the workers are idle, so a class
    exploring the learning rate finds them ready (a requested run stops them for its worker:
    :class:`bn_core.parallel.TrainPool`).
    """
    pool = trainer()
    configs = {"plain": base, "bn": replace(base, norm=placement)}
    futures, errors = {}, {}
    # the BN arm first: it takes longer (about 1.4 times the plain arm's time by default), so
    # when only one worker is free at once it should be the one that starts
    for arm in ("bn", "plain"):
        try:
            futures[arm] = pool.submit(configs[arm])
        except ValueError as exc:  # a config that cannot train: the core says why
            errors[arm] = str(exc)
    futures = {arm: futures[arm] for arm in ARMS if arm in futures}  # results in ARMS order
    if prefetch and PREFETCH and estimate_seconds(base) / 2 <= PREFETCH_MAX_S:
        # queued now, not after the wait: a worker that these runs free can go on with the
        # neighbours at once, while this page draws (they start only on an idle worker)
        pool.prefetch(c for n in lr_neighbours(base) for c in (replace(n, norm=placement), n))
    if all(f.done() for f in futures.values()):
        results = {arm: f.result() for arm, f in futures.items()}
    else:
        with st.spinner(f"Training both networks on both cores ({format_seconds(estimate_seconds(base) / 2)})…"):
            results = {arm: f.result() for arm, f in futures.items()}
    return results, errors
