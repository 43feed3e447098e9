"""Chapter 3 page (pages/3_bn-in-network.py) under AppTest: interactions, URL state, bad input.

Runs use a few training steps set through the URL (``c3_steps``) so the whole file stays fast;
the science itself is tested in tests/test_train.py and tests/test_experiments.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import figure, figures, open_page
from tests.test_network_figures import assert_all_finite, decode_arrays

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/3_bn-in-network.py"


def run_page(**query) -> AppTest:
    at = open_page(PAGE, query, timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    return at


def traces(spec: dict) -> dict[str, list[np.ndarray]]:
    """Trace name -> its numeric arrays (x, y, ...)."""
    out: dict[str, list[np.ndarray]] = {}
    for t in spec["data"]:
        out.setdefault(t.get("name", ""), []).extend(decode_arrays({k: t[k] for k in ("x", "y") if k in t}))
    return out


def same_traces(a: dict, b: dict) -> bool:
    ta, tb = traces(a), traces(b)
    if ta.keys() != tb.keys():
        return False
    for name in ta:
        if len(ta[name]) != len(tb[name]):
            return False
        for u, v in zip(ta[name], tb[name], strict=True):
            if u.shape != v.shape or not np.allclose(u, v):
                return False
    return True


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


CURVES = "Loss and test accuracy"
PCT = "Input to the"


def test_small_run_draws_every_chart_finite_and_titled():
    at = run_page(c3_steps=20)
    titles = list(figures(at))
    for start in (CURVES, PCT, "Gradient norm per layer at initialization", "Generalization gap", "Cost"):
        assert any(t.startswith(start) for t in titles), (start, titles)
    for spec in figures(at).values():
        assert_all_finite(spec)
    names = traces(figure(at, CURVES))
    assert "without BN" in names and "with BN" in names
    assert not at.warning and not at.error
    # every control is mirrored in the URL
    for key in ("c3_depth", "c3_width", "c3_act", "c3_init", "c3_lr", "c3_batch", "c3_steps",
                "c3_opt", "c3_place", "c3_seed"):
        assert key in at.query_params, key
    assert at.query_params["c3_steps"] == "20"
    # a rerun replays the cached runs (their progress bars included) and draws the same curves
    first = figure(at, CURVES)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert same_traces(first, figure(at, CURVES))
    # "show the code" prints the core's own source, and the histories can be downloaded
    code = "\n".join(c.value for c in at.code)
    assert "def train(" in code and "def forward(" in code and "def backward(" in code
    assert len(at.get("download_button")) == 2


def test_changing_learning_rate_and_placement_changes_the_curves():
    at = run_page(c3_steps=30)
    before = figure(at, CURVES)
    at.select_slider(key="c3_lr").set_value(3.0).run()
    assert not at.exception
    after_lr = figure(at, CURVES)
    assert not same_traces(before, after_lr)
    assert at.query_params["c3_lr"] == "3"

    pct_before = figure(at, PCT)
    at.radio(key="c3_place").set_value("bn_after").run()
    assert not at.exception
    after_place = figure(at, CURVES)
    assert not same_traces(after_lr, after_place)
    # only the BN arm changed: the plain arm's curves are identical
    assert all(np.allclose(u, v) for u, v in zip(traces(after_lr)["without BN"], traces(after_place)["without BN"],
                                                 strict=True))
    assert not same_traces(pct_before, figure(at, PCT))
    assert at.query_params["c3_place"] == "bn_after"


def test_url_restores_the_view():
    at = run_page(c3_steps=15, c3_depth=2, c3_width=32, c3_act="tanh", c3_lr=1, c3_batch=30,
                  c3_place="bn_after", c3_opt="momentum", c3_seed=7, c3_layer=2, c3_init=0.3)
    assert not at.warning, texts(at.warning)
    ss = at.session_state
    assert (ss["c3_depth"], ss["c3_width"], ss["c3_act"], ss["c3_lr"], ss["c3_batch"]) == (2, 32, "tanh", 1.0, 30)
    assert (ss["c3_place"], ss["c3_opt"], ss["c3_seed"], ss["c3_layer"], ss["c3_init"]) == (
        "bn_after", "momentum", 7, 2, 0.3)
    assert at.select_slider(key="c3_lr").value == 1.0
    title = next(t for t in figures(at) if t.startswith(PCT))
    assert "tanh" in title and "hidden layer 2" in title
    # two hidden layers + output layer: three gradient-norm columns in the history CSV
    assert at.query_params["c3_act"] == "tanh"


def test_garbage_nan_huge_and_negative_values_are_clamped_with_a_warning():
    at = run_page(c3_steps=-3, c3_lr="abc", c3_depth="nan", c3_width="1e9", c3_init="-2",
                  c3_act="softmax", c3_seed="inf", c3_place="middle", c3_layer="12.5")
    warning = texts(at.warning)
    for name in ("steps", "learning rate", "hidden layers", "units per layer", "initial weight std",
                 "activation", "seed", "BN placement", "probed layer"):
        assert name in warning, (name, warning)
    ss = at.session_state
    assert ss["c3_steps"] == 1 and ss["c3_lr"] == 0.3 and ss["c3_depth"] == 3
    assert ss["c3_width"] == 256 and ss["c3_init"] == 0.001 and ss["c3_act"] == "sigmoid"
    assert ss["c3_seed"] == 10_000 and ss["c3_place"] == "bn_before"
    for spec in figures(at).values():
        assert_all_finite(spec)
    assert at.query_params["c3_width"] == "256"


def test_batch_of_one_explains_and_still_shows_the_plain_network():
    at = run_page(c3_steps=10, c3_batch=1)
    warning = texts(at.warning)
    assert "batch of one" in warning and "variance" in warning
    assert not at.error
    names = traces(figure(at, CURVES))
    assert "without BN" in names and "with BN" not in names
    for spec in figures(at).values():
        assert_all_finite(spec)


def test_batch_larger_than_the_training_set_is_clamped():
    at = run_page(c3_steps=5, c3_batch=100_000)
    assert "batch size" in texts(at.warning)
    assert at.session_state["c3_batch"] == at.number_input(key="c3_batch").max


def test_huge_learning_rate_says_diverged_and_keeps_nan_out_of_charts():
    at = run_page(c3_steps=40, c3_act="relu", c3_lr=30, c3_init=1)
    errors = texts(at.error)
    assert "diverged at step" in errors
    names = traces(figure(at, CURVES))
    assert any("diverged at step" in n for n in names)
    for spec in figures(at).values():
        assert_all_finite(spec)


@pytest.mark.parametrize("place", ["bn_before", "bn_after"])
def test_sweeps_and_deep_training_on_request(place):
    at = run_page(c3_steps=3, c3_sweeps=1, c3_gtrain=1, c3_gdepth=8, c3_place=place)
    titles = list(figures(at))
    assert any(t.startswith("Test accuracy vs learning rate") for t in titles), titles
    assert any(t.startswith("Test accuracy vs initial std") for t in titles), titles
    assert any(t.startswith("Gradient norm per layer during training") for t in titles), titles
    lr_sweep = traces(figure(at, "Test accuracy vs learning rate"))
    assert lr_sweep["without BN"][0].size == 10 and lr_sweep["with BN"][0].size == 10
    init = traces(figure(at, "Gradient norm per layer at initialization"))
    assert init["without BN"][0].size == 9  # 8 hidden layers + output
    for spec in figures(at).values():
        assert_all_finite(spec)
    assert not at.exception


@pytest.mark.parametrize("query", [
    # smallest network, huge steps and scales, momentum, BN after the activation
    dict(c3_depth=1, c3_width=2, c3_act="relu", c3_init=3, c3_lr=30, c3_batch=2, c3_steps=5,
         c3_opt="momentum", c3_place="bn_after"),
    # largest network, full-batch training
    dict(c3_depth=10, c3_width=256, c3_steps=3, c3_batch=100_000, c3_layer=10),
    # a batch of one with every optional section switched on
    dict(c3_depth=1, c3_steps=1, c3_batch=1, c3_sweeps=1, c3_gtrain=1, c3_gdepth=12, c3_gact="tanh"),
    # a network that has already blown up at initialization
    dict(c3_act="relu", c3_init=3, c3_lr=30, c3_steps=5, c3_gtrain=1, c3_gdepth=2),
])
def test_slider_extremes_give_a_clear_state(query):
    at = run_page(**query)
    assert figures(at)
    for spec in figures(at).values():
        assert_all_finite(spec)
    shown = texts(at.error) + texts(at.warning) + texts(at.info)
    if query.get("c3_batch") == 1:
        assert "batch of one" in shown
    if query.get("c3_init") == 3 and query.get("c3_act") == "relu":
        assert "diverged at step" in shown


def test_batchnorm_with_large_initial_weights_trains_and_is_not_reported_diverged():
    """Regression: ReLU with weight std 3. The BN network's step-0 evaluation (running mean 0,
    variance 1: not normalized yet) explodes, but the network trains; only the plain network
    diverges (before its first update), on the main run and in the init-scale sweep."""
    at = run_page(c3_act="relu", c3_init=3, c3_steps=60, c3_sweeps=1)
    errors = texts(at.error)
    assert "without BN **diverged at step 0**" in errors
    assert "with BN **diverged" not in errors
    acc = {m.label: m.value for m in at.metric}
    assert float(acc["Final test accuracy with BN"]) > 0.5  # chance is 0.1
    names = traces(figure(at, CURVES))
    assert "with BN" in names and not any(n.startswith("with BN: diverged") for n in names)
    init_sweep = figure(at, "Test accuracy vs initial std")
    by_name = {t["name"]: t for t in init_sweep["data"]}
    bn_diverged = decode_arrays(by_name["with BN: diverged"]["x"])[0] if "with BN: diverged" in by_name else []
    assert 3.0 not in list(bn_diverged)
    plain_diverged = decode_arrays(by_name["without BN: diverged"]["x"])[0]
    assert 3.0 in list(plain_diverged)
    bn_x, bn_y = decode_arrays(by_name["with BN"]["x"])[0], decode_arrays(by_name["with BN"]["y"])[0]
    assert bn_y[list(bn_x).index(3.0)] > 0.5
    for spec in figures(at).values():
        assert_all_finite(spec)


def test_chapter_names_do_not_shadow_the_cores_tables():
    """The chapter's widget choices must not reuse names of bn_core's public tables
    (ACTIVATIONS, OPTIMIZERS, NORMS, ...), which hold different things (the page's names, and
    those of ui/network_controls.py, where its controls and tables live)."""
    import ast

    import bn_core.layers
    import bn_core.network
    import bn_core.train

    core = set(bn_core.layers.__all__) | set(bn_core.network.__all__) | set(bn_core.train.__all__)
    core |= {"ACTIVATIONS", "OPTIMIZERS", "NORMS", "PERCENTILES"}
    for path in (ROOT / PAGE, ROOT / "ui" / "network_controls.py"):
        tree = ast.parse(path.read_text())
        defined = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                   if isinstance(t, ast.Name)}
        assert not defined & core, (path.name, defined & core)


# ---------------------------------------------------------------- cost guard (expensive links)

CRAFTED = {k: "inf" for k in ("c3_depth", "c3_width", "c3_init", "c3_lr", "c3_batch", "c3_steps", "c3_seed")}


def test_cost_estimate_grows_with_every_factor_and_separates_default_from_the_largest():
    from bn_core.train import TrainConfig
    from ui import network as net

    default = TrainConfig(lr=0.3, steps=1000, eval_every=33)
    assert net.estimate_seconds(default) < net.COST_THRESHOLD_S
    largest = TrainConfig(depth=10, width=256, batch_size=1347, steps=5000)
    assert net.estimate_seconds(largest) > 10 * net.COST_THRESHOLD_S
    for field, bigger in (("steps", 2000), ("batch_size", 120), ("width", 200), ("depth", 6)):
        assert net.estimate_seconds(replace(default, **{field: bigger})) > net.estimate_seconds(default), field
    # proportional to the steps, and one arm is half of two
    assert np.isclose(net.estimate_seconds(replace(default, steps=3000)), 3 * net.estimate_seconds(default))
    assert np.isclose(net.estimate_seconds(default, arms=1), net.estimate_seconds(default) / 2)
    # the unit count is the forward pass's multiply-adds: 64 inputs, depth-1 square layers, 10 outputs
    cfg = TrainConfig(depth=2, width=5, batch_size=3)
    assert net.units_per_step(cfg) == 3 * (64 * 5 + 5 * 5 + 5 * 10)


def test_crafted_link_warns_at_once_and_trains_nothing_until_asked():
    at = run_page(**CRAFTED)
    shown = texts(at.warning)
    assert "settings in the link were adjusted" in shown
    assert "has not started" in shown and "5000 steps" in shown and "1347" in shown
    assert not figures(at)  # no run was trained: no chart of the runs
    assert not at.metric
    labels = [b.label for b in at.button]
    assert any(lbl.startswith("Train anyway (about ") for lbl in labels), labels


def test_train_anyway_button_trains_an_expensive_config(monkeypatch):
    from ui import network as net

    monkeypatch.setattr(net, "COST_THRESHOLD_S", 0.0)  # every config counts as expensive
    at = run_page(c3_steps=3)
    assert not figures(at) and "has not started" in texts(at.warning)
    button = next(b for b in at.button if b.label.startswith("Train anyway"))
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "has not started" not in texts(at.warning)
    curves = traces(figure(at, CURVES))
    assert "without BN" in curves and "with BN" in curves
    # a rerun with the same settings (e.g. another widget moved) keeps the approved runs
    at.run()
    assert figure(at, CURVES)


def test_default_page_trains_without_asking():
    at = run_page(c3_steps=3)
    assert "has not started" not in texts(at.warning)
    assert not any(b.label.startswith("Train anyway") for b in at.button)
    assert figure(at, CURVES)


def test_a_link_does_not_start_expensive_sweeps_or_deep_training(monkeypatch):
    from bn_core.train import TrainConfig
    from ui import network as net

    # a tiny main network (trains at once) and a deep one that counts as expensive: the threshold
    # sits between their estimates, and any sweep counts as expensive
    main = TrainConfig(depth=1, width=64, steps=3)
    deep = replace(main, depth=12)
    assert net.estimate_seconds(main) < net.estimate_seconds(deep)
    monkeypatch.setattr(net, "COST_THRESHOLD_S", (net.estimate_seconds(main) * net.estimate_seconds(deep)) ** 0.5)
    monkeypatch.setattr(net, "SWEEP_THRESHOLD_S", 0.0)
    at = run_page(c3_depth=1, c3_width=64, c3_steps=3, c3_sweeps=1, c3_gtrain=1, c3_gdepth=12)
    shown = texts(at.warning)
    assert "The sweeps would take" in shown and "Training the deep networks would take" in shown
    titles = list(figures(at))
    assert any(t.startswith(CURVES) for t in titles), titles  # the main runs trained
    assert not any(t.startswith("Test accuracy vs") for t in titles), titles
    assert not any(t.startswith("Gradient norm per layer during training") for t in titles), titles
    labels = [b.label for b in at.button]
    assert any(lbl.startswith("Run the sweeps anyway") for lbl in labels), labels
    deep_button = next(b for b in at.button if b.label.startswith("Train the deep networks anyway"))
    deep_button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(t.startswith("Gradient norm per layer during training") for t in figures(at))


# ---------------------------------------------------------------- issue 10 items 15-16, issue 9 (layout, guided)


def see_lines(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "What to see" in m.value]


def metrics(at: AppTest) -> dict:
    return {m.label: m for m in at.metric}


def test_bn_collapse_at_batch_two_reads_as_a_collapse_and_points_to_chapter_4():
    """Item 15: at batch 2 BN reached about 0.4 (0.97 at batch 60) and the page showed a green
    "+28.7 points vs plain" under "Faster training, better accuracy" (fails on main)."""
    at = run_page(c3_batch=2)
    bn = metrics(at)["Final test accuracy with BN"]
    assert float(bn.value) < net_learned()
    assert not (bn.proto.delta or "").startswith("+")
    assert "collapsed" in (bn.proto.delta or "")
    line = see_lines(at)[0]
    assert "collapsed" in line and "/curse-of-batch-norm" in line and "The curse of batch norm" in line
    headings = [h.value for h in (*at.header, *at.subheader)]
    assert not any("better accuracy" in h for h in headings), headings


def net_learned() -> float:
    from ui import network as net

    return net.LEARNED_ACC


def test_divergence_before_the_first_update_does_not_blame_the_learning_rate():
    """Item 16: after a divergence at step 0 the page advised a smaller learning rate (fails on main)."""
    at = run_page(c3_act="relu", c3_init=3, c3_steps=20)
    errors = texts(at.error)
    assert "diverged at step 0" in errors
    assert "smaller learning rate" not in errors and "initial weight std" in errors


def test_section_headings_are_not_numbered_like_chapters_and_the_gap_text_is_computed():
    """Issue 9: chapter 3's "1 ·" to "6 ·" looked like chapter numbers. Item 16: the gap section
    asked to compare at similar training accuracy whether or not the arms ever had one."""
    import re

    at = run_page(c3_steps=30)
    headings = [h.value for h in (*at.header, *at.subheader)]
    assert headings and not any(re.match(r"\s*\d+\s*·", h) for h in headings), headings
    assert "at similar training accuracy" not in texts(at.markdown)
    assert any(line.startswith(":material/visibility: **What to see:** Final gap") for line in see_lines(at))


def test_controls_live_in_the_sidebar_with_the_learning_rate_first():
    at = run_page(c3_steps=10)
    sliders = list(at.sidebar.select_slider) + list(at.sidebar.slider)
    assert at.sidebar.select_slider[0].label == "Learning rate"
    assert {s.key for s in sliders} >= {"c3_lr", "c3_depth", "c3_width", "c3_init", "c3_gdepth"}
    assert not at.main.select_slider and not at.main.slider and not at.main.number_input


def test_probed_layer_widget_shows_the_layer_in_use_and_keeps_the_request():
    at = run_page(c3_steps=10, c3_layer=8)
    shown = [s for s in at.sidebar.slider if s.label == "Hidden layer to probe"]
    assert len(shown) == 1 and shown[0].value == 3 and shown[0].disabled
    assert "hidden layer 3" in next(t for t in figures(at) if t.startswith(PCT))
    assert at.session_state["c3_layer"] == 8 and at.query_params["c3_layer"] == "8"


def _final(at: AppTest, arm: str) -> str:
    return metrics(at)[f"Final test accuracy {arm}"].value


def _note_lr10(at):
    assert float(_final(at, "without BN")) <= 0.15 and float(_final(at, "with BN")) > 0.95


def _note_batch2(at):
    assert float(_final(at, "with BN")) < 0.97 / 2


def _note_relu(step: int):
    def check(at):
        plain = metrics(at)["Final test accuracy without BN"]
        assert plain.value == "diverged" and plain.proto.delta == f"at step {step}"
        assert float(_final(at, "with BN")) > 0.9
    return check


NOTE_CHECKS = {"BN at learning rate 10": _note_lr10, "Batch size 2": _note_batch2,
               "ReLU, initial weight std 1": _note_relu(2), "ReLU, initial weight std 3": _note_relu(0)}


def test_every_experiment_has_a_check_and_the_batch_60_reference_holds():
    from ui import network as net

    assert 3 <= len(net.EXPERIMENTS) <= 5 and [e.label for e in net.EXPERIMENTS] == list(NOTE_CHECKS)
    at = run_page()  # the defaults: "the 0.97 it reaches at the default batch of 60"
    assert round(float(_final(at, "with BN")), 2) == 0.97


@pytest.mark.parametrize("i", range(4))
def test_guided_experiment_runs_changes_the_view_and_its_note_holds(i):
    from ui import network as net

    e = net.EXPERIMENTS[i]
    at = run_page(c3_steps=10)
    before = figure(at, CURVES)
    at.button(key=f"_guided_c3_{i}").click().run()
    assert not at.exception, [x.value for x in at.exception]
    assert at.session_state["c3_steps"] == net.DEFAULT_STEPS  # every unnamed control back to default
    for key, value in e.settings.items():
        assert at.session_state[key] == value
    assert not same_traces(before, figure(at, CURVES))
    assert any(e.look_for in el.value for el in at.info)
    NOTE_CHECKS[e.label](at)
    for spec in figures(at).values():
        assert_all_finite(spec)
