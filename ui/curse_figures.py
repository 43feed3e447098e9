"""Chapter 4 (the curse of batch norm): Plotly figure builders, arrays in, figure out.

Nothing here calls Streamlit or trains anything: every builder takes one *record* (a dict of
arrays, the same one the page's ``describe_*`` caption function reads, see :mod:`ui.curse`)
and returns a styled ``go.Figure``. Non-finite values are dropped before they reach a trace
(a diverged run leaves NaN in its record), so NaN/inf never reaches a chart.

Norm keys are the core's ``TrainConfig.norm`` names: ``"none"``, ``"bn_before"`` (BatchNorm
before the activation), ``"brn"`` (Batch Renormalization), ``"ln"`` (LayerNorm), ``"gn"``
(GroupNorm). Every series is told apart by an Okabe-Ito colour *and* a dash and marker.

Records
-------
sweep (small batches, train vs inference)
    ``"batch_sizes"`` int (B,); ``"lr"`` float (B,), the learning rate each batch size used;
    ``"norms"`` tuple of norm keys; per norm ``f"{norm}/test_err"`` and
    ``f"{norm}/test_err_batch"`` float (S, B): test error [fraction] of each seed in
    evaluation mode (running statistics) and with batch statistics (the test set in
    mini-batches of the training batch size, training mode), NaN for a run that diverged;
    ``f"{norm}/diverged"`` bool (S, B).
stats (noisy batch statistics)
    ``"batch_sizes"`` int (B,); ``"means"``, ``"vars"`` float (B, K): the batch mean and the
    biased batch variance of one unit over K mini-batches per size; ``"pop_mean"``,
    ``"pop_var"`` floats; ``"mean_band_lo"``,
    ``"mean_band_hi"``, ``"var_band_lo"``, ``"var_band_hi"`` (B,): the exact central
    ``"band_level"`` (68.27 %) intervals for Gaussian data, ``pop_mean -+ sigma / sqrt(m)`` and
    ``pop_var * chi2.ppf(q, m - 1) / m`` at q = 15.87 % and 84.13 %
    (:func:`bn_core.experiments.gaussian_bands`).
running (what the running-statistics momentum does)
    ``"batch_means"`` (K,), ``"running_mean"`` (K,): the batch means a BN layer sees, one per
    step, and its running mean; ``"pop_mean"``, ``"momentum"``, ``"batch"``.
runs (class-sorted batches; online learning)
    ``"runs"``: norm -> history with ``"step"`` (n_rec,), ``"test_acc"`` (n_rec,) evaluation
    mode, optionally ``"batch_loss"`` (n_steps,) training mode; ``"errors"``: norm -> the
    message of a norm that refused to train.
renorm (Batch Renormalization)
    ``"step"`` (n,); ``"r_lo"``, ``"r_mid"``, ``"r_hi"``, ``"d_lo"``, ``"d_mid"``, ``"d_hi"``
    (n,): the smallest, median and largest r and d over the units of the first BRN layer;
    ``"r_max"``, ``"d_max"`` floats.
cost
    ``"norms"`` tuple; ``"ms"``, ``"ms_lo"``, ``"ms_hi"`` (P,): median and 25th/75th percentile
    time per training step [ms]; ``"kept_kib"`` (P,): memory kept for the backward pass [KiB].
axes (Wu & He's Figure 2)
    ``"x"`` (N, C, H, W); ``"mask"`` bool (N, C, H, W): the values that share the highlighted
    value's mean and variance; ``"method"``; ``"groups"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bn_core.experiments import BAND_LEVEL
from ui.theme import LECTURE_LAYOUT, OKABE_ITO, SEQUENTIAL, style_figure

#: The norms of this chapter, in legend order, with their house style.
NORM_STYLE = {
    "none": {"color": OKABE_ITO["vermillion"], "dash": "solid", "symbol": "circle"},
    "bn_before": {"color": OKABE_ITO["blue"], "dash": "dash", "symbol": "square"},
    "brn": {"color": OKABE_ITO["sky"], "dash": "dashdot", "symbol": "diamond"},
    "ln": {"color": OKABE_ITO["green"], "dash": "dot", "symbol": "triangle-up"},
    "gn": {"color": OKABE_ITO["orange"], "dash": "longdash", "symbol": "cross"},
}
NORM_LABEL = {
    "none": "no normalization",
    "bn_before": "BatchNorm",
    "brn": "Batch Renorm",
    "ln": "LayerNorm",
    "gn": "GroupNorm",
}
NORMS = tuple(NORM_STYLE)
NORM_SHORT = {"none": "none", "bn_before": "BN", "brn": "BRN", "ln": "LN", "gn": "GN"}

#: Wu & He (2018), Table / Figure 1: ResNet-50 on ImageNet, validation error [%] against
#: images per GPU. Published context, not measured here.
PUBLISHED = {
    "images_per_gpu": (32, 16, 8, 4, 2),
    "bn": (23.6, 23.7, 24.8, 27.3, 34.7),
    "gn": (24.1, 24.2, 24.0, 24.2, 24.1),
}
PUBLISHED_SOURCE = "Wu & He 2018, ResNet-50 on ImageNet (published)"


# --------------------------------------------------------------------------- helpers


def finite_xy(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Keep the points where both ``x`` and ``y`` are finite; arrays of shape (m,)."""
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def seed_summary(values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over the seeds (axis 0) of ``values`` (S, B), ignoring NaN.

    A column with no finite value gives NaN in all three (callers drop it). Never warns.
    """
    v = np.atleast_2d(np.asarray(values, dtype=float))
    ok = np.isfinite(v)
    count = ok.sum(axis=0)
    safe = np.where(ok, v, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, safe.sum(axis=0) / np.maximum(count, 1), np.nan)
    lo = np.where(count > 0, np.where(ok, v, np.inf).min(axis=0), np.nan)
    hi = np.where(count > 0, np.where(ok, v, -np.inf).max(axis=0), np.nan)
    return mean, lo, hi


def _line(norm: str, width: float = 2.5, **extra) -> dict:
    s = NORM_STYLE[norm]
    return {"color": s["color"], "dash": s["dash"], "width": width, **extra}


def _marker(norm: str, size: int = 9, **extra) -> dict:
    s = NORM_STYLE[norm]
    return {"color": s["color"], "symbol": s["symbol"], "size": size} | extra


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _legend_below(fig: go.Figure, y: float = -0.38, bottom: int = 120) -> go.Figure:
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": y, "xanchor": "left", "x": 0.0},
                      margin={"b": bottom})
    return fig


def _note(fig: go.Figure, text: str, x: float = 0.5, y: float = 0.5) -> None:
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=x, y=y,
                       font={"size": 14, "color": "grey"})


def _log2_ticks(values: Sequence[int]) -> dict:
    vals = [int(v) for v in values]
    return {"type": "log", "tickvals": vals, "ticktext": [str(v) for v in vals]}


# --------------------------------------------------------------------------- 1 small batches


def fig_small_batches(sweep: Mapping, current_batch: int | None = None, height: int = 420) -> go.Figure:
    """Test error [%] against batch size per norm (left), beside Wu & He's published numbers.

    Left: the mean over seeds as a line, the seeds' range (min to max) as a shaded band and
    each seed as a small marker, on a log batch-size axis. Right: the published ResNet-50
    ImageNet validation errors (Wu & He 2018) for BN and GN, labelled as published context.
    A vertical line marks ``current_batch``.
    """
    fig = make_subplots(rows=1, cols=2, column_widths=[0.66, 0.34], horizontal_spacing=0.09,
                        subplot_titles=("measured here: MLP on 8×8 digits",
                                        "published: Wu & He 2018"))
    sizes = np.asarray(sweep.get("batch_sizes", []), dtype=float)
    n_seeds = 0
    for norm in sweep.get("norms", ()):
        key = f"{norm}/test_err"
        if key not in sweep or norm not in NORM_STYLE:
            continue
        err = 100.0 * np.atleast_2d(np.asarray(sweep[key], dtype=float))
        n_seeds = max(n_seeds, err.shape[0])
        mean, lo, hi = seed_summary(err)
        xb, lo_f = finite_xy(sizes, lo)
        _, hi_f = finite_xy(sizes, hi)
        colour = NORM_STYLE[norm]["color"]
        if len(xb) >= 1 and err.shape[0] > 1:
            fig.add_trace(go.Scatter(x=np.concatenate([xb, xb[::-1]]), y=np.concatenate([hi_f, lo_f[::-1]]),
                                     fill="toself", fillcolor=_rgba(colour, 0.15), line={"width": 0},
                                     hoverinfo="skip", legendgroup=norm, showlegend=False,
                                     name=f"{NORM_LABEL[norm]}: range over seeds"), row=1, col=1)
        x, y = finite_xy(sizes, mean)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=NORM_LABEL[norm], legendgroup=norm,
                                 line=_line(norm), marker=_marker(norm),
                                 hovertemplate="batch %{x}: %{y:.1f} % (mean over seeds)<extra>"
                                               + NORM_LABEL[norm] + "</extra>"), row=1, col=1)
        xs = np.tile(sizes, (err.shape[0], 1))
        px, py = finite_xy(xs, err)
        if err.shape[0] > 1 and len(px):
            fig.add_trace(go.Scatter(x=px, y=py, mode="markers", legendgroup=norm, showlegend=False,
                                     name=f"{NORM_LABEL[norm]}: one seed",
                                     marker=_marker(norm, size=5, opacity=0.55),
                                     hovertemplate="batch %{x}: %{y:.1f} % (one seed)<extra></extra>"),
                          row=1, col=1)
        div = np.atleast_2d(np.asarray(sweep.get(f"{norm}/diverged", np.zeros_like(err, dtype=bool)), dtype=bool))
        if div.shape == err.shape and div.any():
            dx, dy = finite_xy(xs[div], err[div])
            fig.add_trace(go.Scatter(x=dx, y=dy, mode="markers", legendgroup=norm, name=f"{NORM_LABEL[norm]}: diverged",
                                     marker={"symbol": "x", "size": 13, "color": colour},
                                     hovertemplate="batch %{x}: diverged; last error %{y:.1f} %<extra></extra>"),
                          row=1, col=1)
    pub_x = np.asarray(PUBLISHED["images_per_gpu"], dtype=float)
    for norm, key in (("bn_before", "bn"), ("gn", "gn")):
        fig.add_trace(go.Scatter(x=pub_x, y=np.asarray(PUBLISHED[key], dtype=float), mode="lines+markers",
                                 name=f"{NORM_LABEL[norm]}, published",
                                 line=_line(norm, width=2),
                                 marker=_marker(norm, size=9, symbol=NORM_STYLE[norm]["symbol"] + "-open",
                                                line={"width": 2}),
                                 hovertemplate="%{x} images per GPU: %{y:.1f} %<extra>" + NORM_LABEL[norm]
                                               + ", Wu & He 2018</extra>"), row=1, col=2)
    if current_batch is not None and np.isfinite(current_batch):
        fig.add_vline(x=float(current_batch), line={"color": "grey", "dash": "dot", "width": 1.5},
                      row=1, col=1)
    seeds_txt = f"mean of {n_seeds} seeds, band = range" if n_seeds > 1 else "one seed"
    style_figure(fig, f"Test error vs batch size (evaluation mode; {seeds_txt})", "", "", height=height)
    if len(sizes):
        fig.update_xaxes(title_text="batch size [samples], log scale", row=1, col=1, **_log2_ticks(sizes))
    fig.update_xaxes(title_text="ImageNet: images per GPU", row=1, col=2, **_log2_ticks(pub_x))
    fig.update_yaxes(title_text="test error [%]", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="ResNet-50 error [%]", row=1, col=2)
    # the legend below the axis titles; its distance is a fraction of the plot height, which
    # shrinks when lecture mode's larger legend pushes the bottom margin out
    fig.update_layout(margin={"t": 70, "b": 115},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.4, "xanchor": "left", "x": 0.0})
    if not any(t.xaxis in (None, "x") for t in fig.data):
        _note(fig, "training the first batch size…", x=0.3)
    return fig


def fig_lr_used(sweep: Mapping) -> go.Figure:
    """The learning rate each batch size trained with (log-log), and updates per epoch."""
    sizes = np.asarray(sweep.get("batch_sizes", []), dtype=float)
    lr = np.asarray(sweep.get("lr", []), dtype=float)
    fig = go.Figure()
    x, y = finite_xy(sizes, lr)
    keep = y > 0
    fig.add_trace(go.Scatter(x=x[keep], y=y[keep], mode="lines+markers", name="learning rate used",
                             line={"color": OKABE_ITO["purple"], "width": 2.5, "dash": "solid"},
                             marker={"color": OKABE_ITO["purple"], "symbol": "circle", "size": 9}))
    style_figure(fig, "Learning rate per batch size in the sweep", "batch size [samples], log scale",
                 "learning rate [per update], log scale", height=300)
    if len(sizes):
        fig.update_xaxes(**_log2_ticks(sizes))
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_layout(showlegend=True)
    return fig


# --------------------------------------------------------------------------- 2 noisy statistics


def fig_batch_stats(stats: Mapping, current_batch: int | None = None, height: int = 480) -> go.Figure:
    """The batch mean (left) and batch variance (right) of one unit over many mini-batches.

    Per batch size a box of the K sampled values; the population value as a line; as dashed
    lines the closed-form central 68.27 % interval for Gaussian data: ``pop_mean ± sigma /
    sqrt(m)`` for the mean, and for the biased variance (``m * var_B / pop_var ~ chi2(m - 1)``)
    the chi-square quantiles ``pop_var * chi2.ppf(q, m - 1) / m`` at q = 15.87 % and 84.13 %,
    which are positive for every m >= 2 and not symmetric about the expected value.
    """
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("batch mean of x", "batch variance of x (biased)"))
    sizes = np.asarray(stats.get("batch_sizes", []), dtype=int)
    labels = [str(int(m)) for m in sizes]
    box_colour = OKABE_ITO["blue"]
    level = float(stats.get("band_level", BAND_LEVEL))
    for col, key, pop_key, band in ((1, "means", "pop_mean", "mean"), (2, "vars", "pop_var", "var")):
        values = np.asarray(stats.get(key, np.zeros((0, 0))), dtype=float)
        for i, m in enumerate(labels):
            if i >= values.shape[0]:
                break
            v = values[i][np.isfinite(values[i])]
            if not v.size:
                continue
            # quartiles and the central 95 % precomputed: 7 numbers per box instead of K values
            lo, q1, med, q3, hi = np.percentile(v, [2.5, 25, 50, 75, 97.5])
            fig.add_trace(go.Box(x=[m], q1=[q1], median=[med], q3=[q3], lowerfence=[lo], upperfence=[hi],
                                 name=f"{v.size} mini-batches (box: quartiles, whiskers: 95 %)",
                                 legendgroup=key, showlegend=i == 0 and col == 1,
                                 marker={"color": box_colour, "size": 3, "symbol": "circle"},
                                 line={"color": box_colour, "width": 1.5}, boxpoints=False), row=1, col=col)
        pop = float(stats.get(pop_key, np.nan))
        if np.isfinite(pop) and labels:
            fig.add_trace(go.Scatter(x=labels, y=[pop] * len(labels), mode="lines",
                                     name="population value", legendgroup="pop",
                                     showlegend=col == 1,
                                     line={"color": OKABE_ITO["black"], "width": 2, "dash": "solid"}),
                          row=1, col=col)
            for end in ("hi", "lo"):
                y = np.asarray(stats.get(f"{band}_band_{end}", []), dtype=float)[: len(labels)]
                ok = np.isfinite(y)
                fig.add_trace(go.Scatter(x=[labels[j] for j in range(len(y)) if ok[j]], y=y[ok],
                                         mode="lines+markers",
                                         name=f"closed form for Gaussian data: central {100 * level:.0f} %",
                                         legendgroup="band", showlegend=col == 1 and end == "hi",
                                         line={"color": OKABE_ITO["vermillion"], "width": 2, "dash": "dash"},
                                         marker={"color": OKABE_ITO["vermillion"], "symbol": "diamond", "size": 7}),
                              row=1, col=col)
    if current_batch is not None and str(int(current_batch)) in labels:
        for col in (1, 2):
            fig.add_vline(x=labels.index(str(int(current_batch))), line={"color": "grey", "dash": "dot"},
                          row=1, col=col)
    layer, unit = stats.get("layer", 1), stats.get("unit", 0)
    style_figure(fig, f"Batch mean and variance of one real unit x (layer {layer}, unit {unit})",
                 "", "", height=height)
    fig.update_xaxes(title_text="batch size m [samples]", type="category")
    fig.update_yaxes(title_text="μ_B [units of x]", row=1, col=1)
    fig.update_yaxes(title_text="σ²_B [units of x, squared]", row=1, col=2)
    fig.update_layout(boxmode="overlay")
    _legend_below(fig, bottom=125)
    return fig


# --------------------------------------------------------------------------- 3 training vs inference


def fig_train_vs_inference(sweep: Mapping, momentum: Mapping | None, norms: Sequence[str] = ("bn_before", "brn"),
                           height: int = 480, current_batch: int | None = None) -> go.Figure:
    """Left: test accuracy with running statistics (evaluation mode) and with batch statistics
    per batch size (mean over seeds). Right: BatchNorm's evaluation-mode test accuracy over
    training for each running-statistics momentum at one batch size.

    ``momentum`` record: ``"momenta"`` (M,), ``"step"`` (n,), ``"test_acc"`` and
    ``"test_acc_batch"`` (M, n) (mean over seeds), ``"batch"``.
    """
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, column_widths=[0.55, 0.45],
                        subplot_titles=("running vs batch statistics",
                                        "BN: running-statistics momentum"))
    style_figure(fig, "Training vs inference: which statistics BN uses", "", "", height=height)
    sizes = np.asarray(sweep.get("batch_sizes", []), dtype=float)
    for norm in norms:
        for key, suffix, open_marker in (("test_err", "running statistics", False),
                                         ("test_err_batch", "batch statistics", True)):
            k = f"{norm}/{key}"
            if k not in sweep:
                continue
            mean, _, _ = seed_summary(100.0 * (1.0 - np.asarray(sweep[k], dtype=float)))
            x, y = finite_xy(sizes, mean)
            line = _line(norm, width=1.5 if open_marker else 2.5)
            marker = _marker(norm, size=8)
            if open_marker:
                line["dash"] = "dot"
                marker["symbol"] = NORM_STYLE[norm]["symbol"] + "-open"
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=f"{NORM_LABEL[norm]}, {suffix}",
                                     line=line, marker=marker, legendgroup=f"{norm}{key}"), row=1, col=1)
    if len(sizes):
        fig.update_xaxes(title_text="batch size [samples], log scale", row=1, col=1, **_log2_ticks(sizes))
    fig.update_yaxes(title_text="test accuracy [%]", row=1, col=1)
    if current_batch is not None and np.isfinite(current_batch):
        fig.add_vline(x=float(current_batch), line={"color": "grey", "dash": "dot", "width": 1.5}, row=1, col=1)
    if momentum:
        step = np.asarray(momentum.get("step", []), dtype=float)
        acc = np.atleast_2d(np.asarray(momentum.get("test_acc", []), dtype=float))
        mom = np.asarray(momentum.get("momenta", []), dtype=float)
        dashes, symbols = ("dot", "dashdot", "solid"), ("circle", "triangle-up", "x")
        colours = (OKABE_ITO["purple"], OKABE_ITO["black"], OKABE_ITO["green"])
        for i, m in enumerate(mom):
            if i >= acc.shape[0]:
                break
            x, y = finite_xy(step, 100.0 * acc[i])
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=f"BN, momentum {m:g}",
                                     line={"color": colours[i % 3], "dash": dashes[i % 3], "width": 2.2},
                                     marker={"color": colours[i % 3], "symbol": symbols[i % 3], "size": 6}),
                          row=1, col=2)
        fig.update_xaxes(title_text=f"step [updates], batch {momentum.get('batch')}", row=1, col=2)
        fig.update_yaxes(title_text="test accuracy [%]", row=1, col=2)
    _legend_below(fig, bottom=150)
    return fig


def fig_orders(shuffled: Mapping, sorted_: Mapping, height: int = 360) -> go.Figure:
    """Final test accuracy (evaluation mode) per norm: shuffled vs class-sorted batches."""
    fig = go.Figure()
    for rec, name, pattern, colour in ((shuffled, "shuffled batches", "", OKABE_ITO["blue"]),
                                       (sorted_, "class-sorted batches", "/", OKABE_ITO["vermillion"])):
        runs = rec.get("runs", {})
        xs = [NORM_LABEL[n] for n in NORMS if n in runs and np.isfinite(runs[n].get("final_acc", np.nan))]
        ys = [100.0 * runs[n]["final_acc"] for n in NORMS if n in runs and np.isfinite(runs[n].get("final_acc", np.nan))]
        fig.add_trace(go.Bar(x=xs, y=ys, name=name, marker={"color": colour, "pattern": {"shape": pattern}},
                             hovertemplate="%{x}: %{y:.1f} %<extra>" + name + "</extra>"))
    style_figure(fig, "Shuffled vs class-sorted batches: final test accuracy",
                 "normalization", "test accuracy [%]", height=height)
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 102])
    return fig


# --------------------------------------------------------------------------- 4/5 runs over training


def fig_runs(record: Mapping, *, title: str, x_key: str = "step", x_title: str = "step [updates]",
             loss: bool = True, height: int = 460) -> go.Figure:
    """Per norm: the training-mode mini-batch loss (left, if ``loss``) and the evaluation-mode
    test accuracy (right) over training. Norms that refused to train are named in a note."""
    runs = record.get("runs", {})
    if loss:
        fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                            subplot_titles=("mini-batch loss (training mode)",
                                            "test accuracy (evaluation mode)"))
    else:
        fig = make_subplots(rows=1, cols=1)
    acc_col = 2 if loss else 1
    for norm in NORMS:
        h = runs.get(norm)
        if h is None:
            continue
        if loss and "batch_loss" in h:
            bl = np.asarray(h["batch_loss"], dtype=float)
            sm = smooth(bl)
            x, y = finite_xy(np.arange(1, len(sm) + 1), sm)
            keep = y > 0
            fig.add_trace(go.Scatter(x=x[keep], y=y[keep], mode="lines", name=NORM_LABEL[norm], legendgroup=norm,
                                     showlegend=False, line=_line(norm, width=2)), row=1, col=1)
        x, y = finite_xy(h.get(x_key, []), 100.0 * np.asarray(h.get("test_acc", []), dtype=float))
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=NORM_LABEL[norm], legendgroup=norm,
                                 line=_line(norm), marker=_marker(norm, size=6)), row=1, col=acc_col)
    style_figure(fig, title, "", "", height=height)
    if loss:
        fig.update_xaxes(title_text="step [updates]", row=1, col=1)
        ticks = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]
        fig.update_yaxes(title_text="loss [nats], log scale", type="log", tickvals=ticks,
                         ticktext=[f"{t:g}" for t in ticks], row=1, col=1)
    fig.update_xaxes(title_text=x_title, row=1, col=acc_col)
    fig.update_yaxes(title_text="test accuracy [%]", range=[0, 102], row=1, col=acc_col)
    refused = [NORM_LABEL.get(n, n) for n in record.get("errors", {})]
    if refused:
        _note(fig, "cannot train: " + ", ".join(refused), x=0.97 if loss else 0.5, y=0.06)
        fig.layout.annotations[-1].update(xanchor="right" if loss else "center")
    if not fig.data:
        _note(fig, "no run to show")
    _legend_below(fig, bottom=125)
    return fig


def smooth(values, window: int = 25) -> np.ndarray:
    """A trailing moving average over ``window`` points (shorter at the start), finite-safe.

    Non-finite entries are skipped; a point with no finite value in its window is NaN.
    """
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    c = np.concatenate([[0.0], np.cumsum(np.where(ok, v, 0.0))])
    n = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    count = n[idx] - n[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (c[idx] - c[lo]) / np.maximum(count, 1), np.nan)


# --------------------------------------------------------------------------- 6 batch renorm


def fig_renorm(renorm: Mapping, height: int = 460) -> go.Figure:
    """r (left) and d (right) over training: median and the range over the first layer's units,
    with the clipping limits [1/r_max, r_max] and [-d_max, d_max] as dashed lines."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("r = σ_B / σ (clipped)", "d = (μ_B − μ) / σ (clipped)"))
    step = np.asarray(renorm.get("step", []), dtype=float)
    colour = NORM_STYLE["brn"]["color"]
    for col, name in ((1, "r"), (2, "d")):
        lo, mid, hi = (np.asarray(renorm.get(f"{name}_{q}", []), dtype=float) for q in ("lo", "mid", "hi"))
        xl, yl = finite_xy(step, lo)
        xh, yh = finite_xy(step, hi)
        if len(xl) and len(xl) == len(xh):
            fig.add_trace(go.Scatter(x=np.concatenate([xl, xl[::-1]]), y=np.concatenate([yh, yl[::-1]]),
                                     fill="toself", fillcolor=_rgba(colour, 0.25), line={"width": 0},
                                     name="range over layer 1's units", legendgroup="range",
                                     showlegend=col == 1, hoverinfo="skip"), row=1, col=col)
        x, y = finite_xy(step, mid)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="median over the units", legendgroup="mid",
                                 showlegend=col == 1, line=_line("brn", width=2.5)), row=1, col=col)
    r_max, d_max = float(renorm.get("r_max", np.nan)), float(renorm.get("d_max", np.nan))
    if len(step):
        span = [float(step.min()), float(step.max())]
        limits = [(1, r_max, "r_max"), (1, 1.0 / r_max if r_max > 0 else np.nan, "1 / r_max"),
                  (2, d_max, "d_max"), (2, -d_max, "−d_max")]
        shown = False
        for col, v, _ in limits:
            if np.isfinite(v):
                fig.add_trace(go.Scatter(x=span, y=[v, v], mode="lines", name="clipping limits",
                                         legendgroup="lim", showlegend=not shown,
                                         line={"color": OKABE_ITO["black"], "dash": "dash", "width": 1.5}),
                              row=1, col=col)
                shown = True
    style_figure(fig, f"Batch Renorm's corrections over training (r_max = {r_max:g}, d_max = {d_max:g})",
                 "", "", height=height)
    fig.update_xaxes(title_text="step [updates]")
    fig.update_yaxes(title_text="r [ratio]", row=1, col=1)
    fig.update_yaxes(title_text="d [running std]", row=1, col=2)
    if not fig.data:
        _note(fig, "no Batch Renorm run to show")
    _legend_below(fig, bottom=125)
    return fig


