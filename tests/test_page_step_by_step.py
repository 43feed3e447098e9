"""Chapter 2 page (AppTest): runs, reacts to its controls, survives bad input, restores from the URL."""

import base64
import math
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests import apptest
from tests.apptest import figure, figures

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/2_bn-step-by-step.py"
PIPELINE = "A mini-batch through the layer, per feature"
RUNNING = "Running statistics and the population"  # was "... converge ...": not true after 1 step


def open_page(query: dict | None = None) -> AppTest:
    at = apptest.open_page(PAGE, query, timeout=60)
    assert not at.exception, at.exception
    return at


def values(data) -> list:
    """A trace's data array as a list: Plotly sends NumPy arrays as base64 typed arrays."""
    if data is None:
        return []
    if isinstance(data, dict) and "bdata" in data:
        arr = np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"]))
        return arr.astype(np.float64).tolist()
    return list(data)


def stage_values(fig: dict, stage_name: str) -> list[list[float]]:
    """x values of the traces of one stage, one list per feature (histogram bars, or the dots
    of a dot plot for a small batch: one dot per sample)."""
    return [values(t.get("x")) for t in fig["data"]
            if t.get("type") in ("histogram", "scatter") and t["name"].startswith(stage_name)]


def latex_text(at: AppTest) -> str:
    return "\n".join(el.value for el in at.latex)


def all_numbers(fig: dict):
    for t in fig["data"]:
        for axis in ("x", "y"):
            for v in values(t.get(axis)):
                if v is not None:
                    yield v


def assert_finite_figures(at: AppTest) -> None:
    figs = figures(at)
    assert figs
    for title, fig in figs.items():
        assert all(math.isfinite(float(v)) for v in all_numbers(fig)), title


def test_page_runs_and_draws_every_chart():
    at = open_page()
    titles = list(figures(at))
    assert any(t.startswith(PIPELINE) for t in titles)
    assert any(t.startswith(RUNNING) for t in titles)
    assert len(titles) == 4
    assert not at.warning and not at.error
    assert_finite_figures(at)
    # the code expander shows the core's own source
    assert any("def forward" in c.value for c in at.code)
    assert any("def backward" in c.value for c in at.code)


def test_gamma_and_beta_change_the_output_histogram_and_the_numbers():
    at = open_page()
    y0 = stage_values(figure(at, PIPELINE), "output y")
    xhat0 = stage_values(figure(at, PIPELINE), "normalized")
    assert r"1 \cdot" in latex_text(at)
    at.slider(key="c2_gamma").set_value(2.5).run()
    assert not at.exception
    y1 = stage_values(figure(at, PIPELINE), "output y")
    assert y1 != y0
    assert stage_values(figure(at, PIPELINE), "normalized") == xhat0  # x̂ does not depend on γ
    assert r"2.5 \cdot" in latex_text(at)
    at.slider(key="c2_beta").set_value(-1.5).run()
    y2 = stage_values(figure(at, PIPELINE), "output y")
    assert y2 != y1
    assert "- 1.5 =" in latex_text(at)
    # y = γ x̂ + β, read back from the figure
    for xs, ys in zip(xhat0, y2, strict=True):
        assert all(math.isclose(2.5 * a - 1.5, b, abs_tol=1e-9) for a, b in zip(xs, ys, strict=True))


def test_batch_size_changes_what_is_drawn_and_the_substituted_numbers():
    at = open_page()
    before = stage_values(figure(at, PIPELINE), "input x")
    text_before = latex_text(at)
    assert all(len(xs) == 32 for xs in before)
    at.slider(key="c2_batch").set_value(200).run()
    assert not at.exception
    after = stage_values(figure(at, PIPELINE), "input x")
    assert all(len(xs) == 200 for xs in after)
    assert "m = 200" in latex_text(at) and latex_text(at) != text_before


