"""Chapter 1 figure builders: playback keeps the landscape, a divergence note agrees with the axes."""

import numpy as np

from ui import valley_figures as vf


def _landscape(path, diverged_at=None):
    rng = np.random.default_rng(3)
    w1, w2 = np.linspace(-1, 3, 20), np.linspace(-1, 4, 25)
    subopt = rng.uniform(0.0, 5.0, size=(25, 20))
    steps = np.arange(len(path))
    return vf.landscape_figure("raw", w1, w2, subopt, path, steps, np.array([2.0, 3.0]),
                               diverged_at=diverged_at, n_frames=12).spec


def _animate_calls(spec):
    """(frame names, options) of every 'animate' call: the play button and each slider step."""
    calls = [b["args"] for m in spec["layout"]["updatemenus"] for b in m["buttons"] if b["label"] == "play"]
    calls += [s["args"] for sl in spec["layout"]["sliders"] for s in sl["steps"]]
    return calls


def test_frames_update_only_the_path_and_marker_and_never_the_contour():
    rng = np.random.default_rng(7)
    path = np.cumsum(rng.normal(0.0, 0.1, size=(60, 2)), axis=0)
    spec = _landscape(path)
    names = [t.get("name", "") for t in spec["data"]]
    contour = next(i for i, t in enumerate(spec["data"]) if t["type"] == "contour")
    path_i = next(i for i, n in enumerate(names) if n.startswith("path"))
    marker_i = names.index("current step")
    assert len(spec["frames"]) > 2
    for f in spec["frames"]:
        assert contour not in f["traces"]
        assert len(f["data"]) == len(f["traces"])
        assert sorted(f["traces"]) == sorted([path_i, marker_i])
        for i, d in zip(f["traces"], f["data"], strict=True):
            assert d["type"] == spec["data"][i]["type"]
    # Plotly's redraw=False "transition" redraws only the animated scatter traces and drops the
    # contour layer (seen in Chromium: the raw landscape vanished on "play"), so every animate
    # call, play and slider alike, must redraw.
    calls = _animate_calls(spec)
    assert len(calls) == len(spec["frames"]) + 1
    for _, opts in calls:
        assert opts["frame"]["redraw"] is True


def test_divergence_note_is_its_own_title_line_with_the_step():
    path = np.array([[0.0, 0.0], [0.5, 1.0], [1.0, 2.0]])
    title = _landscape(path, diverged_at=3)["layout"]["title"]["text"]
    first, second = title.split("<br>")
    assert "diverged" not in first
    assert "diverged at step 3" in second and "the next step leaves the chart" in second


def test_divergence_note_names_the_step_that_leaves_the_axes():
    # The box ignores points far from the optimum, so a blown-up path leaves the drawn axes.
    path = np.array([[0.0, 0.0], [0.5, 1.0], [40.0, -50.0], [-900.0, 800.0]])
    spec = _landscape(path, diverged_at=4)
    x0, x1 = spec["layout"]["xaxis"]["range"]
    y0, y1 = spec["layout"]["yaxis"]["range"]
    inside = [(x0 <= x <= x1) and (y0 <= y <= y1) for x, y in path]
    first_out = inside.index(False)
    assert first_out == 2  # the independent check of the box this test relies on
    assert f"the path leaves the chart at step {first_out}" in spec["layout"]["title"]["text"]
    assert "the next step leaves the chart" not in spec["layout"]["title"]["text"]


def _map(variants=("raw", "standardized")):
    x = np.geomspace(0.01, 1.5, 12)
    batches = np.array([1, 4, 10, 100])
    rng = np.random.default_rng(5)
    loss = rng.uniform(0.1, 10.0, size=(len(variants), len(batches), len(x)))
    diverged = np.zeros_like(loss, dtype=bool)
    diverged[:, :, -2:] = True
    return vf.stability_figure(variants, x, "fraction", batches, np.where(diverged, np.nan, loss), diverged,
                               np.zeros_like(diverged))


def test_the_maps_star_is_a_shape_at_the_current_setting_in_every_panel_and_nothing_else_moves():
    for variants in (("raw",), ("raw", "standardized", "minmax")):
        fig = _map(variants)
        here, there = (vf.with_current_setting(fig, len(variants), c).spec for c in ((0.05, 10), (0.9, 100)))
        assert vf.current_settings(here) == [(0.05, "10", f"x{'' if v == 0 else v + 1}", f"y{'' if v == 0 else v + 1}")
                                             for v in range(len(variants))]
        assert [s[:2] for s in vf.current_settings(there)] == [(0.9, "100")] * len(variants)
        # the shape's y is the row's position on the category axis (a name would be read as a
        # number): rows 1, 4, 10, 100 from the bottom, so batch 10 is at position 2, 100 at 3
        assert [s["yanchor"] for s in here["layout"]["shapes"]] == [2] * len(variants)
        assert [s["yanchor"] for s in there["layout"]["shapes"]] == [3] * len(variants)
        assert all(s["legendgroup"] == here["data"][-1]["legendgroup"] for s in here["layout"]["shapes"])
        # Only the shapes differ between two settings: the traces (heat maps, markers and the
        # legend's star) are equal, so the browser keeps them and redraws the stars alone.
        assert here["data"] == there["data"] and here["data"][:-1] == fig.spec["data"]
        assert {k: v for k, v in here["layout"].items() if k != "shapes"} == \
            {k: v for k, v in there["layout"].items() if k != "shapes"}
        legend = here["data"][-1]
        assert legend["name"] == vf.CURRENT_SETTING and legend["marker"]["symbol"] == "star"
        assert legend["x"] == [None] and legend["y"] == [None]  # a legend entry, no point drawn
        assert "shapes" not in fig.spec["layout"]  # the cached map itself is not changed


def test_the_star_path_is_a_closed_five_pointed_star_around_its_anchor():
    pts = np.array([[float(v) for v in p.split(",")] for p in vf.STAR_PATH[1:-2].split(" L")])
    r = np.hypot(pts[:, 0], pts[:, 1])
    assert len(pts) == 10 and vf.STAR_PATH.endswith(" Z")
    assert np.allclose(r[::2], r[0], atol=0.01) and np.allclose(r[1::2], r[1], atol=0.01) and r[1] < r[0]
    assert abs(pts[:, 0].mean()) < 0.01 and pts[0, 1] == r[0]  # centred, first point straight up


def test_the_maps_axes_have_fixed_ranges_around_every_cell():
    """Fixed ranges: a star move (which the browser redraws without recomputing the chart) cannot
    change them, and every cell, marker and edge star lies inside them."""
    fig = _map(("raw", "standardized", "minmax"))
    lay = fig.spec["layout"]
    x = np.log10(np.geomspace(0.01, 1.5, 12))
    brick = np.diff(x).mean()
    for name in ("xaxis", "xaxis2", "xaxis3"):
        lo, hi = lay[name]["range"]
        assert lo <= x[0] - brick and hi >= x[-1] + brick and hi - lo <= x[-1] - x[0] + 4 * brick
    for name in ("yaxis", "yaxis2", "yaxis3"):
        assert lay[name]["range"] == [-0.5, 3.5]  # four rows, nothing cut, no empty band
    assert vf.with_current_setting(fig, 3, (0.5, 7)) is fig  # 7 is not a row: no star, the map as it is
