"""Plotly figures of chapter 5 (normalization in sequence models): records in, ``go.Figure`` out.

No Streamlit here. Every builder takes one record (a :class:`Comparison`, a variable-length
run or a sweep) and draws it in the house style (:func:`ui.theme.style_figure`, Okabe-Ito
colours with a dash and a marker per normalization, :data:`NORM_STYLE`). Non-finite numbers
never reach a chart: every series goes through :func:`finite_xy`; a run that diverged ends at its
last finite record with an ``x`` marker, and a norm that could not train (batch norm on a batch
of one) is named in a note on the panel instead of a line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bn_core.recurrent import RNNConfig, RNNResult
from ui.theme import CYCLE, LECTURE_LAYOUT, OKABE_ITO, style_figure

NORM_ORDER = ("none", "bn", "ln")
NORM_LABEL = {"none": "no normalization", "bn": "BN per time step", "ln": "LayerNorm"}
NORM_STYLE = {
    "none": {"color": OKABE_ITO["vermillion"], "dash": "solid", "symbol": "circle"},
    "bn": {"color": OKABE_ITO["blue"], "dash": "dash", "symbol": "square"},
    "ln": {"color": OKABE_ITO["green"], "dash": "dashdot", "symbol": "diamond"},
}
POLICY_LABEL = {
    "last": "reuse step T's statistics",
    "fresh": "fresh statistics (mean 0, variance 1)",
    "batch": "the test batch's own statistics",
}
GREY = "#777777"


@dataclass
class Comparison:
    """The page's main record: the two experiments for the three norms.

    Attributes
    ----------
    digits, length : dict norm -> RNNResult
        Runs on sequential digits and on the length task (norms that could not train absent).
    errors : dict norm -> str
        Why a norm could not train (the core's message), for both experiments.
    train_length : int
        ``T`` of the length task (tested on 1 .. 3T).
    policy : str
        Batch norm's evaluation policy beyond ``T``.
    optimal : ndarray of shape (3T,)
        Accuracy of the Bayes rule at each test length (Monte Carlo).
    """

    digits: dict[str, RNNResult]
    length: dict[str, RNNResult]
    errors: dict[str, str]
    train_length: int
    policy: str
    optimal: np.ndarray = field(default_factory=lambda: np.zeros(0))


def finite_xy(x, y) -> tuple[np.ndarray, np.ndarray]:
    """The points where both ``x`` and ``y`` are finite (arrays cut to the shorter length)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = min(len(x), len(y))
    keep = np.isfinite(x[:n]) & np.isfinite(y[:n])
    return x[:n][keep], y[:n][keep]


def _line(norm: str, width: float = 3.0) -> dict:
    s = NORM_STYLE[norm]
    return {"color": s["color"], "dash": s["dash"], "width": width}


def _marker(norm: str, size: int = 7) -> dict:
    s = NORM_STYLE[norm]
    return {"color": s["color"], "symbol": s["symbol"], "size": size}


def _note(fig: go.Figure, text: str, x: float, y: float, xref: str = "paper", yref: str = "paper",
          size: int = 13) -> None:
    fig.add_annotation(text=text, x=x, y=y, xref=xref, yref=yref, showarrow=False,
                       font={"size": size, "color": OKABE_ITO["black"]}, align="left",
                       bgcolor="rgba(255,255,255,0.8)")


def _readable(fig: go.Figure) -> go.Figure:
    """Axis text readable from the back row; subplot titles bold enough."""
    fig.update_xaxes(title_font={"size": 15}, tickfont={"size": 13}, showgrid=True)
    fig.update_yaxes(title_font={"size": 15}, tickfont={"size": 13}, showgrid=True)
    for ann in fig.layout.annotations:
        if ann.font is None or ann.font.size is None:
            ann.font = {"size": 15}
    return fig


# --------------------------------------------------------------------------- two panels

#: The gap between two side-by-side panels, as a fraction of the figure's width: as drawn, and
#: in lecture mode, where the right panel's enlarged y-axis title ran into the left panel's
#: tick labels and the two panel titles touched (1280 x 720, ``?lecture=1``).
PANEL_GAP, LECTURE_PANEL_GAP = 0.09, 0.16


def _two_panels(left: str, right: str) -> go.Figure:
    return make_subplots(rows=1, cols=2, horizontal_spacing=PANEL_GAP, subplot_titles=(left, right))


def _lecture_gap(fig: go.Figure) -> go.Figure:
    """Give a two-panel figure the wider :data:`LECTURE_PANEL_GAP` in lecture mode.

    Call last: the lecture layout carries the panels' domains and the whole annotation list
    with the panel titles moved to the new panel centres (a list is replaced, not merged).
    """
    w = (1 - LECTURE_PANEL_GAP) / 2
    old = {round((1 - PANEL_GAP) / 4, 6): w / 2, round(1 - (1 - PANEL_GAP) / 4, 6): 1 - w / 2}
    annotations = [a.to_plotly_json() for a in fig.layout.annotations]
    for a in annotations:  # the panel titles: paper-positioned at the old panel centres
        if a.get("xref") == "paper" and round(a.get("x", -1), 6) in old:
            a["x"] = old[round(a["x"], 6)]
    fig.update_layout(meta={**(fig.layout.meta or {}), LECTURE_LAYOUT: {
        "xaxis": {"domain": [0.0, w]}, "xaxis2": {"domain": [1 - w, 1.0]}, "annotations": annotations}})
    return fig


# --------------------------------------------------------------------------- main chart


def fig_comparison(cmp: Comparison, height: int = 400) -> go.Figure:
    """Left: sequential-digits test accuracy vs step. Right: accuracy vs test length (1..3T)."""
    T = cmp.train_length
    fig = _two_panels("Sequential digits (T = 8 rows), while training", f"Loudest channel, trained on length T = {T}")
    for norm in NORM_ORDER:
        res = cmp.digits.get(norm)
        if res is not None:
            x, y = finite_xy(res.history["step"], res.history["test_acc"])
            if len(x):
                fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=NORM_LABEL[norm],
                                     legendgroup=norm, line=_line(norm), marker=_marker(norm, 6)),
                          row=1, col=1)
            if res.diverged_at is not None and len(x):
                fig.add_trace(go.Scatter(x=[x[-1]], y=[y[-1]], mode="markers", showlegend=False,
                                         name=f"{NORM_LABEL[norm]} diverged at step {res.diverged_at}",
                                         marker={"symbol": "x", "size": 14, "color": NORM_STYLE[norm]["color"]}),
                              row=1, col=1)
        res = cmp.length.get(norm)
        if res is not None:
            x, y = finite_xy(res.history["length"], res.history["acc_by_length"])
            if len(x):
                fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=NORM_LABEL[norm],
                                     legendgroup=norm, showlegend=norm not in cmp.digits,
                                     line=_line(norm), marker=_marker(norm, 5)), row=1, col=2)
    if len(cmp.optimal):
        L = np.arange(1, len(cmp.optimal) + 1)
        fig.add_trace(go.Scatter(x=L, y=cmp.optimal, mode="lines", name="best possible (Bayes rule)",
                                 line={"color": GREY, "dash": "dot", "width": 2}), row=1, col=2)
    fig.add_vrect(x0=T + 0.5, x1=3 * T + 0.5, fillcolor=OKABE_ITO["sky"], opacity=0.12,
                  line_width=0, row=1, col=2)
    fig.add_vline(x=T + 0.5, line={"color": GREY, "dash": "dot", "width": 1.5}, row=1, col=2)
    fig.add_annotation(text=" longer than in training →", x=T + 0.5, y=0.03, xref="x2", yref="y2",
                       xanchor="left", yanchor="bottom", showarrow=False, font={"size": 12, "color": GREY})
    for n in NORM_ORDER:  # a norm that could not train is named in the legend, not drawn
        if n in cmp.errors:
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"{NORM_LABEL[n]}: cannot train on this batch",
                                     line={"color": NORM_STYLE[n]["color"], "dash": "dot", "width": 1}))
    style_figure(fig, "Test accuracy in evaluation mode (same seed and initial weights for all)",
                 "", "", height=height)
    fig.update_xaxes(title_text="training step (parameter updates)", row=1, col=1)
    fig.update_xaxes(title_text="test sequence length (time steps)", row=1, col=2,
                     range=[0.5, 3 * T + 0.5])
    fig.update_yaxes(title_text="test accuracy (fraction)", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="test accuracy (fraction)", range=[0, 1.02], row=1, col=2)
    fig.update_layout(legend={"y": -0.3}, margin={"t": 70, "b": 115})
    return _lecture_gap(_readable(fig))