def test_batch_of_one_explains_and_falls_back_to_evaluation_mode():
    at = open_page()
    at.slider(key="c2_batch").set_value(1).run()
    assert not at.exception
    text = " ".join(w.value for w in at.warning)
    assert "cannot train on a batch of one sample" in text
    assert "no batch variance" in text  # the core's own ValueError message, quoted
    assert "Evaluation mode still works" in text
    assert all(len(xs) == 1 for xs in stage_values(figure(at, PIPELINE), "input x"))
    assert "running" in latex_text(at)
    assert_finite_figures(at)


def test_evaluation_mode_uses_the_running_statistics():
    at = open_page()
    at.radio(key="c2_mode").set_value("evaluation").run()
    assert not at.exception
    assert any("running" in i.value for i in at.info)
    assert r"\text{running\_mean} =" in latex_text(at)


def test_momentum_and_steps_change_the_running_statistics_chart():
    at = open_page()
    r0 = figure(at, RUNNING)
    at.select_slider(key="c2_momentum").set_value(0.01).run()
    r1 = figure(at, RUNNING)
    assert r1["layout"]["title"]["text"] != r0["layout"]["title"]["text"]
    assert values(r1["data"][0]["y"]) != values(r0["data"][0]["y"])
    at.slider(key="c2_steps").set_value(50).run()
    r2 = figure(at, RUNNING)
    assert len(values(r2["data"][0]["x"])) == 51


def test_digits_source_runs_and_shift_scale_do_not_change_x_hat():
    at = open_page({"c2_source": "digits", "c2_shift": "0", "c2_scale": "1"})
    assert at.session_state["c2_source"] == "digits"
    xhat0 = stage_values(figure(at, PIPELINE), "normalized")
    at.slider(key="c2_shift").set_value(20.0).run()
    at.select_slider(key="c2_scale").set_value(10.0).run()
    assert not at.exception
    xhat1 = stage_values(figure(at, PIPELINE), "normalized")
    assert stage_values(figure(at, PIPELINE), "input x") != []
    for a, b in zip(xhat0, xhat1, strict=True):  # batch norm undoes shift and scale (up to eps)
        assert all(math.isclose(u, v, rel_tol=1e-3, abs_tol=1e-3) for u, v in zip(a, b, strict=True))


def test_url_restores_the_state():
    query = {"c2_source": "digits", "c2_batch": "64", "c2_features": "3", "c2_gamma": "2.5",
             "c2_beta": "-1", "c2_eps": "0.001", "c2_mode": "evaluation", "c2_momentum": "0.3",
             "c2_steps": "40", "c2_seed": "7", "c2_shift": "-2.5", "c2_scale": "0.5"}
    at = open_page(query)
    assert not at.warning
    assert at.slider(key="c2_batch").value == 64
    assert at.slider(key="c2_features").value == 3
    assert at.slider(key="c2_gamma").value == pytest.approx(2.5)
    assert at.slider(key="c2_beta").value == pytest.approx(-1.0)
    assert at.select_slider(key="c2_eps").value == pytest.approx(1e-3)
    assert at.radio(key="c2_mode").value == "evaluation"
    assert at.select_slider(key="c2_momentum").value == pytest.approx(0.3)
    assert at.slider(key="c2_steps").value == 40
    assert at.number_input(key="c2_seed").value == 7
    assert len(stage_values(figure(at, PIPELINE), "input x")) == 3
    assert len(values(figure(at, RUNNING)["data"][0]["x"])) == 41
    assert at.query_params["c2_gamma"] == "2.5"


def test_moving_a_widget_updates_the_url():
    at = open_page()
    at.slider(key="c2_gamma").set_value(1.7).run()
    at.select_slider(key="c2_momentum").set_value(0.03).run()
    assert at.query_params["c2_gamma"] == "1.7"
    assert at.query_params["c2_momentum"] == "0.03"


