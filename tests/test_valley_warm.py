"""Chapter 1's step-size warming (ui.valley.warm_step_sizes): what it computes is what the page
then asks for, and it runs only for settings several runs showed, once, and for short runs."""

from __future__ import annotations

import threading

import pytest

from tests.apptest import open_page
from ui import valley as vs


@pytest.fixture(autouse=True)
def fresh_warming_state():
    def clear():
        for t in threading.enumerate():  # a thread another test started
            if t.name == "bnlab-warm-step-sizes":
                t.join(timeout=60)
        vs._SEEN.clear()
        vs._WARMED.clear()
        vs._WARM_STATE["busy"] = False

    clear()
    yield
    clear()


def _join_warming() -> None:
    threads = [t for t in threading.enumerate() if t.name == "bnlab-warm-step-sizes"]
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()


def _args(seed_data=("seed", 7, 60, 0.1), seed=7, mode="fraction", epochs=30):
    return (seed_data, seed, ("raw", "standardized"), mode, 60, epochs, "gd", 0.9, 0.9, 0.999, 1e-6, "normal", False)


def test_a_setting_is_warmed_on_its_second_run_once_and_fills_every_options_caches():
    args = _args()
    assert vs.warm_step_sizes(*args) is False  # one run: one student exploring
    assert vs.warm_step_sizes(*args) is True
    _join_warming()
    assert vs.warm_step_sizes(*args) is False  # warmed already
    data, seed, variants, mode, batch, epochs, opt, mom, b1, b2, tol, speed, big = args
    conds = vs.data_facts(data).conds
    misses = vs.variant_view.cache_info().misses
    for frac in vs.FRACTION_OPTIONS:
        lrs = tuple(vs.variant_lr(conds[v], mode, 0.0, frac) for v in variants)
        for v, lr in zip(variants, lrs, strict=True):
            view = vs.variant_view(data, seed, v, lr, batch, epochs, opt, mom, b1, b2)
            assert ("path_facts", data, v, tol) in view._derived and ("theory_row", v, lr, tol) in view._derived
            copy = view.figure._derived[("speed", speed)]  # the landscape at the page's speed ...
            assert ("json", big) in copy._derived  # ... and its JSON
        conv = vs.convergence_figure(data, seed, variants, lrs, batch, epochs, opt, mom, b1, b2, tol)
        assert ("json", big) in conv._derived
    assert vs.variant_view.cache_info().misses == misses  # every view was there


def test_long_runs_and_a_second_setting_while_one_is_warming_are_not_warmed():
    long_run = _args(epochs=vs.WARM_MAX_STEPS + 1)  # batch = n: one step per epoch
    assert not vs.warm_step_sizes(*long_run) and not vs.warm_step_sizes(*long_run)
    vs._WARM_STATE["busy"] = True  # another setting is warming
    other = _args(seed=8)
    assert not vs.warm_step_sizes(*other) and not vs.warm_step_sizes(*other)
    vs._WARM_STATE["busy"] = False
    assert vs.warm_step_sizes(*other)  # its next run warms it
    _join_warming()


def test_after_the_class_opened_a_link_the_pages_step_size_moves_compute_no_view():
    query = {"c1_seed": 321, "c1_epochs": 40, "c1_map": 0}
    teacher = open_page("pages/1_valley-vs-bowl.py", query)
    student = open_page("pages/1_valley-vs-bowl.py", query)  # the second run of the setting warms it
    assert not teacher.exception and not student.exception
    _join_warming()
    misses = vs.variant_view.cache_info().misses
    for frac in (0.02, 0.9, 1.5):
        student.select_slider(key="c1_frac").set_value(frac).run()
        assert not student.exception
    assert vs.variant_view.cache_info().misses == misses