# --------------------------------------------------------------------------- unrolled diagram


def unrolled_columns(T: int, max_cols: int = 12) -> list[int]:
    """The 1-based steps drawn in the diagram (``0`` = an ellipsis column) for a test of 3T."""
    total = 3 * T
    if total <= max_cols:
        return list(range(1, total + 1))
    head = [1, 2, 0] if T > 3 else list(range(1, T))
    cols = [*head, T - 1, T, T + 1, T + 2, 0, total]
    out: list[int] = []
    for c in cols:  # drop duplicates (small T) but keep the order
        if c == 0 or c not in out:
            out.append(c)
    return [c for c in out if c <= total]


def bn_box_label(step: int, T: int, policy: str) -> str:
    """What batch norm normalizes step ``step`` with, in evaluation (2 short lines)."""
    if step <= T:
        return f"μ<sub>{step}</sub>, σ²<sub>{step}</sub><br>own set"
    return {"last": f"μ<sub>{T}</sub>, σ²<sub>{T}</sub><br>reused",
            "fresh": "0, 1<br>fresh",
            "batch": "test batch<br>μ, σ²"}[policy]


#: ``ui.page.FIXED_SIZE``: lecture mode leaves these labels' size alone (they fill their boxes).
BOX_LABEL = "fixed-size"