# --------------------------------------------------------------------------- 7 cost


def fig_cost(cost: Mapping, height: int = 440) -> go.Figure:
    """Median measured time per training step (whiskers 25th-75th percentile) and the memory
    each network keeps for its backward pass, one bar per norm."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("time per step",
                                        "kept for the backward pass"))
    norms = list(cost.get("norms", ()))
    ms, lo, hi = (np.asarray(cost.get(k, []), dtype=float) for k in ("ms", "ms_lo", "ms_hi"))
    kib = np.asarray(cost.get("kept_kib", []), dtype=float)
    patterns = {"none": "", "bn_before": "/", "brn": "x", "ln": ".", "gn": "\\"}
    for i, norm in enumerate(norms):
        if norm not in NORM_STYLE:
            continue
        style = {"color": NORM_STYLE[norm]["color"], "pattern": {"shape": patterns[norm]}}
        if i < len(ms) and np.isfinite(ms[i]):
            err = None
            if i < len(lo) and i < len(hi) and np.isfinite(lo[i]) and np.isfinite(hi[i]):
                err = {"type": "data", "symmetric": False, "array": [max(hi[i] - ms[i], 0.0)],
                       "arrayminus": [max(ms[i] - lo[i], 0.0)]}
            fig.add_trace(go.Bar(x=[NORM_SHORT[norm]], y=[ms[i]], name=NORM_LABEL[norm], legendgroup=norm,
                                 marker=style, error_y=err,
                                 hovertemplate=f"{ms[i]:.3g} ms<extra>{NORM_LABEL[norm]}</extra>"), row=1, col=1)
        if i < len(kib) and np.isfinite(kib[i]):
            fig.add_trace(go.Bar(x=[NORM_SHORT[norm]], y=[kib[i]], name=NORM_LABEL[norm], legendgroup=norm,
                                 showlegend=False, marker=style,
                                 hovertemplate=f"{kib[i]:.1f} KiB<extra>{NORM_LABEL[norm]}</extra>"), row=1, col=2)
    w, b = cost.get("width"), cost.get("batch")
    where = f" (width {w}, batch {b})" if w is not None and b is not None else ""
    style_figure(fig, "Cost per norm, measured here" + where, "", "", height=height)
    fig.update_yaxes(title_text="time per step [ms]", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="memory [KiB]", rangemode="tozero", row=1, col=2)
    fig.update_xaxes(title_text="normalization", tickangle=0)
    if not fig.data:
        _note(fig, "no timing to show")
    _legend_below(fig, y=-0.4, bottom=130)
    return fig


# --------------------------------------------------------------------------- 8 axes


def tile_image(x: np.ndarray, pad: int = 1) -> tuple[np.ndarray, int, int]:
    """Lay an (N, C, H, W) tensor out as one image: sample n in tile row n, channel c in tile
    column c, ``pad`` pixels between tiles (filled with the tensor's mean, never NaN).

    Returns ``(image, tile_h, tile_w)`` with ``image`` of shape (N (H + pad) - pad, C (W + pad) - pad).
    """
    x = np.asarray(x, dtype=float)
    n, c, h, w = x.shape
    fill = float(np.mean(x)) if x.size and np.all(np.isfinite(x)) else 0.0
    img = np.full((n * (h + pad) - pad, c * (w + pad) - pad), fill)
    for i in range(n):
        for j in range(c):
            img[i * (h + pad): i * (h + pad) + h, j * (w + pad): j * (w + pad) + w] = x[i, j]
    return img, h + pad, w + pad


def fig_axes(axes: Mapping, height: int = 490) -> go.Figure:
    """Wu & He (2018) Fig. 2 on a real tensor: an N x C grid of H x W activation maps.

    The tiles whose values share the highlighted value's mean and variance keep their colour
    and get an outline; every other tile is greyed out. Within a tile, the outlined pixels
    are the set (for every method here a set is made of whole H x W maps).
    """
    x = np.asarray(axes["x"], dtype=float)
    mask = np.asarray(axes["mask"], dtype=bool)
    n, c, h, w = x.shape
    img, th, tw = tile_image(np.where(np.isfinite(x), x, 0.0))
    fig = go.Figure()
    fig.add_trace(go.Heatmap(z=img, colorscale=SEQUENTIAL, showscale=True, name="activation value",
                             colorbar={"title": {"text": "value"}, "len": 0.8},
                             hovertemplate="value %{z:.3g}<extra></extra>"))
    tile_in = mask.reshape(n, c, -1).any(axis=2)
    shapes = []
    for i in range(n):
        for j in range(c):
            x0, y0 = j * tw - 0.5, i * th - 0.5
            box = {"type": "rect", "xref": "x", "yref": "y", "x0": x0, "x1": x0 + w, "y0": y0, "y1": y0 + h}
            if tile_in[i, j]:
                shapes.append({**box, "line": {"color": OKABE_ITO["vermillion"], "width": 3}})
            else:
                shapes.append({**box, "line": {"width": 0}, "fillcolor": "rgba(255,255,255,0.78)"})
    # a legend entry for the outline (an empty-looking but finite marker trace)
    fig.add_trace(go.Scatter(x=[-10.0], y=[-10.0], mode="markers", name="share one mean and variance",
                             marker={"symbol": "square-open", "size": 14, "color": OKABE_ITO["vermillion"],
                                     "line": {"width": 3}}, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[-10.0], y=[-10.0], mode="markers", name="other sets (greyed)",
                             marker={"symbol": "square", "size": 14, "color": "#dddddd"}, hoverinfo="skip"))
    method, groups = axes.get("method", ""), axes.get("groups")
    names = [str(v) for v in axes.get("filter_names", ())]
    label = {"batch": "BatchNorm", "layer": "LayerNorm", "instance": "InstanceNorm",
             "group": f"GroupNorm (G = {groups})"}.get(method, str(method))
    style_figure(fig, f"{label}: which values share one mean and variance",
                 f"channel C ({c} filters, each an {h}×{w} map) →", f"sample N ({n} digits) →", height=height)
    # white gutters between the tiles (the padding pixels hold the tensor's mean, not a gap)
    for i in range(1, n):
        shapes.append({"type": "rect", "xref": "x", "yref": "y", "x0": -0.5, "x1": img.shape[1] - 0.5,
                       "y0": i * th - 1.5, "y1": i * th - 0.5, "line": {"width": 0}, "fillcolor": "white"})
    for j in range(1, c):
        shapes.append({"type": "rect", "xref": "x", "yref": "y", "x0": j * tw - 1.5, "x1": j * tw - 0.5,
                       "y0": -0.5, "y1": img.shape[0] - 0.5, "line": {"width": 0}, "fillcolor": "white"})
    fig.update_layout(shapes=shapes)
    fig.update_xaxes(range=[-0.7, img.shape[1] - 0.3], tickvals=[j * tw + (w - 1) / 2 for j in range(c)],
                     ticktext=[f"c{j}" + (f"<br>{names[j]}" if j < len(names) else "") for j in range(c)],
                     showgrid=False, zeroline=False)
    fig.update_yaxes(range=[img.shape[0] - 0.3, -0.7], tickvals=[i * th + (h - 1) / 2 for i in range(n)],
                     ticktext=[f"n{i}" for i in range(n)], showgrid=False, zeroline=False)
    # below the two-line channel labels and the axis title (at -0.12 it sat on the axis title and
    # cut the labels' second line): about 90 px under a 270 px plot, 160 px of margin for it
    _legend_below(fig, y=-0.34, bottom=160)
    # Lecture mode (21 px): one word per line, level, so six labels fit under six ~115 px columns
    # (Plotly turned the two-line labels on their side, into the axis title); more room below.
    words = [f"c{j}" + ("".join(f"<br>{w}" for w in names[j].split()) if j < len(names) else "") for j in range(c)]
    fig.update_layout(meta={LECTURE_LAYOUT: {"xaxis": {"ticktext": words, "tickangle": 0}, "legend": {"y": -0.5},
                                             "margin": {"b": 200}, "height": height + 40}})
    return fig


__all__ = [
    "NORMS", "NORM_LABEL", "NORM_STYLE", "PUBLISHED", "PUBLISHED_SOURCE", "fig_axes", "fig_batch_stats",
    "fig_cost", "fig_lr_used", "fig_orders", "fig_renorm", "fig_runs", "fig_small_batches", "fig_train_vs_inference",
    "finite_xy", "seed_summary", "smooth", "tile_image",
]