#: Two links full of bad values (each key once per link): raw URL text -> value the page must use.
BAD_LINKS = [
    {"c2_batch": ("abc", 32), "c2_gamma": ("inf", 3.0), "c2_eps": ("0", 1e-8), "c2_momentum": ("-3", 0.001),
     "c2_steps": ("inf", 2000), "c2_features": ("99", 4), "c2_shift": ("1e308", 50.0),
     "c2_scale": ("0", 0.01), "c2_source": ("mnist", "synthetic"), "c2_mode": ("<script>", "training"),
     "c2_seed": ("-1", 0), "c2_beta": ("nan", 0.0)},
    {"c2_batch": ("1e9", 512), "c2_gamma": ("1.23", 1.2), "c2_eps": ("NaN", 1e-5), "c2_momentum": ("7", 1.0),
     "c2_steps": ("-5", 1), "c2_features": ("-2", 1), "c2_shift": ("-inf", -50.0), "c2_scale": ("1e9", 100.0),
     "c2_seed": ("2.5", 2), "c2_beta": ("-1e308", -5.0)},
]


@pytest.mark.parametrize("link", BAD_LINKS)
def test_bad_url_values_are_clamped_and_each_is_reported(link):
    at = open_page({k: raw for k, (raw, _) in link.items()})
    assert len(at.warning) == 1, "one warning listing every adjusted value"
    text = at.warning[0].value
    assert "adjusted" in text
    assert text.count("\n- ") == len(link)  # one bullet per bad value
    for key, (_, expected) in link.items():
        value = at.session_state[key]
        assert value == (pytest.approx(expected) if isinstance(expected, float) else expected), key
    assert_finite_figures(at)


@pytest.mark.parametrize(
    "extremes",
    [
        {"c2_batch": "512", "c2_features": "4", "c2_shift": "50", "c2_scale": "100", "c2_gamma": "-3",
         "c2_beta": "5", "c2_eps": "10", "c2_momentum": "1", "c2_steps": "2000", "c2_seed": "10000"},
        {"c2_batch": "2", "c2_features": "1", "c2_shift": "-50", "c2_scale": "0.01", "c2_gamma": "0",
         "c2_beta": "-5", "c2_eps": "1e-8", "c2_momentum": "0.001", "c2_steps": "1", "c2_source": "digits"},
        {"c2_batch": "1", "c2_mode": "evaluation", "c2_steps": "1", "c2_source": "digits"},
    ],
)
def test_every_extreme_gives_a_clear_finite_page(extremes):
    at = open_page(extremes)
    assert not at.warning or all("adjusted" not in w.value for w in at.warning)
    assert_finite_figures(at)


# ---------------------------------------------------------------- the page's pure helpers


def test_csv_download_holds_the_batch_before_and_after():
    from bn_core import walkthrough
    from ui import stepbystep as sbs

    x = walkthrough.make_batch("synthetic", 5, 2, 1.0, 2.0, seed=3)
    stages = walkthrough.pass_batch(x, 2.0, 0.5)
    lines = sbs.batch_csv(stages).strip().splitlines()
    assert lines[0] == "sample,x_1,x_hat_1,y_1,x_2,x_hat_2,y_2"
    table = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    assert table.shape == (5, 7)
    assert np.allclose(table[:, 1], x[:, 0]) and np.allclose(table[:, 4], x[:, 1])
    assert np.allclose(table[:, 3], 2.0 * table[:, 2] + 0.5)


def test_figures_drop_non_finite_values():
    from ui import stepbystep as sbs

    x = np.array([[1.0, np.nan], [2.0, 3.0], [np.inf, 4.0]])
    stages = {"x": x, "x_hat": x, "y": x, "mean": np.array([1.5, np.nan])}
    fig = sbs.pipeline_figure(stages).to_dict()
    assert all(math.isfinite(v) for v in all_numbers(fig))
    assert [len(v) for v in stage_values(fig, "input x")] == [2, 2]
    hist = {"step": np.arange(3), "running_mean": np.array([[0.0], [np.nan], [1.0]]),
            "running_var": np.array([[1.0], [np.inf], [2.0]]), "pop_mean": np.array([np.nan]),
            "pop_var": np.array([2.0]), "eval_gap": np.array([[1.0], [np.nan], [0.5]])}
    for f in (sbs.running_stats_figure(hist, 0.1), sbs.eval_gap_figure(hist),
              sbs.train_vs_eval_scatter(x, x, x, 1, 2)):
        d = f.to_dict()
        assert all(math.isfinite(v) for v in all_numbers(d))
        assert d["layout"]["title"]["text"] and d["layout"]["xaxis"]["title"]["text"]