def fig_unrolled(T: int, policy: str, height: int = 400) -> go.Figure:
    """A time-unrolled diagram: the RNN cells, BN's per-step statistics, LN's per-sample ones."""
    cols = unrolled_columns(T)
    fig = go.Figure()
    rows = {"x": 3.3, "cell": 2.4, "bn": 1.25, "ln": 0.0}
    for i, step in enumerate(cols):
        if step == 0:
            for y in rows.values():
                fig.add_annotation(x=i, y=y, text="…", showarrow=False, font={"size": 22})
            continue
        beyond = step > T
        fig.add_annotation(x=i, y=rows["x"], text=f"x<sub>{step}</sub>", showarrow=False, font={"size": 15})
        fig.add_shape(type="rect", x0=i - 0.4, x1=i + 0.4, y0=rows["cell"] - 0.3, y1=rows["cell"] + 0.3,
                      line={"color": OKABE_ITO["black"], "width": 1.5},
                      fillcolor="#eeeeee" if not beyond else "#ffffff")
        fig.add_annotation(x=i, y=rows["cell"], text=f"h<sub>{step}</sub>", showarrow=False, font={"size": 15})
        bn_colour = OKABE_ITO["blue"] if not beyond else OKABE_ITO["orange"]
        fig.add_shape(type="rect", x0=i - 0.45, x1=i + 0.45, y0=rows["bn"] - 0.45, y1=rows["bn"] + 0.45,
                      line={"color": bn_colour, "width": 2, "dash": "solid" if not beyond else "dash"},
                      fillcolor="rgba(0,114,178,0.10)" if not beyond else "rgba(230,159,0,0.12)")
        fig.add_annotation(x=i, y=rows["bn"], text=bn_box_label(step, T, policy), showarrow=False,
                           font={"size": 11}, name=BOX_LABEL)
        fig.add_shape(type="rect", x0=i - 0.45, x1=i + 0.45, y0=rows["ln"] - 0.45, y1=rows["ln"] + 0.45,
                      line={"color": OKABE_ITO["green"], "width": 2, "dash": "dot"},
                      fillcolor="rgba(0,158,115,0.10)")
        fig.add_annotation(x=i, y=rows["ln"], text=f"μ<sub>i,{step}</sub>, σ²<sub>i,{step}</sub><br>per sample",
                           showarrow=False, font={"size": 11}, name=BOX_LABEL)
        if i + 1 < len(cols) and cols[i + 1] != 0:
            fig.add_annotation(x=i + 0.6, y=rows["cell"], ax=i + 0.4, ay=rows["cell"], xref="x", yref="y",
                               axref="x", ayref="y", showarrow=True, arrowhead=2, text="")
    # the boundary between trained and longer steps
    idx = [i for i, s in enumerate(cols) if s == T]
    if idx:
        fig.add_shape(type="line", x0=idx[0] + 0.5, x1=idx[0] + 0.5, y0=-0.5, y1=3.7,
                      line={"color": GREY, "dash": "dot", "width": 2})
        fig.add_annotation(x=idx[0] + 0.55, y=3.8, text=f"trained length T = {T} →  longer at test",
                           xanchor="left", showarrow=False, font={"size": 12, "color": GREY})
    # legend entries (invisible points) for the three rows
    for name, colour, dash in (("RNN cell: h<sub>t</sub> = tanh(N<sub>t</sub>(a<sub>t</sub>) + b)", OKABE_ITO["black"], "solid"),
                               ("BN: statistics over the batch, one set per step", OKABE_ITO["blue"], "solid"),
                               (f"BN beyond T: {POLICY_LABEL[policy]}", OKABE_ITO["orange"], "dash"),
                               ("LN: statistics of each sample over its units, every step", OKABE_ITO["green"], "dot")):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=name,
                                 line={"color": colour, "dash": dash, "width": 3}))
    style_figure(fig, f"Unrolled in time: which statistics each norm uses (test length up to {3 * T})",
                 "time step t (drawn: " + ", ".join("…" if c == 0 else str(c) for c in cols) + ")",
                 "", height=height)
    fig.update_xaxes(range=[-0.6, len(cols) - 0.4], showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(range=[-0.6, 4.0], showgrid=False, zeroline=False, tickmode="array",
                     tickvals=[rows["x"], rows["cell"], rows["bn"], rows["ln"]],
                     ticktext=["input", "state", "BN", "LN"], tickfont={"size": 14})
    # The legend clear of the x axis title in lecture mode's larger fonts (at y = -0.12 the
    # title ran into its first row).
    fig.update_layout(legend={"y": -0.3}, margin={"b": 160})
    return fig


# --------------------------------------------------------------------------- running means


N_UNITS_SHOWN = 4


def running_mean_series(res: RNNResult, test_length: int | None = None) -> dict:
    """The running means that BN uses at each step: ``{"t": (L,), "mean": (L, k), "stored": (L,)}``.

    ``stored[t]`` is True where step ``t`` has its own statistics; beyond the trained length the
    values are the ones the run's policy uses (``"last"``: step T's, ``"fresh"``: 0) and NaN for
    ``"batch"`` (the test batch's statistics, not stored).
    """
    rm = np.asarray(res.history["running_mean"], dtype=float)
    k = min(N_UNITS_SHOWN, rm.shape[1]) if rm.ndim == 2 else 0
    Tm = rm.shape[0] if rm.ndim == 2 else 0
    L = max(Tm, test_length or Tm)
    t = np.arange(1, L + 1)
    mean = np.full((L, k), np.nan)
    stat = np.asarray(res.history.get("stat_step", []), dtype=int)
    for i in range(L):
        s = int(stat[i]) if i < len(stat) else (i + 1 if i < Tm else Tm)
        if i < Tm:
            mean[i] = rm[i, :k]
        elif s > 0:
            mean[i] = rm[s - 1, :k]
        elif s == 0:
            mean[i] = 0.0
    return {"t": t, "mean": mean, "stored": t <= Tm}


def fig_running_means(digits_bn: RNNResult | None, length_bn: RNNResult | None, T: int,
                      height: int = 380) -> go.Figure:
    """Per-step running means of BN's statistics (units 1-4) against the time step."""
    fig = _two_panels("Sequential digits: running mean per row", f"Loudest channel: per step, tested up to {3 * T}")
    for col, res, L in ((1, digits_bn, None), (2, length_bn, 3 * T)):
        if res is None or np.asarray(res.history["running_mean"]).size == 0:
            _note(fig, "no batch-norm statistics<br>(BN did not train here)", 0.5, 0.5,
                  xref=f"x{'' if col == 1 else 2} domain", yref=f"y{'' if col == 1 else 2} domain")
            continue
        s = running_mean_series(res, L)
        for j in range(s["mean"].shape[1]):
            colour = CYCLE[j % len(CYCLE)]
            dash = ("solid", "dash", "dot", "dashdot")[j % 4]
            symbol = ("circle", "square", "diamond", "triangle-up")[j % 4]
            x, y = finite_xy(s["t"], s["mean"][:, j])
            if not len(x):
                continue
            stored = x <= s["t"][s["stored"]].max() if s["stored"].any() else np.zeros(len(x), bool)
            fig.add_trace(go.Scatter(x=x[stored], y=y[stored], mode="lines+markers",
                                     name=f"unit {j + 1}", legendgroup=f"u{j}", showlegend=col == 1,
                                     line={"color": colour, "dash": dash, "width": 2.5},
                                     marker={"color": colour, "symbol": symbol, "size": 7}),
                          row=1, col=col)
            if (~stored).any():
                xs = np.concatenate([x[stored][-1:], x[~stored]])
                ys = np.concatenate([y[stored][-1:], y[~stored]])
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"unit {j + 1} beyond T",
                                         legendgroup=f"u{j}", showlegend=False,
                                         line={"color": colour, "dash": "dot", "width": 1.5},
                                         opacity=0.7), row=1, col=col)
    fig.add_vrect(x0=T + 0.5, x1=3 * T + 0.5, fillcolor=OKABE_ITO["sky"], opacity=0.12, line_width=0,
                  row=1, col=2)
    style_figure(fig, "Batch norm's running means, step by step (first 4 hidden units)", "", "",
                 height=height)
    fig.update_xaxes(title_text="time step t (pixel row)", row=1, col=1)
    fig.update_xaxes(title_text="time step t", row=1, col=2, range=[0.5, 3 * T + 0.5])
    fig.update_yaxes(title_text="running mean of a<sub>t</sub> (units of a<sub>t</sub>)", row=1, col=1)
    fig.update_yaxes(title_text="running mean of a<sub>t</sub>", row=1, col=2)
    fig.update_layout(legend={"y": -0.3}, margin={"t": 70, "b": 115})
    return _lecture_gap(_readable(fig))


