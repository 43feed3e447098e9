"""Plotly figures of chapter 1 (Valley vs bowl): arrays in, ``go.Figure`` out, no Streamlit.

Every figure: a title, axis titles with units, a legend, Okabe-Ito colours with dash/marker
redundancy (``ui.theme.VARIANT_STYLE``). Non-finite numbers never reach a figure: the callers
pass paths truncated before a divergence, log axes get only positive values, and missing
heat-map cells are ``None`` (drawn as gaps with an explicit marker on top).

Figures are built from plain dicts with ``_validate=False``: the dicts are written by this
module (not user input) and skipping plotly's per-property validation is what keeps a rerun of
the page fast (see ``benchmarks/bench_rerun.py``).
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from ui.theme import OKABE_ITO, SEQUENTIAL, VARIANT_STYLE, style_figure

VARIANT_LABELS = {
    "raw": "raw",
    "minmax": "min-max [0, 1]",
    "standardized": "standardized (z-score)",
    "batchnorm": "batch-normalized",
}

#: Unit of one weight in each variant's own coordinates (x' = (x - shift) / scale).
WEIGHT_UNITS = {
    "raw": "y per unit of {f}",
    "minmax": "y per range of {f}",
    "standardized": "y per std of {f}",
    "batchnorm": "y per batch std of {f}",
}


def _fig(data: list, layout: dict | None = None, frames: list | None = None) -> go.Figure:
    return go.Figure(data=data, layout=layout or {}, frames=frames or [], _validate=False)


def _tolist(a) -> list:
    """Finite floats as a list; anything non-finite becomes None (never NaN in the JSON)."""
    a = np.asarray(a, dtype=float)
    return [float(v) if math.isfinite(v) else None for v in a.tolist()]


def downsample_indices(k: int, limit: int = 600, head: int = 150) -> np.ndarray:
    """Indices into a path of ``k`` points: the first ``head`` exactly (zigzags live there), then
    evenly spaced up to the last point, at most ``limit`` in all."""
    if k <= limit:
        return np.arange(k)
    tail = np.linspace(head, k - 1, limit - head).round().astype(int)
    return np.unique(np.concatenate([np.arange(head), tail]))


def grid_box(points: np.ndarray, start: np.ndarray, optimum: np.ndarray, margin: float = 0.15) -> tuple:
    """A (w1, w2) box around the start, the optimum and the path, with a margin.

    Path points farther than 3 start-optimum distances from the optimum are ignored (a
    diverging path leaves the box and is clipped by the axis range instead of squashing it).
    """
    span = max(float(np.max(np.abs(start - optimum))), 1e-3)
    pts = np.vstack([start[None], optimum[None], points])
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    near = np.max(np.abs(pts - optimum), axis=1) <= 3 * span
    pts = pts[near]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = margin * np.maximum(hi - lo, 0.05 * span)
    return (lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])


def landscape_figure(variant: str, w1: np.ndarray, w2: np.ndarray, subopt: np.ndarray,
                     path: np.ndarray, steps: np.ndarray, optimum: np.ndarray, *,
                     diverged_at: int | None = None, n_frames: int = 40, height: int = 460) -> go.Figure:
    """Contour of the loss over (w1, w2) with the optimizer's path, start, optimum and playback.

    Parameters
    ----------
    variant : str
        Key of ``VARIANT_STYLE``.
    w1, w2 : ndarray of shape (g1,), (g2,)
        Grid axes (the variant's own weight coordinates).
    subopt : ndarray of shape (g2, g1)
        ``L - L*`` on the grid (>= 0); drawn as ``log10`` so that nested ellipses are visible.
    path : ndarray of shape (k, 2)
        (w1, w2) iterates, finite (already truncated before a divergence).
    steps : ndarray of int, shape (k,)
        The step number of each row of ``path``.
    optimum : ndarray of shape (2,)
        Least-squares (w1, w2).
    diverged_at : int, optional
        Shown in the title when the run diverged.
    n_frames : int
        Animation frames (log-spaced in step number, so the early zigzag gets frames too).
    """
    style = VARIANT_STYLE[variant]
    with np.errstate(all="ignore"):
        floor = max(float(np.nanmax(subopt)) * 1e-12, np.finfo(float).tiny)
        z = np.log10(np.maximum(subopt, floor))
    idx = downsample_indices(len(path))
    px, py, ps = path[idx, 0], path[idx, 1], steps[idx]
    xs, ys = _tolist(px), _tolist(py)
    line = {"color": style["color"], "width": 2, "dash": style["dash"]}
    marker = {"symbol": style["symbol"], "size": 6, "color": style["color"],
              "line": {"color": "white", "width": 1}}
    data = [
        {"type": "contour", "x": np.asarray(w1, float), "y": np.asarray(w2, float), "z": z,
         "colorscale": SEQUENTIAL, "ncontours": 24, "name": "log10(L - L*)", "showlegend": False,
         "colorbar": {"title": {"text": "log10(L − L*)<br>[log10 (y units)²]"}, "len": 0.85},
         "hovertemplate": "w1=%{x:.4g}<br>w2=%{y:.4g}<br>log10(L−L*)=%{z:.2f}<extra></extra>"},
        {"type": "scatter", "x": xs, "y": ys, "mode": "lines+markers", "name": f"path ({VARIANT_LABELS[variant]})",
         "line": line, "marker": marker, "customdata": ps.tolist(),
         "hovertemplate": "step %{customdata}<br>w1=%{x:.4g}<br>w2=%{y:.4g}<extra></extra>"},
        {"type": "scatter", "x": [xs[0]], "y": [ys[0]], "mode": "markers", "name": "start",
         "marker": {"symbol": "circle-open", "size": 14, "color": OKABE_ITO["black"], "line": {"width": 3}}},
        {"type": "scatter", "x": [float(optimum[0])], "y": [float(optimum[1])], "mode": "markers",
         "name": "optimum (least squares)",
         "marker": {"symbol": "star", "size": 16, "color": OKABE_ITO["yellow"], "line": {"color": "black", "width": 1}}},
        {"type": "scatter", "x": [xs[-1]], "y": [ys[-1]], "mode": "markers", "name": "current step",
         "marker": {"symbol": style["symbol"], "size": 14, "color": style["color"], "line": {"color": "black", "width": 2}}},
    ]
    k = len(px)
    fidx = np.unique(np.concatenate([[0], np.geomspace(1, max(k, 1), n_frames).round().astype(int) - 1, [k - 1]]))
    fidx = fidx[(fidx >= 0) & (fidx < k)]
    frames = [{"name": str(int(ps[i])), "traces": [1, 4],
               "data": [{"type": "scatter", "x": xs[:i + 1], "y": ys[:i + 1]},
                        {"type": "scatter", "x": [xs[i]], "y": [ys[i]]}]} for i in fidx]
    anim = {"frame": {"duration": 80, "redraw": False}, "transition": {"duration": 0}, "mode": "immediate"}
    slider = {"active": len(frames) - 1, "x": 0.1, "len": 0.9, "y": -0.08, "yanchor": "top",
              "currentvalue": {"prefix": "step ", "visible": True},
              "steps": [{"label": f["name"], "method": "animate", "args": [[f["name"]], anim]} for f in frames]}
    buttons = {"type": "buttons", "direction": "left", "x": 0.0, "y": -0.08, "xanchor": "left", "yanchor": "top",
               "pad": {"t": 30}, "showactive": False,
               "buttons": [{"label": "▶ play", "method": "animate", "args": [None, {**anim, "fromcurrent": False}]},
                           {"label": "⏸ pause", "method": "animate",
                            "args": [[None], {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}]}]}
    (x0, x1), (y0, y1) = grid_box(path, path[0], optimum)
    units = WEIGHT_UNITS[variant]
    title = f"{VARIANT_LABELS[variant]}: loss landscape and path"
    if diverged_at is not None:
        title += f" (diverged at step {diverged_at})"
    fig = _fig(data, {"updatemenus": [buttons], "sliders": [slider]}, frames)
    style_figure(fig, title, f"w1 [{units.format(f='A')}]", f"w2 [{units.format(f='B')}]", height=height)
    fig.update_layout(margin={"l": 60, "r": 20, "t": 60, "b": 110})
    fig.update_xaxes(range=[x0, x1])
    fig.update_yaxes(range=[y0, y1])
    return fig


def convergence_figure(curves: dict, tol: float, height: int = 420) -> go.Figure:
    """Relative suboptimality ``(L_k - L*) / (L_0 - L*)`` per step, all variants, log y axis.

    Parameters
    ----------
    curves : dict of str to tuple
        ``variant -> (steps (k,), relative suboptimality (k,), diverged_at or None)``.
    tol : float
        Drawn as a horizontal line: "steps to tolerance" is the first crossing.
    """
    data = []
    for variant, (steps, rel, div) in curves.items():
        style = VARIANT_STYLE[variant]
        idx = downsample_indices(len(steps), limit=1500, head=300)
        s, r = np.asarray(steps)[idx], np.asarray(rel, dtype=float)[idx]
        ok = np.isfinite(r) & (r > 0)  # a log axis takes positive values only
        data.append({"type": "scatter", "x": s[ok].tolist(), "y": r[ok].tolist(), "mode": "lines",
                     "name": VARIANT_LABELS[variant],
                     "line": {"color": style["color"], "dash": style["dash"], "width": 2.5}})
        if div is not None and ok.any():
            last = np.nonzero(ok)[0][-1]
            data.append({"type": "scatter", "x": [int(s[last])], "y": [float(r[last])], "mode": "markers+text",
                         "name": f"{VARIANT_LABELS[variant]}: diverged at step {div}",
                         "text": [f"diverged at step {div}"], "textposition": "top left",
                         "marker": {"symbol": "x", "size": 14, "color": style["color"]}})
    fig = _fig(data)
    fig.add_hline(y=tol, line={"color": OKABE_ITO["black"], "dash": "dot", "width": 1},
                  annotation_text=f"tolerance {tol:g}", annotation_position="bottom right")
    style_figure(fig, "Convergence: relative suboptimality per step (log scale)",
                 "step k [parameter updates]", "(L_k − L*) / (L_0 − L*) [dimensionless]", height=height)
    fig.update_yaxes(type="log", exponentformat="power")
    return fig


def stability_figure(variants: tuple, x_values: np.ndarray, x_kind: str, batch_sizes: np.ndarray,
                     final_loss: np.ndarray, diverged: np.ndarray, undefined: np.ndarray,
                     current: tuple | None = None, height: int = 380) -> go.Figure:
    """Heat maps of ``log10`` final loss over (learning rate, batch size), one panel per variant.

    Parameters
    ----------
    variants : tuple of str
    x_values : ndarray of shape (L,)
        Learning rates (``x_kind="lr"``) or fractions of 2/lambda_max (``"fraction"``).
    batch_sizes : ndarray of int, shape (B,)
    final_loss : ndarray of shape (V, B, L)
        NaN for diverged/undefined cells: they become gaps (None) with a marker on top.
    diverged, undefined : ndarray of bool, shape (V, B, L)
    current : (x, batch size), optional
        The page's current setting, marked with a star.
    """
    from plotly.subplots import make_subplots

    V = len(variants)
    fig = make_subplots(rows=1, cols=V, shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[VARIANT_LABELS[v] for v in variants])
    with np.errstate(all="ignore"):
        logl = np.log10(np.maximum(final_loss, 1e-300))
    finite = logl[np.isfinite(logl)]
    zmin, zmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    ylab = [str(int(b)) for b in batch_sizes]
    xv = np.asarray(x_values, dtype=float).tolist()
    traces = []
    shown: set = set()
    for v in range(V):
        z = [[(float(c) if math.isfinite(c) else None) for c in row] for row in logl[v]]
        traces.append(({"type": "heatmap", "x": xv, "y": ylab, "z": z, "coloraxis": "coloraxis",
                        "hovertemplate": "x=%{x:.3g}<br>batch=%{y}<br>log10 loss=%{z:.2f}<extra></extra>"}, v))
        for mask, name, sym, col in ((diverged[v], "diverged", "x", OKABE_ITO["vermillion"]),
                                     (undefined[v], "undefined: batch norm needs >= 2 samples", "square-open",
                                      "#777777")):
            bi, li = np.nonzero(mask)
            if not len(bi):
                continue
            traces.append(({"type": "scatter", "x": [xv[i] for i in li], "y": [ylab[j] for j in bi],
                            "mode": "markers", "name": name, "legendgroup": name, "showlegend": name not in shown,
                            "marker": {"symbol": sym, "size": 7, "color": col}}, v))
            shown.add(name)
        if current is not None:
            traces.append(({"type": "scatter", "x": [float(current[0])], "y": [str(int(current[1]))],
                            "mode": "markers", "name": "current setting", "legendgroup": "cur", "showlegend": v == 0,
                            "marker": {"symbol": "star", "size": 13, "color": "white", "line": {"color": "black", "width": 1.5}}}, v))
    for t, v in traces:
        fig.add_trace(t, row=1, col=v + 1)
    xt = "learning rate α [step size]" if x_kind == "lr" else "α as a fraction of 2/λ_max [dimensionless]"
    style_figure(fig, "Stability map: log10 final full-batch loss (gaps: diverged or undefined)",
                 "", "batch size [samples]", height=height)
    fig.update_xaxes(type="log", title_text=xt)
    fig.update_yaxes(type="category", title_text="", col=1, row=1)
    fig.update_yaxes(title_text="batch size [samples]", row=1, col=1)
    fig.update_layout(coloraxis={"colorscale": SEQUENTIAL, "cmin": zmin, "cmax": zmax,
                                 "colorbar": {"title": {"text": "log10 loss<br>[log10 (y units)²]"}}},
                      legend={"y": -0.25, "yanchor": "top", "x": 0, "xanchor": "left"})
    return fig