@pytest.mark.parametrize(("v", "text"), [(3.21, "3.21"), (-0.5, "-0.5"), (1e-5, r"1\times 10^{-5}"),
                                         (float("nan"), r"\text{undefined}")])
def test_numbers_in_formulas(v, text):
    from ui import stepbystep as sbs

    assert sbs.fmt(v) == text


def test_signs_in_formulas_read_naturally():
    from ui import stepbystep as sbs

    assert sbs.minus(3.0) == "- 3" and sbs.minus(-3.0) == "+ 3"
    assert sbs.plus(2.0) == "+ 2" and sbs.plus(-2.0) == "- 2"
    assert sbs.paren(-0.5) == "(-0.5)" and sbs.paren(0.5) == "0.5"


# ---------------------------------------------------------------- issue 10 items 13-14, issue 9 (guided)


def page_text(at: AppTest) -> str:
    """Everything the page says in words: markdown, captions, latex, alerts and widget labels."""
    parts = [el.value for el in (*at.markdown, *at.caption, *at.latex, *at.info, *at.warning)]
    parts += [w.label for w in (*at.slider, *at.select_slider, *at.radio)]
    return "\n".join(str(p) for p in parts)


def see_lines(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "What to see" in m.value]


def xhat_table(at: AppTest):
    return at.dataframe[0].value


def _grid_stages():
    """The page's settings grid (extremes included) as (stages, eps, gamma, beta)."""
    from bn_core import walkthrough

    for source in ("synthetic", "digits"):
        for m in (1, 2, 3, 32, 512):
            for eps in (1e-8, 1e-5, 1.0, 10.0):
                for scale in (0.01, 2.0, 100.0):
                    x = walkthrough.make_batch(source, m, 2, 3.0, scale, seed=1)
                    run = walkthrough.running_stats_demo(source, max(m, 2), 2, 3.0, scale, 0.1, 5, 1, eps=eps)
                    for training in ((True, False) if m >= 2 else (False,)):
                        kw = {} if training else {"running_mean": run["running_mean"][-1],
                                                  "running_var": run["running_var"][-1]}
                        yield walkthrough.pass_batch(x, -3.0, 5.0, eps, training=training, **kw), eps, -3.0, 5.0


def test_xhat_sentence_follows_the_data_over_the_settings_grid():
    """Item 13: the "what to see" line says variance 1 exactly when every feature has it."""
    from ui import stepbystep as sbs

    n = 0
    for stages, eps, gamma, beta in _grid_stages():
        text = sbs.describe_pipeline(stages, eps, gamma, beta)
        x_hat = stages["x_hat"]
        if x_hat.shape[0] < 2:
            assert "One sample" in text
            continue
        var = x_hat.var(axis=0)
        unit = bool(np.all(np.abs(var - 1.0) <= sbs.UNIT_VARIANCE_TOL))
        assert ("variance 1 " in text) == (unit and stages["training"]), (text, var)
        if stages["training"] and not unit:
            assert sbs._span(var) in text and "not 1" in text
        if not stages["training"]:
            assert "running statistics" in text and sbs._span(var, 2) in text
        assert sbs._span(stages["y"].std(axis=0)) in text
        n += 1
    assert n > 100