def fig_step_spread(cmp: Comparison, height: int = 360) -> go.Figure:
    """Spread of ``a_t`` (the input of N_t) per time step at the end of training, per norm.

    The standard deviation over the test sequences of each hidden unit's ``a_t``, averaged over
    the units (evaluation mode, the last record of each run): left the digits, right the
    loudest-channel task at its training length.
    """
    fig = _two_panels("Sequential digits", f"Loudest channel (T = {cmp.train_length})")
    for col, results in ((1, cmp.digits), (2, cmp.length)):
        for norm in NORM_ORDER:
            res = results.get(norm)
            if res is None or not len(res.history["act_std"]):
                continue
            std = np.asarray(res.history["act_std"], dtype=float)[-1]
            x, y = finite_xy(np.arange(1, len(std) + 1), std)
            if len(x):
                fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=NORM_LABEL[norm],
                                         legendgroup=norm, showlegend=col == 1 or norm not in cmp.digits,
                                         line=_line(norm), marker=_marker(norm)), row=1, col=col)
    style_figure(fig, "Spread of the input to N<sub>t</sub> at each step, after training", "", "",
                 height=height)
    for col in (1, 2):
        fig.update_xaxes(title_text="time step t", row=1, col=col)
    fig.update_yaxes(title_text="std of a<sub>t</sub> over test sequences", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_layout(legend={"y": -0.3}, margin={"t": 70, "b": 115})
    return _lecture_gap(_readable(fig))


# --------------------------------------------------------------------------- variable lengths


def fig_active(results: Mapping[str, RNNResult], height: int = 360) -> go.Figure:
    """Sequences per batch that each BN step averages over, with variable-length batches."""
    fig = go.Figure()
    res = results.get("bn") or next(iter(results.values()), None)
    if res is not None:
        h = res.history
        t = np.arange(1, len(h["active_mean"]) + 1)
        x, y = finite_xy(t, h["active_mean"])
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name="mean over training batches",
                                 line={"color": OKABE_ITO["blue"], "width": 3},
                                 marker={"symbol": "square", "size": 7, "color": OKABE_ITO["blue"]}))
        x, y = finite_xy(t, h["active_min"])
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name="fewest in any batch",
                                 line={"color": OKABE_ITO["vermillion"], "dash": "dash", "width": 2.5},
                                 marker={"symbol": "circle", "size": 7, "color": OKABE_ITO["vermillion"]}))
        fig.add_hline(y=2, line={"color": GREY, "dash": "dot"},
                      annotation_text="2: the fewest with a batch variance", annotation_position="top right")
    style_figure(fig, "Sequences each BN step averages over",
                 "time step t", "sequences in the batch still running", height=height)
    fig.update_yaxes(rangemode="tozero")
    return _readable(fig)


