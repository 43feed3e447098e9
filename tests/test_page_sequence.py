"""Chapter 5 page (pages/5_sequence-models.py) under AppTest: it runs, interactions change
what is drawn, bad URL values give a message and a sane state, and every guided experiment
runs, changes the chart and its teacher's note holds for the data drawn.

Most runs use few training steps (``c5_steps`` in the URL); the guided experiments run at
their own (default) settings, since their notes are claims about exactly those.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.apptest import figure, figures, open_page
from tests.test_network_figures import assert_all_finite, decode_arrays
from ui import sequence as seq

PAGE = "pages/5_sequence-models.py"
MAIN = "Test accuracy in evaluation mode"
UNROLLED = "Unrolled in time"
RUNNING = "Batch norm's running means"
SPREAD = "Spread of the input"
ACTIVE = "Sequences each BN step"
ACTIVE_ACC = "After variable-length training"
SWEEP = "Sequential digits: final test accuracy"


def run_page(**query):
    at = open_page(PAGE, {k: str(v) for k, v in query.items()}, timeout=180)
    assert not at.exception, [e.value for e in at.exception]
    return at


def trace(spec: dict, name: str, axis: str = "x") -> tuple[np.ndarray, np.ndarray] | None:
    """(x, y) of the trace called ``name`` on x axis ``axis`` ("x" left panel, "x2" right)."""
    for t in spec["data"]:
        if t.get("name") == name and t.get("xaxis", "x") == axis:
            x, y = decode_arrays({"x": t["x"]})[0], decode_arrays({"y": t["y"]})[0]
            return x, y
    return None


def texts(at) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "warning", "error", "info", "caption")
                     for e in at.get(kind))


def see_lines(at) -> list[str]:
    return [m.value for m in at.markdown if "What to see" in m.value]


def test_default_page_draws_three_finite_titled_charts():
    at = run_page(c5_steps=40)
    titles = list(figures(at))
    assert any(t.startswith(MAIN) for t in titles)
    assert any(t.startswith(UNROLLED) for t in titles) and any(t.startswith(RUNNING) for t in titles)
    assert any(t.startswith(SPREAD) for t in titles)
    for spec in figures(at).values():
        assert_all_finite(spec)
        assert spec["layout"]["title"]["text"]
    main = figure(at, MAIN)
    for norm in ("no normalization", "BN per time step", "LayerNorm"):
        x, y = trace(main, norm, "x")
        assert len(x) >= 2 and np.all((0 <= y) & (y <= 1))
        x2, _ = trace(main, norm, "x2")
        assert list(x2) == list(range(1, 25))  # test lengths 1..3T
    assert len(see_lines(at)) == 4
    assert any(h.value == "Why Transformers use LayerNorm" for h in at.subheader)


def test_batch_slider_changes_the_main_chart():
    at = run_page(c5_steps=40)
    before = figure(at, MAIN)
    at.slider(key="c5_batch").set_value(8).run()
    assert not at.exception
    after = figure(at, MAIN)
    assert not np.allclose(trace(before, "BN per time step")[1], trace(after, "BN per time step")[1])


def test_training_length_changes_test_lengths_and_diagram():
    at = run_page(c5_steps=40)
    at.slider(key="c5_len").set_value(3).run()
    assert not at.exception
    x2, _ = trace(figure(at, MAIN), "LayerNorm", "x2")
    assert list(x2) == list(range(1, 10))
    assert "test length up to 9" in figure(at, UNROLLED)["layout"]["title"]["text"]


def test_policy_radio_changes_diagram_and_caption():
    at = run_page(c5_steps=40)
    before = " ".join(a["text"] for a in figure(at, UNROLLED)["layout"]["annotations"])
    assert "reused" in before
    at.radio(key="c5_policy").set_value("fresh").run()
    assert not at.exception
    after = " ".join(a["text"] for a in figure(at, UNROLLED)["layout"]["annotations"])
    assert "fresh" in after and "reused" not in after
    assert any("fresh statistics" in s for s in see_lines(at))


def test_variable_lengths_and_sweep_sections_draw_when_switched_on():
    at = run_page(c5_steps=30, c5_var=1, c5_sweep=1, c5_len=4)
    titles = list(figures(at))
    assert any(t.startswith(ACTIVE) for t in titles) and any(t.startswith(ACTIVE_ACC) for t in titles)
    assert any(t.startswith(SWEEP) for t in titles)
    _, mean = trace(figure(at, ACTIVE), "mean over training batches")
    assert mean[0] == 32 and np.all(np.diff(mean) <= 0)
    for spec in figures(at).values():
        assert_all_finite(spec)


def test_batch_of_one_shows_the_layers_message_and_draws_the_others():
    at = run_page(c5_steps=30, c5_batch=1)
    warn = "\n".join(w.value for w in at.warning)
    assert "BatchNorm1d cannot train on a batch of 1 sample" in warn
    main = figure(at, MAIN)
    assert trace(main, "BN per time step") is None
    assert any(t.get("name") == "BN per time step: cannot train on this batch" for t in main["data"])
    assert trace(main, "no normalization") is not None and trace(main, "LayerNorm", "x2") is not None
    assert_all_finite(main)
    assert "no batch-norm statistics" in " ".join(a["text"] for a in figure(at, RUNNING)["layout"]["annotations"])


@pytest.mark.parametrize("query, expect", [
    ({"c5_batch": "abc"}, ("batch size", 32)),
    ({"c5_batch": "-5"}, ("batch size", 1)),
    ({"c5_batch": "1e9"}, ("batch size", seq.MAX_BATCH)),
    ({"c5_len": "nan"}, ("training length T", 8)),
    ({"c5_len": "999"}, ("training length T", seq.MAX_LENGTH)),
    ({"c5_policy": "<script>"}, ("BN beyond T", "last")),
    ({"c5_lr": "inf"}, ("learning rate", seq.LR_OPTIONS[-1])),
    ({"c5_steps": "0.5"}, ("training steps", 10)),
    ({"c5_seed": "9" * 500}, ("seed", 10_000)),
    ({"c5_var": "maybe"}, ("variable-length batches", False)),
])
def test_bad_url_values_give_a_message_and_a_clamped_state(query, expect):
    label, value = expect
    small = {"c5_steps": "20"} if "c5_steps" not in query else {}
    if "c5_len" in query and query["c5_len"] == "999":
        small["c5_hidden"] = "8"
    at = run_page(**{**small, **query})
    warning = "\n".join(w.value for w in at.warning)
    assert "adjusted" in warning and label in warning
    key = next(iter(query))
    assert at.session_state[key] == value
    for spec in figures(at).values():
        assert_all_finite(spec)


def test_an_expensive_link_waits_for_the_user_with_an_estimate():
    at = run_page(c5_steps=seq.MAX_STEPS, c5_batch=seq.MAX_BATCH, c5_hidden=128, c5_len=seq.MAX_LENGTH)
    warning = "\n".join(w.value for w in at.warning)
    assert "would take about" in warning and "has not started" in warning
    assert not figures(at)
    assert any(b.label.startswith("Train anyway") for b in at.button)


def test_minimum_length_longer_than_T_is_capped_and_said():
    at = run_page(c5_steps=20, c5_var=1, c5_len=3, c5_minlen=10)
    assert at.session_state["c5_minlen"] == 10  # what the user asked for is kept
    assert "uses 3" in texts(at)


# --------------------------------------------------------------------------- guided experiments


def _final_digits(main: dict, name: str) -> float:
    return float(trace(main, name, "x")[1][-1])


def _acc_len(spec: dict, name: str, L: int, axis: str = "x2") -> float:
    x, y = trace(spec, name, axis)
    return float(y[list(x).index(L)])


def check_batch_of_2(at):
    main = figure(at, MAIN)
    assert _final_digits(main, "BN per time step") < _final_digits(main, "LayerNorm")


def check_batch_of_one(at):
    main = figure(at, MAIN)
    assert trace(main, "BN per time step") is None
    for name in ("no normalization", "LayerNorm"):
        assert _final_digits(main, name) > 0.2  # above chance (0.1): they learn
    assert "cannot train" in "\n".join(w.value for w in at.warning)


def check_variable(at):
    _, mean = trace(figure(at, ACTIVE), "mean over training batches")
    assert mean[-1] < 2
    acc = figure(at, ACTIVE_ACC)
    T = 8
    assert _acc_len(acc, "BN per time step", 3 * T, "x") < _acc_len(acc, "BN per time step", T, "x")
    assert _acc_len(acc, "LayerNorm", 3 * T, "x") > _acc_len(acc, "LayerNorm", T, "x")


def check_fresh(at):
    main = figure(at, MAIN)
    assert abs(_acc_len(main, "BN per time step", 24) - _acc_len(main, "LayerNorm", 24)) < 0.05
    running = figure(at, RUNNING)
    beyond = [t for t in running["data"] if t.get("xaxis") == "x2" and "beyond T" in t.get("name", "")]
    assert beyond and all(np.all(decode_arrays({"y": t["y"]})[0][1:] == 0) for t in beyond)
    assert "fresh" in " ".join(a["text"] for a in figure(at, UNROLLED)["layout"]["annotations"])


CHECKS = {"Batch of 2 sequences": check_batch_of_2, "A batch of one": check_batch_of_one,
          "Variable lengths, batch 8": check_variable, "Fresh statistics beyond T": check_fresh}


def test_every_experiment_has_a_check():
    assert [e.label for e in seq.EXPERIMENTS] == list(CHECKS)
    assert 3 <= len(seq.EXPERIMENTS) <= 5
    keys = {p.key for p in seq.PARAMS}
    for e in seq.EXPERIMENTS:
        assert set(e.settings) <= keys


@pytest.mark.parametrize("index", range(len(seq.EXPERIMENTS)))
def test_guided_experiment_runs_changes_the_chart_and_its_note_holds(index):
    experiment = seq.EXPERIMENTS[index]
    at = run_page()
    before = figures(at)
    at.button(key=f"_guided_c5_{index}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    for k, v in experiment.config(seq.PARAMS).items():
        assert at.session_state[k] == v
    after = figures(at)
    assert figure(at, MAIN)["data"] != next(s for t, s in before.items() if t.startswith(MAIN))["data"]
    for spec in after.values():
        assert_all_finite(spec)
    assert experiment.look_for in texts(at)  # the note is shown
    CHECKS[experiment.label](at)


@pytest.mark.parametrize("query", [
    {"c5_batch": seq.MAX_BATCH, "c5_len": 1, "c5_hidden": 4, "c5_steps": 10, "c5_var": 1},
    {"c5_batch": 2, "c5_len": seq.MAX_LENGTH, "c5_hidden": 4, "c5_steps": 10, "c5_var": 1,
     "c5_minlen": seq.MAX_LENGTH, "c5_policy": "batch", "c5_lr": 5, "c5_clip": 0},
    {"c5_batch": 1, "c5_len": 2, "c5_steps": 10, "c5_var": 1, "c5_sweep": 1, "c5_hidden": 4},
])
def test_extreme_settings_run_without_exception_or_non_finite_values(query):
    at = run_page(**query)
    assert not at.error or all("diverged at step" in e.value for e in at.error)
    assert len(figures(at)) >= 5
    for spec in figures(at).values():
        assert_all_finite(spec)
    assert len(see_lines(at)) >= 5
