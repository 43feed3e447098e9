"""Plotly figures of chapter 1 (Valley vs bowl): arrays in, ``go.Figure`` out, no Streamlit.

Every figure: a title, axis titles with units, a legend, Okabe-Ito colours with dash/marker
redundancy (``ui.theme.VARIANT_STYLE``) and the house layout of ``ui.theme.style_figure``.
Non-finite numbers never reach a figure: paths are truncated before a divergence, log axes get
only positive values, and missing heat-map cells are ``None`` (gaps with a marker on top).

**Speed.** A rerun of the page must stay around 30 ms, but building a ``go.Figure`` validates
every property (a landscape with 40 animation frames took ~100 ms, ``style_figure`` alone
~90 ms). The builders therefore write the figure *specification* as plain dicts (arrays as
short rounded lists, see :func:`_rounded`) and wrap it in :class:`FigureSpec`, a ``go.Figure`` whose
``to_dict`` returns that trusted spec; the house layout comes from ``style_figure`` once per
height and is reused. :func:`ui.page.chart` draws it like any figure.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import plotly.graph_objects as go

from ui.theme import (
    LECTURE_LAYOUT,
    LECTURE_TITLE,
    OKABE_ITO,
    SEQUENTIAL,
    VARIANT_STYLE,
    FigureSpec,
    style_figure,
)


@functools.lru_cache(maxsize=8)
def _house_layout(height: int) -> dict:
    """``ui.theme.style_figure``'s layout (template included) for ``height``, built once."""
    return style_figure(go.Figure(), "", "", "", height=height).to_dict()["layout"]


def _layout(title: str, x_title: str, y_title: str, height: int, **extra) -> dict:
    """The house layout with this figure's titles and ``extra`` settings merged in.

    Only the top level and the nested dicts changed here are copied: the (large) template is
    shared between figures and never modified.
    """
    base = _house_layout(height)
    lay = {k: (dict(v) if isinstance(v, dict) and k != "template" else v) for k, v in base.items()}
    lay["title"] = {**lay.get("title", {}), "text": title}
    lay.setdefault("xaxis", {})["title"] = {"text": x_title}
    lay.setdefault("yaxis", {})["title"] = {"text": y_title}
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(lay.get(k), dict):
            lay[k] = {**lay[k], **v}
        else:
            lay[k] = v
    return lay


def _rounded(a, sig: int = 6) -> list:
    """A float array as a JSON-ready list: ``sig`` significant digits, ``None`` for non-finite.

    Plain short numbers rather than Plotly's base64 typed arrays: base64 text is random
    letters and spells "NaN" or "inf" somewhere in a large array about every other time, which
    would mislead anyone (or any test) grepping a figure's JSON for non-finite values. Rounding
    keeps the JSON small (a drawing needs no 17-digit numbers).
    """
    a = np.asarray(a, dtype=float)
    finite = np.isfinite(a)
    scale = float(np.max(np.abs(a[finite]))) if finite.any() else 1.0
    decimals = max(0, sig - 1 - int(math.floor(math.log10(scale)))) if scale > 0 else sig
    with np.errstate(all="ignore"):
        r = np.round(a, decimals)
    if finite.all():
        return r.tolist()
    return [[v if math.isfinite(v) else None for v in row] for row in r.tolist()] if a.ndim > 1 else \
        [v if math.isfinite(v) else None for v in r.tolist()]


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


def downsample_indices(k: int, limit: int = 600, head: int = 150) -> np.ndarray:
    """Indices into a path of ``k`` points: the first ``head`` exactly (zigzags live there), then
    evenly spaced up to the last point, at most ``limit`` in all."""
    if k <= limit:
        return np.arange(k)
    tail = np.linspace(head, k - 1, limit - head).round().astype(int)
    return np.unique(np.concatenate([np.arange(head), tail]))