def fig_active_accuracy(results: Mapping[str, RNNResult], T: int, height: int = 360) -> go.Figure:
    """Accuracy vs test length after training on variable lengths (min..T), per norm."""
    fig = go.Figure()
    for norm in NORM_ORDER:
        res = results.get(norm)
        if res is None:
            continue
        x, y = finite_xy(res.history["length"], res.history["acc_by_length"])
        if len(x):
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=NORM_LABEL[norm],
                                     line=_line(norm), marker=_marker(norm, 5)))
    fig.add_vline(x=T + 0.5, line={"color": GREY, "dash": "dot"})
    style_figure(fig, "After variable-length training: accuracy",
                 "test sequence length (time steps)", "test accuracy (fraction)", height=height)
    fig.update_yaxes(range=[0, 1.02])
    return _readable(fig)


# --------------------------------------------------------------------------- batch-size sweep


def fig_batch_sweep(sweep: Mapping[str, np.ndarray], height: int = 380) -> go.Figure:
    """Final sequential-digits test accuracy against batch size, per norm (log x axis)."""
    fig = go.Figure()
    b = np.asarray(sweep.get("batch", []), dtype=float)
    for norm in NORM_ORDER:
        acc = sweep.get(norm)
        if acc is None:
            continue
        x, y = finite_xy(b, acc)
        if len(x):
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=NORM_LABEL[norm],
                                 line=_line(norm), marker=_marker(norm, 9)))
    style_figure(fig, "Sequential digits: final test accuracy against batch size",
                 "batch size (sequences, log scale)", "test accuracy (fraction)", height=height)
    fig.update_xaxes(type="log", tickvals=list(b) if len(b) else None)
    fig.update_yaxes(range=[0, 1.02])
    return _readable(fig)


def config_label(c: RNNConfig) -> str:
    """A short description of a run's settings for a chart note."""
    return f"hidden {c.hidden}, batch {c.batch_size}, {c.steps} steps, lr {c.lr:g}"
