"""Chapter 5's figures and captions: every number a caption states is read back from its
chart, over the grid of settings the page allows (extremes included), and no NaN or inf ever
reaches a chart (also for a diverged run with NaN in its history)."""

from __future__ import annotations

import copy
import itertools
import re

import numpy as np
import pytest

from bn_core import recurrent as rec
from tests.test_network_figures import assert_all_finite, decode_arrays
from ui import sequence as seq
from ui import sequence_figures as sf

GRID = list(itertools.product((1, 2, seq.MAX_BATCH), (1, 2, seq.MAX_LENGTH), tuple(sf.POLICY_LABEL)))


def small(batch: int, T: int, policy: str, **kw) -> seq.Settings:
    return seq.Settings(batch=batch, length=T, policy=policy, steps=12, hidden=6, **kw)


def build(s: seq.Settings, task_extra: dict | None = None) -> sf.Comparison:
    """seq.comparison without Streamlit's cache: the same configs, trained directly."""
    out = {}
    errors = {}
    for task in ("digits", "length"):
        out[task] = {}
        for norm in sf.NORM_ORDER:
            try:
                out[task][norm] = rec.train(s.config(task, norm, **(task_extra or {})))
            except ValueError as exc:
                errors[norm] = str(exc)
    optimal = np.array([rec.optimal_length_accuracy(L, n_mc=2000) for L in range(1, 3 * s.length + 1)])
    return sf.Comparison(out["digits"], out["length"], errors, s.length, s.policy, optimal)


@pytest.fixture(scope="module")
def grid():
    return {key: build(small(*key)) for key in GRID}


def spec_of(fig) -> dict:
    return fig.to_plotly_json()


def trace(spec, name, axis="x"):
    for t in spec["data"]:
        if t.get("name") == name and t.get("xaxis", "x") == axis:
            return decode_arrays({"x": t["x"]})[0], decode_arrays({"y": t["y"]})[0]
    return None


def pct(v: float) -> str:
    return f"{100 * v:.1f} %"


@pytest.mark.parametrize("key", GRID)
def test_comparison_caption_matches_its_chart(grid, key):
    cmp = grid[key]
    spec = spec_of(sf.fig_comparison(cmp))
    assert_all_finite(spec)
    text = seq.describe_comparison(cmp)
    T = cmp.train_length
    for norm in sf.NORM_ORDER:
        label = sf.NORM_LABEL[norm]
        left = trace(spec, label, "x")
        if left is None:
            accuracies = text.split("final test accuracy:")[-1].split(";")[0]
            assert norm in cmp.errors and f"{label} " not in accuracies
            continue
        assert f"{label} {pct(left[1][-1])}" in text
        right = trace(spec, label, "x2")
        x, y = right
        a, b = y[list(x).index(T)], y[list(x).index(3 * T)]
        verb = "rises" if b - a > 0.005 else "falls" if b - a < -0.005 else "stays"
        assert f"{label} {verb} from {pct(a)} at T = {T} to {pct(b)} at 3T = {3 * T}" in text
    if key[0] == 1:
        assert "BN per time step could not train" in text
        assert "BatchNorm1d cannot train on a batch of 1" in cmp.errors["bn"]
    best = re.search(r"best: ([^)]+)\)", text)
    finals = {sf.NORM_LABEL[n]: trace(spec, sf.NORM_LABEL[n], "x")[1][-1]
              for n in sf.NORM_ORDER if trace(spec, sf.NORM_LABEL[n], "x") is not None}
    top = max(finals.values())
    if top <= 0.15:  # nobody learned: no "best" is named among runs at chance
        assert best is None and "none learned" in text
    elif sum(v >= top - 0.0005 for v in finals.values()) > 1:
        assert best is None and "a tie at the top" in text
    else:
        assert best and finals[best.group(1)] == top


@pytest.mark.parametrize("T", [1, 2, 3, 4, 5, 8, seq.MAX_LENGTH])
@pytest.mark.parametrize("policy", tuple(sf.POLICY_LABEL))
def test_unrolled_diagram_and_caption_agree(T, policy):
    spec = spec_of(sf.fig_unrolled(T, policy))
    texts = [a["text"] for a in spec["layout"]["annotations"]]
    bn_boxes = [t for t in texts if t.endswith(("own set", "reused", "fresh", "μ, σ²"))]
    cols = sf.unrolled_columns(T)
    drawn = [c for c in cols if c]
    assert drawn[0] == 1 and drawn[-1] == 3 * T and T in drawn
    assert len(bn_boxes) == len(drawn)
    own = [t for t in bn_boxes if t.endswith("own set")]
    assert len(own) == sum(1 for c in drawn if c <= T)
    beyond_label = {"last": "reused", "fresh": "fresh", "batch": "μ, σ²"}[policy]
    assert all(t.endswith(beyond_label) for t in bn_boxes if not t.endswith("own set"))
    caption = seq.describe_unrolled(T, policy)
    assert caption.startswith(f"BN keeps {T} set")
    assert f"steps {T + 1} to {3 * T}" in caption
    assert {"last": f"step {T}", "fresh": "fresh", "batch": "test batch"}[policy] in caption
    assert f"trained length T = {T}" in " ".join(texts)