def test_large_eps_page_does_not_claim_unit_variance():
    """Item 13: with ε = 10 the page showed "variance σ²_B/(σ²_B + ε) ≈ 1 ... whatever came in"
    beside a table with a variance of 1e-7 (fails on the old page)."""
    at = open_page({"c2_eps": "10", "c2_scale": "0.01"})
    var = xhat_table(at)["variance of x̂"].to_numpy()
    assert np.all(var < 1e-3)
    text = page_text(at)
    assert "≈ 1" not in text and "variance 1 " not in text
    line = see_lines(at)[0]  # the line under the pipeline chart
    assert "not 1" in line and f"{var.min():.3g}" in line and f"{var.max():.3g}" in line


def test_xhat_axis_names_the_statistics_it_was_divided_by():
    """Item 13: in evaluation mode the x̂ axis said "batch std. deviations" (fails on the old page)."""
    for mode, word in (("training", "σ²_B"), ("evaluation", "running var")):
        at = open_page({"c2_mode": mode})
        every_axis = [v.get("title", {}).get("text", "") for f in figures(at).values()
                      for k, v in f["layout"].items() if k.startswith(("xaxis", "yaxis"))]
        assert not any("batch std" in t for t in every_axis), every_axis
        fig = figure(at, PIPELINE)
        titles = [v["title"]["text"] for k, v in fig["layout"].items()
                  if k.startswith("xaxis") and v.get("title", {}).get("text", "").startswith("x̂")]
        assert titles and all(word in t for t in titles), (mode, titles)
        assert not any("batch std" in t for t in titles)


def test_batch_size_and_momentum_have_distinct_symbols():
    """Item 13: m was the batch size in steps 1-3 and the momentum later (fails on the old page)."""
    at = open_page()
    text = page_text(at)
    for momentum_as_m in ("momentum m", "(1-m)", "(1 − m)", "(1 - m)", "+ m\\,", "1-m)"):
        assert momentum_as_m not in text, momentum_as_m
    assert "momentum ρ" in text and r"\rho" in text
    assert "batch size m" in text


def _panels(fig: dict):
    """(trace, its x axis) for every stage trace of the pipeline figure."""
    for t in fig["data"]:
        if t.get("name", "").startswith(("input x", "normalized", "output y")):
            axis = fig["layout"]["xaxis" + t.get("xaxis", "x")[1:]]
            yield t, axis


@pytest.mark.parametrize("query", [{"c2_batch": "2"}, {"c2_scale": "0.01"}, {"c2_batch": "1"},
                                   {"c2_batch": "2", "c2_scale": "0.01", "c2_features": "4"},
                                   {"c2_batch": "512", "c2_scale": "0.01", "c2_shift": "50"}])
def test_small_batches_and_tiny_spreads_fill_every_panel(query):
    """Item 14: a batch of 2 or a tiny spread left panels empty on a shared x axis, and one sample
    was a bar from 0 to 1 (fails on the old page: no panel had its own range)."""
    at = open_page(query)
    fig = figure(at, PIPELINE)
    m = int(query.get("c2_batch", 32))
    seen = 0
    for t, axis in _panels(fig):
        xs = np.array(values(t["x"]))
        assert xs.size == m
        lo, hi = axis["range"]
        assert np.all((xs >= lo) & (xs <= hi)), (t["name"], lo, hi, xs)
        span = xs.max() - xs.min()
        if span > 0:  # the data fill a visible part of the panel, not a sliver
            assert span >= 0.05 * (hi - lo) * 0.9, (t["name"], span, hi - lo)
        if m <= 40:  # few samples: one dot per sample, stacked up to the bin's count
            assert t["type"] == "scatter" and t["mode"] == "markers"
            ys = np.array(values(t["y"]))
            assert ys.min() == 1 and ys.max() <= m
        seen += 1
    assert seen == 3 * int(query.get("c2_features", 2))


def test_dot_heights_count_the_samples_in_each_bin():
    from ui import stepbystep as sbs

    v = np.array([0.1, 0.15, 0.9, 0.12, 0.95])
    h = sbs.dot_heights(v, 0.0, 1.0, n_bins=10)
    assert h.tolist() == [1, 2, 1, 3, 2]


