"""Chapter 4 page (pages/4_curse-of-batch-norm.py) under AppTest: it runs, every interaction
changes what is drawn, bad URL values give a message and a sane state, and every guided
experiment runs, changes the chart and says something true about what it shows.

The page trains with the real core (bn_core.experiments). Every AppTest of this file runs in
one process, so Streamlit's cache is shared between them, as between a class's sessions:
the defaults are trained once, and each test pays only for what its settings change.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import figure as chart
from tests.apptest import figures as charts
from tests.apptest import open_page
from tests.test_curse_figures import assert_caption_quotes_band, band_traces
from tests.test_network_figures import assert_all_finite, decode_arrays
from ui import curse as cu
from ui import curse_figures as cf

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/4_curse-of-batch-norm.py"
MAIN = "Test error vs batch size"
TITLES = (MAIN, "Batch mean and variance of one real unit", "Training vs inference", "Class-sorted batches",
          "Shuffled vs class-sorted", "Online learning", "Batch Renorm's corrections", "Cost per norm",
          "BatchNorm: which values")


def open_chapter(query: dict | None = None) -> AppTest:
    """Chapter 4 with URL ``query``, opened from the home page as a browser arrives."""
    at = open_page(PAGE, query, timeout=300)
    assert not at.exception, [e.value for e in at.exception]
    return at


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def data_of(spec: dict) -> list:
    """What a chart draws: every trace's name with its numbers, and the layout's shapes."""
    return [(t.get("name"), [a.round(6).tolist() for a in decode_arrays({k: t[k] for k in ("x", "y") if k in t})])
            for t in spec["data"]] + [json.dumps(spec["layout"].get("shapes", []), sort_keys=True)]


def sees(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "What to see" in m.value or m.value.startswith("**What to see")] + \
        [c.value for c in at.caption if "What to see" in c.value]


def mean_line(spec: dict, label: str) -> dict[int, float]:
    """batch size -> the mean test error [%] drawn for ``label`` on the main chart."""
    t = next(t for t in spec["data"] if t.get("name") == label)
    x, y = decode_arrays({"x": t["x"], "y": t["y"]})
    return {int(round(a)): float(b) for a, b in zip(x, y, strict=True)}


@pytest.fixture(scope="module")
def default_page() -> AppTest:
    return open_chapter()


# --------------------------------------------------------------------------- it runs


def test_defaults_draw_every_chart_finite_with_its_sentence(default_page):
    at = default_page
    titles = list(charts(at))
    for start in TITLES:
        assert any(t.startswith(start) for t in titles), (start, titles)
    for spec in charts(at).values():
        assert_all_finite(spec)
    assert len(sees(at)) >= 9, sees(at)
    assert not at.warning
    for p in cu.PARAMS:  # every control is in the link
        assert p.key in at.query_params, p.key
    main = chart(at, MAIN)
    names = {t.get("name") for t in main["data"]}
    for n in cf.NORMS:
        assert cf.NORM_LABEL[n] in names and f"{cf.NORM_LABEL[n]}: range over seeds" in names
    assert "BatchNorm, published" in names
    assert len(mean_line(main, "BatchNorm")) == len(cu.BATCH_SIZES) >= 6


def test_batch_one_refusals_show_the_layers_own_message(default_page):
    errors = [e.value for e in default_page.error]
    assert any("BatchNorm refuses a batch of one" in e and "BatchNorm1d cannot train on a batch of 1" in e
               for e in errors), errors
    assert any("Batch Renorm refuses" in e and "BatchRenorm1d cannot train on a batch of 1" in e for e in errors)


def test_show_the_code_and_downloads(default_page):
    code = "\n".join(c.value for c in default_page.code)
    assert "class BatchRenorm1d" in code and "def normalize(" in code and "def shared_mask(" in code
    labels = [b.proto.label for b in default_page.get("download_button")]
    assert len(labels) >= 6 and all("CSV" in lab for lab in labels)
    assert default_page.latex and len(default_page.latex) >= 8


def test_closing_table_uses_the_numbers_of_the_main_chart(default_page):
    frame = default_page.dataframe[0].value
    bn = frame.set_index("normalizer").loc["BatchNorm"]
    err2 = mean_line(chart(default_page, MAIN), "BatchNorm")[2]
    assert bn["test error at batch 2"] == f"{err2:.1f} %"
    assert bn["accuracy after one online pass"] == "cannot train"


def test_noisy_statistics_sentence_agrees_with_the_drawn_band(default_page):
    """The real unit as the page shows it: the what-to-see line quotes the variance band the chart
    draws (lower line above zero at every batch size, m = 2 included) and how much of the sampled
    statistics lies between the lines (the page's own cached record, shared in this process)."""
    spec = chart(default_page, "Batch mean and variance of one real unit")
    band = band_traces(spec)
    assert band[("var", "lo")][0][0] == "2" and np.all(band[("var", "lo")][1] > 0)
    text = next(t for t in sees(default_page) if "central 68 %" in t)
    assert_caption_quotes_band(cu.stats_record(cu.batch_stats_cached()), spec, text)
    assert "standard error" not in json.dumps(spec)

# --------------------------------------------------------------------------- interactions


def test_batch_size_moves_the_marker_and_retrains_the_batch_sections(default_page):
    at = open_chapter()
    before = {t: data_of(s) for t, s in charts(at).items()}
    at.select_slider(key="c4_batch").set_value(4)
    rerun(at)
    assert at.query_params["c4_batch"] == "4"
    after = {t: data_of(s) for t, s in charts(at).items()}
    main_b = next(v for t, v in before.items() if t.startswith(MAIN))
    main_a = next(v for t, v in after.items() if t.startswith(MAIN))
    assert main_a[-1] != main_b[-1], "the main chart's batch-size marker did not move"
    for start in ("Training vs inference", "Batch Renorm's corrections"):
        b = next(v for t, v in before.items() if t.startswith(start))
        a = next(v for t, v in after.items() if t.startswith(start))
        assert a != b, start
    assert any(t.startswith("Cost per norm") and "batch 4" in t for t in after)


def test_learning_rate_switch_changes_the_sweep(default_page):
    at = open_chapter({"c4_scale": 0})
    fixed = mean_line(chart(at, MAIN), "no normalization")
    scaled = mean_line(chart(default_page, MAIN), "no normalization")
    assert fixed != scaled
    assert any("at every batch size, so batch 2 takes 64× as many updates" in s for s in sees(at)), sees(at)  # names the confound


def chart_with(at: AppTest, part: str) -> dict:
    found = [s for t, s in charts(at).items() if part in t]
    assert len(found) == 1, (part, list(charts(at)))
    return found[0]


@pytest.mark.parametrize(("key", "kind", "value", "part"), [
    ("c4_axm", "radio", "group", "which values share"),
    ("c4_axg", "select_slider", 3, "GroupNorm (G = 3)"),
    ("c4_axc", "slider", 4, "which values share"),
    ("c4_axn", "slider", 3, "GroupNorm (G = 2)"),
    ("c4_rmax", "select_slider", 1.5, "Batch Renorm's corrections"),
    ("c4_dmax", "select_slider", 0.0, "Batch Renorm's corrections"),
    ("c4_rorder", "radio", "by_class", "Batch Renorm's corrections"),
    ("c4_sbatch", "select_slider", 64, "Class-sorted batches of"),
    ("c4_slr", "select_slider", 0.01, "Class-sorted batches of"),
    # lr 5.0 and 32 groups: the settings of test_a_diverging_learning_rate... and of
    # test_width_change... (which opens with 32 groups), so that each sweep trains once per
    # worker (tests/conftest.py keeps this file on one worker)
    ("c4_lr", "select_slider", 5.0, "Test error vs batch size"),
    ("c4_width", "select_slider", 32, "Test error vs batch size"),
    ("c4_groups", "select_slider", 32, "Test error vs batch size"),
])
def test_each_control_changes_its_chart(key, kind, value, part, default_page):
    # groups and the highlighted sample matter for GroupNorm's picture (BatchNorm's set is a channel)
    query = {"c4_axm": "group"} if part.startswith("GroupNorm") else {}
    at = open_chapter(query)
    before = chart_with(at, "which values share") if query else chart_with(default_page, part)
    getattr(at, kind)(key=key).set_value(value)
    rerun(at)
    after = chart_with(at, part)
    assert (data_of(after), after["layout"]["title"]["text"]) != (data_of(before), before["layout"]["title"]["text"])
    assert at.query_params[key] == cu.PARAM[key].encode(value)
    for spec in charts(at).values():
        assert_all_finite(spec)


def test_width_change_offers_only_divisors_and_keeps_groups_valid():
    at = open_chapter({"c4_groups": 32})
    at.select_slider(key="c4_width").set_value(16)
    rerun(at)
    groups = at.select_slider(key="c4_groups")
    assert list(groups.options) == [str(d) for d in cu.divisors(16)]
    assert 16 % int(at.session_state["c4_groups"]) == 0
    assert any("32 groups do not divide 16 units: GroupNorm now uses 16" in c.value for c in at.caption)


# --------------------------------------------------------------------------- bad input


BAD = ["garbage", "NaN", "1e309", "-7", "9" * 300, "x" * 3000, ""]


@pytest.mark.parametrize("key", [p.key for p in cu.PARAMS])
def test_bad_url_values_give_a_message_and_a_sane_state(key):
    at = open_chapter({key: "NaN"})
    assert at.warning, "no message for a bad link"
    text = "\n".join(w.value for w in at.warning)
    assert cu.PARAM[key].name in text
    for p in cu.PARAMS:
        value = at.session_state[p.key]
        assert p.parse(p.encode(value))[1] is None, (p.key, value)
    for spec in charts(at).values():
        assert_all_finite(spec)


@pytest.mark.parametrize("raw", BAD)
def test_garbage_batch_sizes_are_clamped_and_reported(raw):
    at = open_chapter({"c4_batch": raw, "c4_axc": raw})
    assert at.warning
    assert at.session_state["c4_batch"] in cu.BATCH_SIZES
    assert 0 <= at.session_state["c4_axc"] < cu.AX_CHANNELS


def test_groups_that_do_not_divide_the_width_are_clamped_and_reported():
    at = open_chapter({"c4_groups": 5, "c4_width": 64})
    text = "\n".join(w.value for w in at.warning)
    assert "5 does not divide the width 64" in text
    assert at.session_state["c4_groups"] == 4 and at.query_params["c4_groups"] == "4"


def test_unknown_parameters_are_dropped_and_named():
    at = open_chapter({"c4_nonsense": "1", "c4_batch": "32"})
    assert "c4_nonsense" not in at.query_params and at.query_params["c4_batch"] == "32"
    assert "c4_nonsense" in "\n".join(w.value for w in at.warning)


def test_a_diverging_learning_rate_is_reported_not_plotted_as_nan():
    at = open_chapter({"c4_lr": 5.0})
    for spec in charts(at).values():
        assert_all_finite(spec)
    main_text = sees(at)[0]  # the main chart's sentence comes first
    names = {t.get("name") for t in chart(at, MAIN)["data"]}
    assert ("diverged and stopped" in main_text) == any(str(n).endswith(": diverged") for n in names)
    if "diverged and stopped" in main_text:
        assert re.search(r"at step \d+", main_text)


# --------------------------------------------------------------------------- guided experiments


def _apply(exp) -> AppTest:
    """Open the defaults, then press the experiment's button in the sidebar."""
    at = open_chapter()
    buttons = [b for b in at.button if b.proto.label == exp.label]
    assert buttons, f"no button {exp.label!r}: {[b.proto.label for b in at.button]}"
    buttons[0].click()
    return rerun(at)


@pytest.mark.parametrize("exp", cu.EXPERIMENTS, ids=[e.label for e in cu.EXPERIMENTS])
def test_every_guided_experiment_runs_and_changes_the_page(exp, default_page):
    at = _apply(exp)
    for key, value in exp.settings.items():
        assert at.session_state[key] == value, key
    for spec in charts(at).values():
        assert_all_finite(spec)
    before = {t: data_of(s) for t, s in charts(default_page).items()}
    after = {t: data_of(s) for t, s in charts(at).items()}
    assert before != after, "the experiment did not change any chart"


def test_batch_size_2_note_is_true():
    at = open_chapter({"c4_batch": 2})
    main = chart(at, MAIN)
    bn, ln, gn = (mean_line(main, cf.NORM_LABEL[n]) for n in ("bn_before", "ln", "gn"))
    assert bn[2] >= 2.5 * max(ln[2], gn[2]), (bn[2], ln[2], gn[2])  # "several times"
    for line in (ln, gn):
        assert abs(line[2] - line[128]) <= 3.0  # "barely change"


def test_fixed_learning_rate_note_is_true():
    at = open_chapter({"c4_scale": 0, "c4_batch": 2})
    main = chart(at, MAIN)
    for n in cf.NORMS:
        line = mean_line(main, cf.NORM_LABEL[n])
        assert line[2] > 50.0 and line[2] > 5 * min(line.values()), (n, line)  # "loses most of its accuracy"


def test_class_sorted_note_is_true():
    exp = next(e for e in cu.EXPERIMENTS if e.label == "Class-sorted batches")
    at = open_page(PAGE, exp.query(cu.PARAMS), timeout=300)
    srt = chart(at, "Shuffled vs class-sorted")
    bars = {t["name"]: dict(zip(t["x"], decode_arrays({"y": t["y"]})[0], strict=True)) for t in srt["data"]}
    sorted_acc, shuffled_acc = bars["class-sorted batches"], bars["shuffled batches"]
    assert sorted_acc["BatchNorm"] < 0.5 * shuffled_acc["BatchNorm"]  # collapses
    for label in ("LayerNorm", "GroupNorm"):
        assert sorted_acc[label] >= 0.8 * shuffled_acc[label]  # keep most of theirs
    text = next(t for t in sees(at) if "Batch Renorm's test accuracy in evaluation mode" in t)
    assert "class-sorted batches of 32" in text
    brn, bn = (float(v) for v in re.search(r"is (\d+\.\d) %, \w[\w ]* BatchNorm's (\d+\.\d) %", text).groups())
    assert bn + 10.0 < brn < shuffled_acc["Batch Renorm"] - 10.0, (bn, brn)  # recovers only part


def test_batch_renorm_at_2_note_is_true():
    at = open_chapter({"c4_batch": 2, "c4_rmax": 5.0, "c4_dmax": 10.0})
    text = next(t for t in sees(at) if "Batch Renorm's test accuracy in evaluation mode" in t)
    brn, bn = (float(v) for v in re.search(r"is (\d+\.\d) %, \w[\w ]* BatchNorm's (\d+\.\d) %", text).groups())
    assert brn > bn + 10.0, text
    brn_128 = 100.0 - mean_line(chart(at, MAIN), "Batch Renorm")[128]
    assert brn < brn_128, (brn, brn_128)


def test_groupnorm_axes_note_is_true():
    rec = cu.axes_cached("group", 2, 0, 0)
    assert rec["count"] == 3 * rec["x"].shape[2] * rec["x"].shape[3]
    assert rec["mask"][0, :3].all() and not rec["mask"][0, 3:].any() and not rec["mask"][1:].any()
    assert np.isclose(rec["normalized"][0, :3].mean(), 0.0, atol=1e-9)


EXTREMES = [
    {"c4_batch": 2, "c4_width": 16, "c4_groups": 16, "c4_lr": 5.0, "c4_scale": 0, "c4_sbatch": 4, "c4_slr": 0.05,
     "c4_rmax": 10.0, "c4_dmax": 0.0, "c4_rorder": "by_class", "c4_axm": "instance", "c4_axn": 3, "c4_axc": 5},
    {"c4_batch": 128, "c4_width": 128, "c4_groups": 1, "c4_lr": 0.005, "c4_sbatch": 128, "c4_slr": 0.001,
     "c4_rmax": 1.0, "c4_dmax": 10.0, "c4_axm": "group", "c4_axg": 6},
]


@pytest.mark.parametrize("query", EXTREMES, ids=["smallest-and-largest-steps", "largest-and-smallest-steps"])
def test_widget_extremes_draw_finite_charts_with_their_sentences(query):
    at = open_chapter(query)
    assert not at.warning, [w.value for w in at.warning]  # every value is an allowed one
    for spec in charts(at).values():
        assert_all_finite(spec)
    assert len(sees(at)) >= 9
    for key, value in query.items():
        assert at.query_params[key] == cu.PARAM[key].encode(value)
