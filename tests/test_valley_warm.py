"""Chapter 1's step-size warming (ui.valley.warm_step_sizes): what it computes is what the page
then asks for, and it runs only for settings two sessions showed, once, for short runs whose
views fit the cache, and never inside a session's turn."""

from __future__ import annotations

import threading

import pytest

from bn_core import regression as R
from tests.apptest import open_page
from ui import page
from ui import valley as vs

WARM_THREAD = "bnlab-warm-step-sizes"


def _join_warming() -> None:
    for t in [t for t in threading.enumerate() if t.name == WARM_THREAD]:
        t.join(timeout=60)
        assert not t.is_alive()


@pytest.fixture(autouse=True)
def fresh_warming_state():
    def clear():
        _join_warming()
        vs._SEEN.clear()
        vs._WARMED.clear()
        vs._WARM_STATE["busy"] = False

    clear()
    yield
    clear()


def _setting(seed=7, mode="fraction", epochs=30, variants=("raw", "standardized"), map_variants=None):
    return vs.StepSetting(("seed", seed, 60, 0.1), seed, variants, mode, 5e-5, 60, epochs, "gd", (0.9, 0.9, 0.999),
                          1e-6, "normal", False, map_variants)


def _cached(s: vs.StepSetting) -> bool:
    """Whether every option's views, convergence chart and their JSON are in the caches (no miss)."""
    conds = vs.data_facts(s.data).conds
    misses = (vs.variant_view.cache_info().misses, vs.convergence_figure.cache_info().misses)
    for x in s.options():
        lrs = tuple(vs.variant_lr(conds[v], s.mode, x if s.mode == "same" else s.lr, x) for v in s.variants)
        for v, lr in zip(s.variants, lrs, strict=True):
            view = vs.variant_view(s.data, s.seed, v, lr, s.batch, s.epochs, s.optimizer, *s.hyper)
            if not {("path_facts", s.data, v, s.tol), ("theory_row", v, lr, s.tol)} <= view._derived.keys():
                return False
            copy = view.figure._derived.get(("speed", s.speed))  # the landscape at the page's speed
            if copy is None or ("json", s.big) not in copy._derived:
                return False
        conv = vs.convergence_figure(s.data, s.seed, s.variants, lrs, s.batch, s.epochs, s.optimizer, *s.hyper, s.tol)
        if ("json", s.big) not in conv._derived:
            return False
    return misses == (vs.variant_view.cache_info().misses, vs.convergence_figure.cache_info().misses)


def test_a_setting_two_sessions_showed_is_warmed_once_and_every_option_is_then_cached():
    s = _setting()
    assert vs.warm_step_sizes(s, session="teacher") is False
    assert vs.warm_step_sizes(s, session="teacher") is False  # one session's reruns: still one session
    assert vs.warm_step_sizes(s, session="student") is True
    _join_warming()
    assert vs.warm_step_sizes(s, session="another student") is False  # warmed already
    assert _cached(s)


def test_long_runs_too_many_views_and_a_second_setting_while_one_warms_are_not_warmed():
    long_run = _setting(epochs=vs.WARM_MAX_STEPS + 1)  # batch = n: one step per epoch
    many = _setting(mode="same", variants=R.VARIANTS)  # 40 options x 4 variants > WARM_MAX_VIEWS
    assert len(many.options()) * len(many.variants) > vs.WARM_MAX_VIEWS
    for s in (long_run, many):
        assert not vs.warm_step_sizes(s, session="a") and not vs.warm_step_sizes(s, session="b")
    vs._WARM_STATE["busy"] = True  # another setting is warming
    other = _setting(seed=8, mode="same")  # 40 options x 2 variants fit (80)
    assert not vs.warm_step_sizes(other, session="a") and not vs.warm_step_sizes(other, session="b")
    vs._WARM_STATE["busy"] = False
    assert vs.warm_step_sizes(other, session="c")  # a third session's run warms it
    _join_warming()
    assert _cached(other)


def test_warming_skips_an_option_whose_turn_the_sessions_hold(monkeypatch):
    monkeypatch.setattr(page, "TURN_WAIT_S", 0.01)
    s = _setting(seed=9)
    misses = vs.variant_view.cache_info().misses
    with page.in_turn() as got:  # a session's rerun holds the turn the whole time
        assert got
        vs.warm_step_sizes(s, session="a")
        assert vs.warm_step_sizes(s, session="b")
        _join_warming()
    assert vs.variant_view.cache_info().misses == misses  # nothing computed inside the turn
    assert not _cached(s)


def test_after_the_class_opened_a_link_the_pages_step_size_moves_compute_no_chart(monkeypatch):
    # AppTest gives every session one id, so one test session stands for the class here
    monkeypatch.setattr(vs, "WARM_AFTER_SESSIONS", 1)
    query = {"c1_seed": 321, "c1_epochs": 40, "c1_variants": "raw,standardized,minmax"}  # the map on
    student = open_page("pages/1_valley-vs-bowl.py", query)
    assert not student.exception
    _join_warming()
    caches = (vs.variant_view, vs.convergence_figure, vs.stability_figure_at)
    misses = [c.cache_info().misses for c in caches]
    for frac in (0.02, 0.9, 1.5):
        student.select_slider(key="c1_frac").set_value(frac).run()
        assert not student.exception
    assert [c.cache_info().misses for c in caches] == misses


def test_two_options_in_a_row_over_the_cpu_budget_end_the_warming(monkeypatch):
    monkeypatch.setattr(vs, "WARM_MAX_OPTION_S", 0.0)  # every option is over it: two are warmed
    s = _setting(seed=11)
    misses = vs.variant_view.cache_info().misses
    assert not vs.warm_step_sizes(s, session="a") and vs.warm_step_sizes(s, session="b")
    _join_warming()
    assert vs.variant_view.cache_info().misses == misses + 2 * len(s.variants)
    assert not vs.warm_step_sizes(s, session="c")  # done with it: not started again