@pytest.mark.parametrize("key", GRID)
def test_running_means_caption_matches_its_chart(grid, key):
    cmp = grid[key]
    spec = spec_of(sf.fig_running_means(cmp.digits.get("bn"), cmp.length.get("bn"), cmp.train_length))
    assert_all_finite(spec)
    text = seq.describe_running_means(cmp)
    if "bn" not in cmp.digits:
        assert "did not train" in text
        return
    for axis, name in (("x", "digits"), ("x2", "loudest-channel task")):
        m = re.search(rf"on the {name} unit (\d+)'s running mean differs by ([\d.]+) between its (\d+) "
                      r"time steps \(the least-varying of units 1-4 by ([\d.]+)\)", text, re.I)
        assert m, text
        ranges = {}
        for t in spec["data"]:
            if t.get("xaxis", "x") == axis and t["name"].startswith("unit") and "beyond" not in t["name"]:
                y = decode_arrays({"y": t["y"]})[0]
                ranges[int(t["name"].split()[1])] = y.max() - y.min()
                steps = len(y)
        unit = int(m.group(1))
        assert f"{ranges[unit]:.2f}" == m.group(2) and ranges[unit] == max(ranges.values())
        assert f"{min(ranges.values()):.2f}" == m.group(4) and int(m.group(3)) == steps
    # the continuation beyond T follows the policy
    beyond = [t for t in spec["data"] if t.get("xaxis") == "x2" and "beyond" in t["name"]]
    if cmp.policy == "batch":
        assert not beyond and "nothing is stored" in text
    else:
        assert beyond
        for t in beyond:
            y = decode_arrays({"y": t["y"]})[0]
            assert np.all(y[1:] == (0 if cmp.policy == "fresh" else y[0]))


@pytest.mark.parametrize("key", GRID)
def test_step_spread_caption_matches_its_chart(grid, key):
    cmp = grid[key]
    spec = spec_of(sf.fig_step_spread(cmp))
    assert_all_finite(spec)
    text = seq.describe_step_spread(cmp)
    for norm in sf.NORM_ORDER:
        tr = trace(spec, sf.NORM_LABEL[norm], "x")
        if tr is None:
            assert f"{sf.NORM_LABEL[norm]} from" not in text
            continue
        x, y = tr
        lo, hi = int(np.argmin(y)), int(np.argmax(y))
        assert (f"{sf.NORM_LABEL[norm]} from {y[lo]:.2f} (row {int(x[lo])}) to {y[hi]:.2f} "
                f"(row {int(x[hi])})") in text


@pytest.mark.parametrize("batch, T, min_len", [(2, 1, 1), (4, 8, 1), (seq.MAX_BATCH, 5, 3),
                                                 (8, seq.MAX_LENGTH, 1), (1, 4, 1)])
def test_active_caption_matches_its_chart(batch, T, min_len):
    s = small(batch, T, "last", variable=True, min_length=min_len)
    results = {}
    for norm in sf.NORM_ORDER:
        try:
            results[norm] = rec.train(s.config("length", norm, min_length=min_len))
        except ValueError:
            pass
    spec = spec_of(sf.fig_active(results))
    assert_all_finite(spec)
    assert_all_finite(spec_of(sf.fig_active_accuracy(results, T)))
    text = seq.describe_active(results, s)
    _, mean = trace(spec, "mean over training batches")
    _, fewest = trace(spec, "fewest in any batch")
    assert f"step 1 averages over {mean[0]:.1f} sequences and step {T} over {mean[-1]:.1f}" in text
    assert f"(fewest in any batch: {int(fewest[-1])})" in text
    below = np.flatnonzero(mean < 2)
    if below.size:
        assert f"from step {below[0] + 1} on the average is below 2" in text
    else:
        assert "below 2" not in text
    if "bn" not in results:
        assert "running statistics instead" not in text
    acc_spec = spec_of(sf.fig_active_accuracy(results, T))
    acc_text = seq.describe_length_accuracy(results, T)
    for norm in results:
        x, y = trace(acc_spec, sf.NORM_LABEL[norm])
        a, b = y[list(x).index(T)], y[list(x).index(3 * T)]
        verb = "rises" if b - a > 0.005 else "falls" if b - a < -0.005 else "stays"
        assert f"{sf.NORM_LABEL[norm]} {verb} from {pct(a)} at T = {T} to {pct(b)}" in acc_text


