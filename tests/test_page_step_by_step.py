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
RUNNING = "Running statistics converge"


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
    """x values of the histogram traces of one stage (one list per feature)."""
    return [values(t.get("x")) for t in fig["data"]
            if t.get("type") == "histogram" and t["name"].startswith(stage_name)]


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