def grid_box(points: np.ndarray, start: np.ndarray, optimum: np.ndarray, margin: float = 0.15) -> tuple:
    """A square (w1, w2) box around the start, the optimum and the path, with a margin.

    Path points farther than 3 start-optimum distances from the optimum are ignored (a
    diverging path leaves the box and is clipped by the axis range instead of squashing it).
    """
    span = max(float(np.max(np.abs(start - optimum))), 1e-3)
    pts = np.vstack([start[None], optimum[None], points])
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    near = np.max(np.abs(pts - optimum), axis=1) <= 3 * span
    pts = pts[near]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    # A square box (same span on both axes): with equal axis scales a round bowl looks round and
    # a valley looks as narrow as it is.
    center, half = (lo + hi) / 2, (1 + 2 * margin) * max(float(np.max(hi - lo)), 0.05 * span) / 2
    return (center[0] - half, center[0] + half), (center[1] - half, center[1] + half)


def path_note(diverged_at: int | None, px: np.ndarray, py: np.ndarray, ps: np.ndarray,
              xr: tuple, yr: tuple) -> str | None:
    """The landscape's subtitle: where the drawn path leaves the axes, and the divergence if any.

    ``px, py, ps`` are the drawn path points and their step numbers, ``xr, yr`` the axis ranges.
    A path can leave the axes without counting as diverged (at 1.01 of 2/lambda_max the raw path
    bounces out of the chart long before its loss has grown ``EXPLODE_FACTOR``-fold), so this is
    said whenever a drawn point is outside (issue 10, item 9). ``None``: nothing to say.
    """
    inside = (px >= min(xr)) & (px <= max(xr)) & (py >= min(yr)) & (py <= max(yr))
    leaves = None if inside.all() else int(ps[int(np.argmin(inside))])
    if diverged_at is None:
        return None if leaves is None else f"the path leaves the chart at step {leaves}"
    if leaves is None:
        return f"diverged at step {diverged_at}: the next step leaves the chart"
    return f"diverged at step {diverged_at}: the path leaves the chart at step {leaves}"


def divergence_note(diverged_at: int, px: np.ndarray, py: np.ndarray, ps: np.ndarray,
                    xr: tuple, yr: tuple) -> str:
    """:func:`path_note` of a diverged run (kept for callers that know the run diverged)."""
    return path_note(diverged_at, px, py, ps, xr, yr)


#: Animation speeds: milliseconds per frame (the sidebar's "animation speed").
SPEEDS = {"slow": 600, "normal": 300, "fast": 120}
#: Animation frames per landscape (log-spaced in step number). Each frame redraws the whole
#: chart, contour included, and every frame is part of the JSON sent on a step change.
N_FRAMES = 16
#: Height of a landscape: with the title, the lead sentence and the sidebar's key control it
#: fits a projector's 720 pixels (tests/browser/test_first_screen.py).
LANDSCAPE_HEIGHT = 500


def frame_indices(k: int, n_frames: int) -> np.ndarray:
    """Indices of the animation frames into a path of ``k`` points: about ``n_frames`` distinct
    ones, log-spaced (dense early, where the zigzag is), always the first and the last."""
    cand = np.unique(np.concatenate([[0], np.geomspace(1, max(k, 1), 4 * n_frames).round().astype(int) - 1,
                                     [k - 1]]))
    cand = cand[(cand >= 0) & (cand < k)]
    if len(cand) > n_frames:
        cand = cand[np.unique(np.linspace(0, len(cand) - 1, n_frames).round().astype(int))]
    return cand


