"""QA of chapter 1's issue-10 fixes (c1b, on c1's implementation), as a teacher would try them.

Tests that pass check c1's fixes from another angle than tests/test_valley_truth.py (grids with
extremes, independent numbers). Tests marked ``xfail(strict=True)`` are defects found in this QA,
each listed with its steps in /work/c1-defects.md: when one is fixed its test passes, strict
xfail turns that into a failure, and the mark should be removed.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.apptest import open_page
from ui import valley as vs

PAGE = "pages/1_valley-vs-bowl.py"


def _app(**query):
    at = open_page(PAGE, {k: str(v) for k, v in query.items()}, timeout=120)
    assert not at.exception, at.exception
    return at


def _upload(at, name: str, data: bytes):
    at.file_uploader(key="c1_upload_file").set_value((name, data, "text/csv")).run()
    assert not at.exception, at.exception
    return at


def _shown(at, key) -> str:
    """The label the browser shows on select_slider ``key`` (set_value, else the default option)."""
    p = next(e for e in at.get("select_slider") if e.key == key).proto
    return p.raw_value[0] if p.set_value else p.options[int(p.default[0])]


def _query(at, key):
    v = at.query_params.get(key)
    return v[0] if isinstance(v, list) else v


COLLINEAR = ("a,b,y\n" + "".join(f"{a},{2 * a},{5 * a + (a % 3)}\n" for a in range(1, 30))).encode()
CORRELATED = ("a,b,y\n" + "".join(f"{a},{a + (a * 7 % 5) * 0.3},{3 * a + (a % 4)}\n" for a in range(1, 40))).encode()


# ---- verified: these pass on c1's code ---------------------------------------------------------

def test_a_learning_rate_the_user_chose_is_shown_after_the_other_mode():
    at = _app(c1_map=0, c1_epochs=5)
    at.radio(key="c1_mode").set_value("same").run()
    at.select_slider(key="c1_lr").set_value(0.001).run()
    at.radio(key="c1_mode").set_value("fraction").run()
    at.radio(key="c1_mode").set_value("same").run()
    assert at.session_state["c1_lr"] == 0.001 and _shown(at, "c1_lr") == "0.001"


def test_a_batch_size_picked_while_capped_is_the_new_request():
    at = _app(c1_n=30, c1_map=0, c1_epochs=2)
    at.slider(key="c1_batch_slider").set_value(10).run()
    at.slider(key="c1_n").set_value(200).run()
    assert at.session_state["c1_batch"] == 10 and at.slider(key="c1_batch_slider").value == 10
    assert _query(at, "c1_batch") == "10"


@pytest.mark.parametrize("query", [{"c1_source": "example"}, {"c1_n": 500, "c1_batch": 10, "c1_epochs": 20},
                                   {"c1_opt": "momentum"}, {"c1_variants": "raw,minmax,standardized,batchnorm"}])
def test_switching_to_the_same_learning_rate_runs_on_other_settings(query):
    at = _app(c1_map=0, **query)
    at.radio(key="c1_mode").set_value("same").run()
    assert not any("diverged" in e.value for e in at.error)


BN_GRID = list(itertools.product((2, 20, 100), ("two", "half", "full"), (1, 5, 100), (0.1, 0.0)))


@pytest.mark.parametrize("n, batch_kind, epochs, noise", BN_GRID)
def test_batch_norm_caption_names_the_cause_computed_independently(n, batch_kind, epochs, noise):
    """Item 6 over n x batch x epochs x noise (incl. n = 2 and noise 0): the statistic the caption
    blames is the one whose swap, computed here, moves the loss more; 'agree' iff within 1%."""
    key = ("seed", 42, n, noise)
    batch = {"two": 2, "half": max(2, n // 2), "full": n}[batch_kind]
    p, cond = vs.problem(key, "batchnorm")
    res = vs.run(key, 42, "batchnorm", 0.5 * cond.max_stable_lr, batch, epochs, "gd", 0.9, 0.9, 0.999)
    text = vs.describe_bn_modes(vs.bn_modes_facts(key, res))
    th = res.final_theta

    def loss(m, v):
        return float(np.mean(((p.X - m) / np.sqrt(v + p.eps) @ th[:2] + th[2] - p.y) ** 2))

    mu, var = p.X.mean(0), p.X.var(0)
    train, ev = loss(mu, var), loss(res.running_mean, res.running_var)
    assert ev == pytest.approx(res.eval_loss, rel=1e-9, abs=1e-12)
    if abs(ev - train) <= 0.01 * max(train, 1e-12):
        assert "agree to within 1%" in text
    else:
        d_mean, d_var = abs(loss(res.running_mean, var) - train), abs(loss(mu, res.running_var) - train)
        assert f"comes from the running **{'variance' if d_var > d_mean else 'mean'}**" in text


# ---- defects found by this QA (see /work/c1-defects.md); D1-D7 fixed by c1 in a5851cc ---------

def test_collinear_upload_prose_does_not_call_an_infinite_kappa_a_bowl():
    at = _upload(_app(c1_source="upload", c1_map=0, c1_epochs=5, c1_variants="raw,standardized"), "col.csv",
                 COLLINEAR)
    text = " ".join(m.value for m in at.markdown)
    assert "as round as standardizing" not in text
    assert "round **bowl**" not in text and "the bowl has κ = ∞" not in text
    assert "flat" in next(m.value for m in at.markdown if "Fit $" in m.value)  # the intro's own flat-floor branch


def test_correlated_upload_intro_does_not_promise_a_round_bowl():
    at = _upload(_app(c1_source="upload", c1_map=0, c1_epochs=5, c1_variants="raw,standardized"), "corr.csv",
                 CORRELATED)
    key = vs.register_upload(CORRELATED)[0]
    assert vs.data_facts(key).conds["standardized"].kappa > 100  # a valley, not a bowl
    intro = next(m.value for m in at.markdown if "Fit $" in m.value)
    assert "round **bowl**" not in intro


def test_adam_same_rate_at_0_3_is_explained():
    at = _app(c1_opt="adam", c1_mode="same", c1_lr=0.3, c1_map=0)
    assert any("weight units" in i.value for i in at.info)


def test_switching_to_the_same_learning_rate_with_two_samples_runs():
    at = _app(c1_map=0, c1_n=2, c1_variants="raw,batchnorm")
    at.radio(key="c1_mode").set_value("same").run()
    assert not any("diverged" in e.value for e in at.error)


def test_the_batch_clamp_is_said_where_it_can_be_seen():
    at = _app(c1_n=20, c1_map=0, c1_epochs=2)
    in_main = any("asked for" in el.value for el in [*at.main.warning, *at.main.info, *at.main.caption])
    in_open_expander = any(e.proto.expanded and any("asked for" in c.value for c in e.caption)
                           for e in at.sidebar.expander)
    assert in_main or in_open_expander


def test_the_unbiased_variance_factor_is_n_over_n_minus_1():
    key = ("seed", 42, 20, 0.1)
    p, cond = vs.problem(key, "batchnorm")
    res = vs.run(key, 42, "batchnorm", 0.5 * cond.max_stable_lr, 19, 100, "gd", 0.9, 0.9, 0.999)
    text = vs.describe_bn_modes(vs.bn_modes_facts(key, res))
    assert "m/(m − 1)" not in text


AFFINE = ("a,b,y\n" + "".join(f"{a},{2 * a + 3},{5 * a + (a % 3)}\n" for a in range(1, 30))).encode()


def test_affine_upload_warning_matches_each_variants_kappa():
    at = _upload(_app(c1_source="upload", c1_map=0, c1_epochs=5, c1_variants="raw,standardized"), "aff.csv", AFFINE)
    key = vs.register_upload(AFFINE)[0]
    conds = vs.data_facts(key).conds
    assert np.isfinite(conds["raw"].kappa) and np.isinf(conds["standardized"].kappa)
    warn = next(w.value for w in at.warning if "carry the same information" in w.value)
    assert "every variant's condition number is infinite" not in warn


def test_batch_norm_caption_after_a_divergence_says_so():
    """D9, fixed by c1 in 7b48a83 (the caption compared two exploded losses: 'agree to within 1%')."""
    at = _app(c1_variants="standardized,batchnorm", c1_frac=1.5, c1_epochs=200, c1_map=0)
    assert any("batch-normalized: diverged" in e.value for e in at.error)
    cap = next(c.value for c in at.caption if c.value.startswith("Batch norm"))
    assert "diverged" in cap and "agree to within 1%" not in cap


@pytest.mark.parametrize("query", [{"c1_mom": 0.99, "c1_batch": 1, "c1_epochs": 2},
                                   {"c1_mom": 0.99, "c1_batch": 5, "c1_epochs": 20},
                                   {"c1_mom": 0.95, "c1_batch": 2, "c1_epochs": 5,
                                    "c1_variants": "raw,minmax,standardized,batchnorm"}])
def test_switching_to_the_same_rate_with_momentum_and_mini_batches_runs(query):
    """D10, fixed by c1 in 8e3fafb: the opening rate is checked by running, and it is the LARGEST
    offered rate that runs (the caption says so): the next offered rate diverges (computed here)."""
    at = _app(c1_map=0, c1_opt="momentum", **query)
    at.radio(key="c1_mode").set_value("same").run()
    assert not any("diverged" in e.value for e in at.error)
    ss = at.session_state
    lr = ss["c1_lr"]
    assert any(f"Learning rate set to {lr:g}" in c.value for c in at.sidebar.caption)
    bigger = [o for o in vs.LR_OPTIONS if o > lr][0]
    key = ("seed", ss["c1_seed"], ss["c1_n"], ss["c1_noise"])
    assert any(vs.run(key, ss["c1_seed"], v, bigger, min(ss["c1_batch"], ss["c1_n"]), ss["c1_epochs"], "momentum",
                      ss["c1_mom"], ss["c1_beta1"], ss["c1_beta2"]).diverged for v in ss["c1_variants"])