def test_batch_of_one_shows_the_mode_it_uses_and_keeps_the_choice():
    """Item 14: at batch 1 the radio said "training" while the page showed evaluation mode
    (fails on the old page)."""
    at = open_page({"c2_batch": "1"})
    shown = [r for r in at.radio if r.label == "mode"]
    assert len(shown) == 1 and shown[0].value == "evaluation" and shown[0].disabled
    assert at.session_state["c2_mode"] == "training"  # what the user asked for is kept
    at.slider(key="c2_batch").set_value(32).run()
    assert not at.exception
    assert at.radio(key="c2_mode").value == "training" and not at.radio(key="c2_mode").disabled
    assert at.query_params["c2_mode"] == "training"


def _check_batch_of_two(at):
    for t, _ in _panels(figure(at, PIPELINE)):
        if t["name"].startswith("normalized"):
            xs = np.array(values(t["x"]))
            assert xs.size == 2 and np.isclose(xs[0], -xs[1]) and 0 < np.abs(xs[0]) <= 1.0


def _check_large_eps(at):
    table = xhat_table(at)
    var_b = table["variance used: σ²_B (batch, biased)"].to_numpy()
    assert np.all(var_b < 10.0)
    assert 4 / 1.6 < var_b[0] < 4 * 1.6 and 1 / 1.6 < var_b[1] < 1 * 1.6  # "about 4 and 1"
    assert np.all(table["variance of x̂"].to_numpy() < 0.5)


def _check_eval_after_five(at):
    assert round(0.9 ** 5, 2) == 0.59
    table = xhat_table(at)
    mean, var = table["mean of x̂"].to_numpy(), table["variance of x̂"].to_numpy()
    assert np.max(np.abs(mean)) > 0.3 or np.max(np.abs(var - 1)) > 0.3


def _check_shifted_digits(at):
    from bn_core import walkthrough

    x = walkthrough.make_batch("digits", 32, 2, 0.0, 1.0, seed=0)
    ref = walkthrough.pass_batch(x, 1.0, 0.0, 1e-5)["x_hat"]
    shown = [np.array(values(t["x"])) for t, _ in _panels(figure(at, PIPELINE)) if t["name"].startswith("normal")]
    inputs = [np.array(values(t["x"])) for t, _ in _panels(figure(at, PIPELINE)) if t["name"].startswith("input")]
    assert min(abs(np.mean(v)) for v in inputs) > 5  # far from 0
    for j, v in enumerate(shown):
        assert np.allclose(v, ref[:, j], atol=1e-3)


NOTE_CHECKS = {"A batch of 2": _check_batch_of_two, "ε = 10": _check_large_eps,
               "Evaluation mode after 5 steps": _check_eval_after_five,
               "Real activations, shifted and scaled": _check_shifted_digits}


def test_every_experiment_has_a_check():
    from ui import stepbystep as sbs

    assert 3 <= len(sbs.EXPERIMENTS) <= 5
    assert [e.label for e in sbs.EXPERIMENTS] == list(NOTE_CHECKS)


@pytest.mark.parametrize("i", range(4))
def test_guided_experiment_runs_changes_the_view_and_its_note_holds(i):
    from ui import stepbystep as sbs

    e = sbs.EXPERIMENTS[i]
    at = open_page()
    before = figure(at, PIPELINE)
    at.button(key=f"_guided_c2_{i}").click().run()
    assert not at.exception, [x.value for x in at.exception]
    for key, value in e.settings.items():
        assert at.session_state[key] == value and at.query_params[key] == sbs.PARAMS[
            [p.key for p in sbs.PARAMS].index(key)].encode(value)
    assert figure(at, PIPELINE)["data"] != before["data"]
    assert any(e.look_for in el.value for el in at.info)  # the note is shown with the view
    NOTE_CHECKS[e.label](at)
    assert_finite_figures(at)