def contour_levels(z: np.ndarray, per_decade: int = 2) -> dict:
    """Fixed contour levels for ``z = log10(L - L*)``: every 1/``per_decade`` decade.

    Fixed levels (``autocontour`` off) are the same for every step size with the same box, so
    neighbouring settings draw the same lines, and Plotly does not search for "nice" levels.
    """
    finite = z[np.isfinite(z)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    start, end = math.floor(lo * per_decade) / per_decade, math.ceil(hi * per_decade) / per_decade
    if end <= start:
        end = start + 1.0 / per_decade
    return {"start": start, "end": end, "size": 1.0 / per_decade}


def landscape_figure(variant: str, w1: np.ndarray, w2: np.ndarray, subopt: np.ndarray,
                     path: np.ndarray, steps: np.ndarray, optimum: np.ndarray, *,
                     diverged_at: int | None = None, n_frames: int = N_FRAMES,
                     height: int = LANDSCAPE_HEIGHT, feature_names: tuple = ("A", "B"),
                     speed: str = "normal") -> go.Figure:
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
    feature_names : tuple of str
        Names of the two features, for the axis titles.
    speed : str
        Key of :data:`SPEEDS`: how long "play" shows each frame.
    """
    style = VARIANT_STYLE[variant]
    with np.errstate(all="ignore"):
        floor = max(float(np.nanmax(subopt)) * 1e-12, np.finfo(float).tiny)
        z = np.log10(np.maximum(subopt, floor))
    idx = downsample_indices(len(path))
    px, py, ps = path[idx, 0], path[idx, 1], steps[idx]
    xs, ys = _rounded(px, 7), _rounded(py, 7)
    x_last, y_last = xs[-1], ys[-1]
    line = {"color": style["color"], "width": 2, "dash": style["dash"]}
    marker = {"symbol": style["symbol"], "size": 6, "color": style["color"],
              "line": {"color": "white", "width": 1}}
    data = [
        {"type": "contour", "x": _rounded(w1, 7), "y": _rounded(w2, 7), "z": _rounded(z, 3),
         "colorscale": SEQUENTIAL, "autocontour": False, "contours": contour_levels(z),
         "name": "log10(L - L*)", "showlegend": False,
         "colorbar": {"title": {"text": "log₁₀(L − L*) [log₁₀ (y units)²]", "side": "right"}, "len": 1.0,
                      "thickness": 14},
         "hovertemplate": "w1=%{x:.4g}<br>w2=%{y:.4g}<br>log10(L−L*)=%{z:.2f}<extra></extra>"},
        {"type": "scatter", "x": xs, "y": ys, "mode": "lines+markers", "name": "path",
         "line": line, "marker": marker, "customdata": ps.tolist(),
         "hovertemplate": "step %{customdata}<br>w1=%{x:.4g}<br>w2=%{y:.4g}<extra></extra>"},
        {"type": "scatter", "x": [xs[0]], "y": [ys[0]], "mode": "markers", "name": "start",
         "marker": {"symbol": "circle-open", "size": 14, "color": OKABE_ITO["black"], "line": {"width": 3}}},
        {"type": "scatter", "x": [float(optimum[0])], "y": [float(optimum[1])], "mode": "markers",
         "name": "optimum", "hovertemplate": "least-squares optimum<br>w1=%{x:.4g}<br>w2=%{y:.4g}<extra></extra>",
         "marker": {"symbol": "star", "size": 16, "color": OKABE_ITO["yellow"], "line": {"color": "black", "width": 1}}},
        {"type": "scatter", "x": [x_last], "y": [y_last], "mode": "markers", "name": "current step",
         "marker": {"symbol": style["symbol"], "size": 14, "color": style["color"], "line": {"color": "black", "width": 2}}},
    ]
    k = len(px)
    fidx = frame_indices(k, n_frames)
    # Each frame: the path so far (at most ~100 of its points, the early ones exactly) and the
    # current point; the whole path stays drawn faintly underneath (trace 5).
    frames = []
    xa, ya, pa = np.array(xs, dtype=object), np.array(ys, dtype=object), ps.astype(int)
    for i in fidx:
        sub = downsample_indices(i + 1, limit=100, head=40)
        frames.append({"name": str(int(ps[i])), "traces": [1, 4],
                       "data": [{"type": "scatter", "x": xa[sub].tolist(), "y": ya[sub].tolist(),
                                 "customdata": pa[sub].tolist()},
                                {"type": "scatter", "x": [xs[i]], "y": [ys[i]]}]})
    data.append({"type": "scatter", "x": xs, "y": ys, "mode": "lines", "name": "whole path", "showlegend": False,
                 "line": {"color": style["color"], "width": 1, "dash": "dot"}, "opacity": 0.5})
    # redraw=True: with redraw=False Plotly takes its "transition" path, which redraws only the
    # animatable (scatter) traces and drops the contour layer, so "play" erased the landscape.
    anim = {"frame": {"duration": SPEEDS[speed], "redraw": True}, "transition": {"duration": 0},
            "mode": "immediate"}
    # Below the plot: the buttons on the left, the frame label ("step k") on the right of the same
    # row, the slider's rail under both, then the legend. (The label used to sit under the buttons.)
    slider = {"active": len(frames) - 1, "x": 0.0, "len": 1.0, "y": -0.22, "yanchor": "top",
              "pad": {"t": 36, "b": 0}, "ticklen": 3, "minorticklen": 0,
              # tick labels invisible (the frame label says the step; 16 numbers only crowd the rail)
              "font": {"size": 10, "color": "rgba(0,0,0,0)"},
              "currentvalue": {"prefix": "step ", "visible": True, "xanchor": "right", "offset": 4,
                               "font": {"size": 14, "color": "#1a1a1a"}},
              "steps": [{"label": f["name"], "method": "animate",
                         "args": [[f["name"]], {**anim, "frame": {"duration": 0, "redraw": True}}]}
                        for f in frames]}
    # "pause" interrupts the running animation; Plotly rejects the interrupted animation's
    # promise, which its buttons do not catch (see ui.valley.ANIMATION_GUARD).
    buttons = {"type": "buttons", "direction": "left", "x": 0.0, "y": -0.22, "xanchor": "left", "yanchor": "top",
               "pad": {"t": 0, "r": 4}, "showactive": False,
               "buttons": [{"label": "play", "method": "animate", "args": [None, {**anim, "fromcurrent": False}]},
                           {"label": "pause", "method": "animate",
                            "args": [[None], {"frame": {"duration": 0, "redraw": False}, "mode": "immediate",
                                              "transition": {"duration": 0}}]}]}
    (x0, x1), (y0, y1) = grid_box(path, path[0], optimum)
    units = WEIGHT_UNITS[variant]
    title = f"{VARIANT_LABELS[variant]}: loss landscape and path"
    # In lecture mode (25 px titles) the full title overran a half-width column at 1280 px; the
    # section's heading right above says "Loss landscapes and paths", so the variant is enough.
    lecture_title = VARIANT_LABELS[variant]
    # 21 px tick labels on a ~200 px axis: four ticks stay level (more were turned on their side,
    # into the axis title and the buttons below).
    lecture_layout: dict = {"xaxis": {"nticks": 4}}
    note = path_note(diverged_at, px, py, ps, (x0, x1), (y0, y1))
    if note:
        # Its own (small) title line: appended to the first one it was cut off in a half-width
        # column. The axes stay on the landscape, so say where the drawn path leaves them.
        title += f"<br><sup>{note}</sup>"
        # in lecture mode only the divergence (the page's error box says the rest): the full
        # line ran into the colour bar's title at 21 px
        short = f"diverged at step {diverged_at}" if diverged_at is not None else note
        lecture_title += f"<br><sup>{short}</sup>"
        lecture_layout["margin"] = {"t": 92}  # the second title line clear of the colour bar's title
    fa, fb = feature_names
    layout = _layout(title, f"w1 [{units.format(f=fa)}]", f"w2 [{units.format(f=fb)}]", height,
                     updatemenus=[buttons], sliders=[slider], margin={"t": 64, "b": 190, "l": 64, "r": 10},
                     legend={"y": -0.6, "yanchor": "top", "font": {"size": 12}, "entrywidth": 0.5,
                             "entrywidthmode": "fraction"},
                     xaxis={"range": [float(x0), float(x1)], "constrain": "domain"},
                     yaxis={"range": [float(y0), float(y1)], "scaleanchor": "x", "scaleratio": 1,
                            "constrain": "domain"},
                     meta={LECTURE_TITLE: lecture_title, LECTURE_LAYOUT: lecture_layout})
    return FigureSpec({"data": data, "layout": layout, "frames": frames})


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
        data.append({"type": "scatter", "x": s[ok].tolist(), "y": [float(f"{v:.6g}") for v in r[ok].tolist()],
                     "mode": "lines",
                     "name": VARIANT_LABELS[variant],
                     "line": {"color": style["color"], "dash": style["dash"], "width": 2.5}})
        if div is not None and ok.any():
            last = np.nonzero(ok)[0][-1]
            data.append({"type": "scatter", "x": [int(s[last])], "y": [float(r[last])], "mode": "markers+text",
                         "name": f"{VARIANT_LABELS[variant]}: diverged at step {div}",
                         "text": [f"diverged at step {div}"], "textposition": "top left",
                         "marker": {"symbol": "x", "size": 14, "color": style["color"]}})
    shape = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": tol, "y1": tol,
             "line": {"color": OKABE_ITO["black"], "dash": "dot", "width": 1}}
    note = {"text": f"tolerance {tol:g}", "xref": "paper", "x": 1, "xanchor": "right", "yref": "y",
            "y": math.log10(tol), "yanchor": "top", "showarrow": False}
    layout = _layout("Convergence: relative suboptimality per step (log scale)", "step k [parameter updates]",
                     "(L_k − L*) / (L_0 − L*) [dimensionless]", height, shapes=[shape], annotations=[note],
                     yaxis={"type": "log", "exponentformat": "power"})
    return FigureSpec({"data": data, "layout": layout})


#: How the stability map marks cells without a loss: legend name -> (symbol, colour, size).
#: The caption under the map is written from this table and the figure (:func:`describe_markers`).
MAP_MARKERS = {
    "diverged": ("x", OKABE_ITO["vermillion"], 8),
    "undefined: batch norm needs >= 2 samples": ("square", "#8c8c8c", 10),
}
#: Words for the symbols and colours used above (a caption names what is drawn).
SYMBOL_WORDS = {"x": "×", "square": "squares", "star": "star"}
COLOUR_WORDS = {OKABE_ITO["vermillion"]: "orange-red", "#8c8c8c": "grey", "white": "white"}


def map_panels(n: int) -> list[tuple[list, list]]:
    """(x domain, y domain) of each of ``n`` stability-map panels: one row up to 2, else rows of 2.

    Four panels in one row squeezed four long x-axis titles into each other (issue 10, item 8).
    """
    cols = 1 if n == 1 else 2
    rows = math.ceil(n / cols)
    gx, gy = 0.08, 0.22 if rows > 1 else 0.0
    w, h = (1 - gx * (cols - 1)) / cols, (1 - gy * (rows - 1)) / rows
    out = []
    for i in range(n):
        r, c = divmod(i, cols)
        x0, y1 = c * (w + gx), 1 - r * (h + gy)
        out.append(([x0, x0 + w], [y1 - h, y1]))
    return out


def stability_figure(variants: tuple, x_values: np.ndarray, x_kind: str, batch_sizes: np.ndarray,
                     final_loss: np.ndarray, diverged: np.ndarray, undefined: np.ndarray,
                     height: int | None = None) -> go.Figure:
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

    Panels sit in rows of two (:func:`map_panels`). The page's current setting is starred by
    :func:`with_current_setting`, on a copy.
    """
    V = len(variants)
    panels = map_panels(V)
    rows = math.ceil(V / (1 if V == 1 else 2))
    height = height or (420 if rows == 1 else 700)
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
        for mask, name in ((diverged[v], "diverged"), (undefined[v], "undefined: batch norm needs >= 2 samples")):
            sym, col, size = MAP_MARKERS[name]
            bi, li = np.nonzero(mask)
            if not len(bi):
                continue
            traces.append(({"type": "scatter", "x": [xv[i] for i in li], "y": [ylab[j] for j in bi],
                            "mode": "markers", "name": name, "legendgroup": name, "showlegend": name not in shown,
                            "marker": {"symbol": sym, "size": size, "color": col}}, v))
            shown.add(name)
    xt = "learning rate α [step size]" if x_kind == "lr" else "α as a fraction of 2/λ_max [dimensionless]"
    extra: dict = {"annotations": [], "legend": {"y": -0.12 if rows > 1 else -0.3, "yanchor": "top", "x": 0,
                                                 "xanchor": "left"},
                   "coloraxis": {"colorscale": SEQUENTIAL, "cmin": zmin, "cmax": zmax,
                                 "colorbar": {"title": {"text": "log₁₀ loss<br>[log₁₀ (y units)²]"}}},
                   "margin": {"b": 110}}
    # Fixed ranges (log10 units on the log x axis): the heat maps' bricks plus one brick on each
    # side for the markers at the edge columns. Autorange would also count the current-setting
    # star (a layout shape), but only when the browser recomputes the whole chart, which a star
    # move does not: the range then depended on where the star was at the last full redraw.
    lx = np.log10(np.asarray(xv, dtype=float))
    brick = float(np.diff(lx).mean()) if len(lx) > 1 else 0.5
    x_range = [float(lx[0]) - 1.5 * brick, float(lx[-1]) + 1.5 * brick]
    y_range = [-0.5, len(ylab) - 0.5]
    for v, (xd, yd) in enumerate(panels):
        sfx = "" if v == 0 else str(v + 1)
        extra[f"xaxis{sfx}"] = {"domain": xd, "anchor": f"y{sfx}", "type": "log", "title": {"text": xt},
                                "range": x_range}
        left = xd[0] == 0
        extra[f"yaxis{sfx}"] = {"domain": yd, "anchor": f"x{sfx}", "type": "category", "range": y_range,
                                **({} if v == 0 else {"matches": "y"}),
                                **({"title": {"text": "batch size [samples]"}} if left else {"showticklabels": False})}
        extra["annotations"].append({"text": VARIANT_LABELS[variants[v]], "x": (xd[0] + xd[1]) / 2, "y": yd[1],
                                     "xref": "paper", "yref": "paper", "xanchor": "center", "yanchor": "bottom",
                                     "showarrow": False})
    data = []
    for t, v in traces:
        sfx = "" if v == 0 else str(v + 1)
        data.append({**t, "xaxis": f"x{sfx}", "yaxis": f"y{sfx}"})
    layout = _layout("Stability map: log₁₀ final full-batch loss (gaps: diverged or undefined)", xt,
                     "batch size [samples]", height)
    for k, val in extra.items():
        if k in ("xaxis", "yaxis", "legend"):
            layout[k].update(val)
        else:
            layout[k] = val
    return FigureSpec({"data": data, "layout": layout})


def describe_markers(spec: dict) -> str:
    """What the stability map's markers mean, in words taken from the figure's own traces.

    Returns e.g. ``"orange-red × = diverged (the loss exploded or overflowed)"``; empty when no
    cell is marked. Written from the drawn symbols and colours, so it cannot name a colour or
    shape the chart does not use (issue 10, item 8).
    """
    meaning = {"diverged": "diverged (the loss exploded or overflowed)",
               "undefined: batch norm needs >= 2 samples": "undefined (batch norm with one sample per batch)"}
    parts = {}
    for t in spec["data"]:
        name = t.get("name")
        if t.get("type") == "scatter" and name in meaning and name not in parts:
            m = t["marker"]
            parts[name] = f"{COLOUR_WORDS[m['color']]} {SYMBOL_WORDS[m['symbol']]} = {meaning[name]}"
    return "; ".join(parts.values())


def _star_path(outer: float = 9.0, inner: float = 3.8) -> str:
    """An SVG path of a five-pointed star, point up, in pixels around (0, 0) (y grows upwards,
    as in a shape with ``ysizemode="pixel"``)."""
    pts = []
    for i in range(10):
        r, a = (outer if i % 2 == 0 else inner), math.pi / 2 + i * math.pi / 5
        pts.append(f"{r * math.cos(a):.2f},{r * math.sin(a):.2f}")
    return "M" + " L".join(pts) + " Z"


#: The current-setting star of the stability map: white with a black rim, about 17 px across.
STAR_PATH = _star_path()
CURRENT_SETTING = "current setting"


def with_current_setting(fig: FigureSpec, n_panels: int, current: tuple) -> FigureSpec:
    """A copy of a stability map with a star at the page's current (x, batch size) in every panel.

    Kept separate so the (cached) map need not be rebuilt when only the current setting moves.
    The stars are layout *shapes* (a star path in pixels, anchored at the data point), not
    traces: moving one changes only the layout's ``shapes``, which the browser's
    ``Plotly.react`` redraws alone instead of recomputing the heat maps (``ui.live_chart`` hands
    unchanged traces back as the same objects; the map's update took about 9 ms instead of 40 in
    Chromium). The legend entry is a trace without points, the same on every step, with the
    star as its marker.
    """
    spec = dict(fig.spec)
    x, batch = float(current[0]), str(int(current[1]))
    # On a category axis a shape's position is the category's index (a name such as "100" would
    # be read as position 100 and stretch the axis to it): the rows are the heat maps' y labels.
    rows = _map_rows(spec)
    if batch not in rows:  # not one of the map's rows: no star (the page says so)
        return fig
    stars = [{"type": "path", "path": STAR_PATH, "xsizemode": "pixel", "ysizemode": "pixel",
              "xanchor": x, "yanchor": rows.index(batch), "xref": "x" if v == 0 else f"x{v + 1}",
              "yref": "y" if v == 0 else f"y{v + 1}", "layer": "above", "legendgroup": "cur",
              "fillcolor": "white", "line": {"color": "black", "width": 1.5}}
             for v in range(n_panels)]
    # one legend entry for all stars; a click on it hides them (their legend group)
    legend = {"type": "scatter", "x": [None], "y": [None], "mode": "markers", "name": CURRENT_SETTING,
              "legendgroup": "cur", "showlegend": True, "hoverinfo": "skip",
              "marker": {"symbol": "star", "size": 13, "color": "white", "line": {"color": "black", "width": 1.5}}}
    spec["data"] = list(spec["data"]) + [legend]
    spec["layout"] = {**spec["layout"], "shapes": list(spec["layout"].get("shapes", [])) + stars}
    return FigureSpec(spec)


def _map_rows(spec: dict) -> list[str]:
    """The batch sizes of a stability map's rows, as its heat maps label them (bottom to top)."""
    return next((t["y"] for t in spec["data"] if t.get("type") == "heatmap"), [])


def current_settings(spec: dict) -> list[tuple[float, str, str, str]]:
    """Where a stability map's stars are: ``(x, batch size, x axis, y axis)`` per panel."""
    rows = _map_rows(spec)
    return [(s["xanchor"], rows[s["yanchor"]], s["xref"], s["yref"]) for s in spec["layout"].get("shapes", [])
            if s.get("path") == STAR_PATH]


def with_speed(fig: FigureSpec, speed: str) -> FigureSpec:
    """A copy of a landscape whose "play" button shows each frame for ``SPEEDS[speed]`` ms.

    Only the layout's top level and the play button are copied; data and frames are shared,
    so the cached landscape serves every speed. The copy is made once per figure and speed
    and kept with the figure (:meth:`ui.theme.FigureSpec.derived`), so its JSON is too.
    """
    return fig.derived(("speed", speed), lambda: _with_speed(fig, speed))


def _with_speed(fig: FigureSpec, speed: str) -> FigureSpec:
    spec = fig.spec
    menus = []
    for menu in spec["layout"].get("updatemenus", []):
        buttons = []
        for b in menu["buttons"]:
            if b["label"] == "play":
                frames, opts = b["args"]
                b = {**b, "args": [frames, {**opts, "frame": {**opts["frame"], "duration": SPEEDS[speed]}}]}
            buttons.append(b)
        menus.append({**menu, "buttons": buttons})
    return FigureSpec({**spec, "layout": {**spec["layout"], "updatemenus": menus}})