def test_sweep_caption_matches_its_chart():
    base = small(2, 4, "last").config("digits", "none")
    sweep = rec.batch_sweep(base, (1, 2, 16))
    spec = spec_of(sf.fig_batch_sweep(sweep))
    assert_all_finite(spec)
    text = seq.describe_sweep(sweep)
    for norm in sf.NORM_ORDER:
        x, y = trace(spec, sf.NORM_LABEL[norm])
        assert f"{sf.NORM_LABEL[norm]} {pct(y[0])} at batch {int(x[0])}" in text
    assert trace(spec, "BN per time step")[0][0] == 2  # batch 1 could not train: not drawn


def test_diverged_and_nan_histories_never_reach_a_chart(grid):
    cmp = copy.deepcopy(grid[(2, 2, "last")])
    for results in (cmp.digits, cmp.length):
        res = results["none"]
        res.diverged_at = 9
        res.history["test_acc"][-1] = np.nan
        res.history["acc_by_length"][-1] = np.nan
        res.history["running_mean"][:] = np.nan
    spec = spec_of(sf.fig_comparison(cmp))
    assert_all_finite(spec)
    assert any(t.get("marker", {}).get("symbol") == "x" for t in spec["data"])
    text = seq.describe_comparison(cmp)
    assert "no normalization diverged at step 9" in text
    assert_all_finite(spec_of(sf.fig_running_means(cmp.digits["none"], cmp.length["none"], 2)))
    for results in (cmp.digits, cmp.length):  # BN's statistics all NaN: no numbers claimed
        results["bn"].history["running_mean"][:] = np.nan
    assert_all_finite(spec_of(sf.fig_running_means(cmp.digits["bn"], cmp.length["bn"], 2)))
    assert "did not train" in seq.describe_running_means(cmp)


def test_every_chart_has_titles_and_a_legend(grid):
    cmp = grid[(2, 2, "last")]
    for fig in (sf.fig_comparison(cmp), sf.fig_unrolled(2, "last"),
                sf.fig_running_means(cmp.digits["bn"], cmp.length["bn"], 2)):
        spec = spec_of(fig)
        lay = spec["layout"]
        assert lay["title"]["text"]
        assert any(k.startswith("xaxis") and lay[k].get("title", {}).get("text") for k in lay)
        assert sum(1 for t in spec["data"] if t.get("showlegend", True) and t.get("name")) >= 3


def test_unrolled_diagram_in_lecture_mode_keeps_its_box_labels_inside_the_boxes():
    """In lecture mode at 1280 x 720 the 11 px labels inside the BN and LN boxes grew to 19 px:
    "per sample" ran into its neighbours and "own set" out of its box, and the x-axis title ran
    into the legend's first row."""
    from ui import page

    assert sf.BOX_LABEL == page.FIXED_SIZE
    fig = sf.fig_unrolled(8, "last")
    layout = page.lecture_spec(fig.to_plotly_json(), True)["layout"]
    boxed = [a for a in layout["annotations"] if a.get("name") == sf.BOX_LABEL]
    assert {"per sample", "own set", "reused"} <= {a["text"].rsplit(">", 1)[-1] for a in boxed}
    assert all(a["font"]["size"] <= 12 for a in boxed)
    others = [a for a in layout["annotations"] if a not in boxed and a.get("text")]
    assert all(a["font"]["size"] >= page.FONT[True][0] - 2 for a in others)  # the rest still grow
    base = page.FONT[True][0]
    plot_h = layout["height"] - layout["margin"].get("t", 100) - layout["margin"]["b"]
    assert -layout["legend"]["y"] * plot_h >= 2.5 * base  # below the (tick-less) axis title


def test_two_panel_figures_get_a_wider_gap_and_centred_panel_titles_in_lecture_mode():
    from ui import page

    fig = sf.fig_running_means(None, None, 8)
    normal, big = page.lecture_spec(fig.to_plotly_json(), False), page.lecture_spec(fig.to_plotly_json(), True)
    for spec, gap in ((normal, sf.PANEL_GAP), (big, sf.LECTURE_PANEL_GAP)):
        left, right = spec["layout"]["xaxis"]["domain"], spec["layout"]["xaxis2"]["domain"]
        assert right[0] - left[1] == pytest.approx(gap) and left[0] == 0 and right[1] == 1
        titles = {a["text"]: a["x"] for a in spec["layout"]["annotations"] if a.get("xref") == "paper"
                  and a["text"].startswith(("Sequential", "Loudest"))}
        assert sorted(titles.values()) == pytest.approx([sum(left) / 2, sum(right) / 2])
    # the notes inside the panels ("no batch-norm statistics") stay where they were
    notes = [a for a in big["layout"]["annotations"] if "no batch-norm" in a["text"]]
    assert len(notes) == 2 and {a["xref"] for a in notes} == {"x domain", "x2 domain"}
