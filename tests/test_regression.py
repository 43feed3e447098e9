"""Regression core: closed forms against direct evaluation, descent against theory, edge cases."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bn_core import regression as R
from bn_core.data import make_regression
from bn_core.layers import BatchNorm1d
from bn_core.scaling import BN_EPS, batch_standardize, to_original_units


def _random_problem(seed, n=40, variant="raw"):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(1, 10, n), rng.uniform(1, 200, n)])
    y = X @ rng.normal(size=2) + rng.normal() + rng.normal(size=n)
    return R.make_problem(X, y, variant)


@pytest.mark.parametrize("variant", R.VARIANTS)
def test_closed_form_grid_equals_direct_evaluation(variant):
    p = _random_problem(0, variant=variant)
    rng = np.random.default_rng(1)
    w1, w2 = np.sort(rng.normal(size=17)) * 3, np.sort(rng.normal(size=11)) * 3
    fixed = rng.normal(size=p.design.shape[1] - 2)
    Z = R.loss_grid(p.stats, w1, w2, fixed)
    Zd = R.loss_grid_direct(p.design, p.y, w1, w2, fixed, chunk=50)
    assert Z.shape == (11, 17)
    np.testing.assert_allclose(Z, Zd, rtol=1e-9)
    # one cell by hand
    theta = np.concatenate([[w1[4], w2[7]], fixed])
    assert Z[7, 4] == pytest.approx(np.mean((p.design @ theta - p.y) ** 2), rel=1e-10)


def test_grid_rejects_wrong_number_of_fixed_parameters():
    p = _random_problem(0, variant="standardized")
    with pytest.raises(ValueError):
        R.loss_grid(p.stats, np.zeros(3), np.zeros(3))


def test_gradient_and_hessian_against_finite_differences():
    p = _random_problem(2, variant="minmax")
    rng = np.random.default_rng(3)
    theta = rng.normal(size=3)
    h = 1e-6
    fd = np.array([(R.mse_loss(p.design, p.y, theta + h * e) - R.mse_loss(p.design, p.y, theta - h * e)) / (2 * h)
                   for e in np.eye(3)])
    np.testing.assert_allclose(R.mse_gradient(p.design, p.y, theta), fd, rtol=1e-5, atol=1e-6)
    fdH = np.array([(R.mse_gradient(p.design, p.y, theta + h * e) - R.mse_gradient(p.design, p.y, theta - h * e)) / (2 * h)
                    for e in np.eye(3)])
    np.testing.assert_allclose(R.mse_hessian(p.design), fdH, rtol=1e-5, atol=1e-6)


def test_least_squares_recovers_true_weights_without_noise():
    d = make_regression(seed=5, n=30, noise=0.0)
    np.testing.assert_allclose(R.least_squares(R.make_problem(d.X, d.y, "raw").design, d.y), [2, 3], atol=1e-10)
    for v in ("minmax", "standardized"):
        r = R.run(R.make_problem(d.X, d.y, v), 0.0, 30, 1)
        np.testing.assert_allclose(r.star_original[0], [2, 3], atol=1e-9)
        assert r.star_original[1] == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize("variant", ["minmax", "standardized", "batchnorm"])
def test_converged_descent_maps_back_to_least_squares_with_intercept(variant):
    d = make_regression(seed=42, n=100, noise=0.1)
    p = R.make_problem(d.X, d.y, variant)
    ev = np.linalg.eigvalsh(p.hessian)
    r = R.run(p, 2 / (ev[0] + ev[-1]), 100, 400 if variant == "minmax" else 60)
    A = np.column_stack([d.X, np.ones(100)])
    truth = np.linalg.lstsq(A, d.y, rcond=None)[0]  # independent: OLS on original units
    w, b = r.coef_original
    if variant == "batchnorm":
        # coef_original is evaluation mode (running statistics, unbiased variance): check that
        # mapping, then compare the training-mode (full-batch statistics) model with OLS.
        ew, eb = to_original_units(r.final_theta[:2], r.final_theta[2], r.running_mean, np.sqrt(r.running_var + BN_EPS))
        np.testing.assert_allclose(w, ew)
        assert b == pytest.approx(eb)
        w, b = to_original_units(r.final_theta[:2], r.final_theta[2], p.shift, p.scale)
    np.testing.assert_allclose(w, truth[:2], rtol=1e-7)
    assert b == pytest.approx(truth[2], abs=1e-5)


@pytest.mark.parametrize("variant", R.VARIANTS)
def test_batch_quadratics_give_the_batch_gradient(variant):
    """Step k's 2 (G_k theta - c_k) equals the gradient computed directly on batch k's data."""
    p = _random_problem(6, n=23, variant=variant)
    order, offsets = R.batch_plan(23, 5, 2, seed=9)
    bq = R.batch_quadratics(p, order, offsets)
    rng = np.random.default_rng(10)
    for k in (0, 3, len(offsets) - 2):
        idx = order[offsets[k]:offsets[k + 1]]
        if variant == "batchnorm":
            D = np.column_stack([batch_standardize(p.X[idx])[0], np.ones(len(idx))])
        else:
            D = p.design[idx]
        theta = rng.normal(size=D.shape[1])
        np.testing.assert_allclose(2 * (bq.G[k] @ theta - bq.c[k]), R.mse_gradient(D, p.y[idx], theta), rtol=1e-10, atol=1e-10)



@pytest.mark.parametrize("variant", R.VARIANTS)
def test_full_batch_quadratics_equal_the_batch_gradient_at_every_step(variant):
    """Full batch takes the shortcut (one quadratic repeated); every step still gives the
    gradient on the whole data set, and batch norm's statistics are the data set's own."""
    n = 17
    p = _random_problem(4, n=n, variant=variant)
    order, offsets = R.batch_plan(n, n, 5, seed=3)
    bq = R.batch_quadratics(p, order, offsets)
    assert bq.G.shape[0] == 5 and np.all(bq.sizes == n)
    D = np.column_stack([batch_standardize(p.X)[0], np.ones(n)]) if variant == "batchnorm" else p.design
    rng = np.random.default_rng(4)
    for k in range(5):
        theta = rng.normal(size=D.shape[1])
        np.testing.assert_allclose(2 * (bq.G[k] @ theta - bq.c[k]), R.mse_gradient(D, p.y, theta), rtol=1e-10, atol=1e-10)
    if variant == "batchnorm":
        np.testing.assert_allclose(bq.batch_mean, np.tile(p.X.mean(axis=0), (5, 1)), rtol=1e-12)
        np.testing.assert_allclose(bq.batch_var, np.tile(p.X.var(axis=0), (5, 1)), rtol=1e-12)


def test_batch_plan_shuffles_without_replacement_each_epoch():
    order, offsets = R.batch_plan(10, 3, 4, seed=1)
    assert len(offsets) - 1 == 4 * math.ceil(10 / 3)
    for e in range(4):
        assert sorted(order[e * 10:(e + 1) * 10]) == list(range(10))
    assert not np.array_equal(order[:10], order[10:20])
    np.testing.assert_array_equal(np.diff(offsets)[:4], [3, 3, 3, 1])
    again, _ = R.batch_plan(10, 3, 4, seed=1)
    np.testing.assert_array_equal(order, again)


def test_same_number_of_steps_for_every_variant():
    d = make_regression(n=17)
    runs = [R.run(R.make_problem(d.X, d.y, v), 1e-6, 4, 3) for v in R.VARIANTS]
    assert {r.n_steps for r in runs} == {3 * math.ceil(17 / 4)}
    assert all(len(r.history["loss"]) == r.n_steps + 1 for r in runs)


def _well_posed(seed, n, scale_b):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(1, 10, n), rng.uniform(1, scale_b, n)])
    y = X @ rng.normal(0, 3, size=2) + rng.normal(size=n)
    return X, y


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 100_000), n=st.integers(3, 40), scale_b=st.floats(2, 300),
       frac=st.floats(0.05, 0.95), variant=st.sampled_from(["raw", "minmax", "standardized"]))
def test_full_batch_gd_below_2_over_lambda_max_decreases_monotonically(seed, n, scale_b, frac, variant):
    X, y = _well_posed(seed, n, scale_b)
    p = R.make_problem(X, y, variant)
    ev = np.linalg.eigvalsh(p.hessian)
    assume(ev[0] > 1e-9 * ev[-1])
    r = R.run(p, frac * 2 / ev[-1], n, 60, theta0=np.random.default_rng(seed).normal(size=len(ev)))
    loss = r.history["loss"]
    assert not r.diverged
    assert np.all(np.diff(loss) <= 1e-9 * loss[0])
    assert loss[-1] < loss[0]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 100_000), n=st.integers(3, 40), scale_b=st.floats(2, 300),
       frac=st.floats(1.2, 3.0), variant=st.sampled_from(["raw", "minmax", "standardized"]))
def test_full_batch_gd_above_2_over_lambda_max_is_flagged_as_diverging(seed, n, scale_b, frac, variant):
    X, y = _well_posed(seed, n, scale_b)
    p = R.make_problem(X, y, variant)
    ev = np.linalg.eigvalsh(p.hessian)
    assume(ev[0] > 1e-9 * ev[-1])
    r = R.run(p, frac * 2 / ev[-1], n, 400, theta0=np.random.default_rng(seed).normal(size=len(ev)))
    assert r.diverged and 0 < r.diverged_at <= r.n_steps
    assert len(r.history["loss"]) == r.diverged_at  # path kept up to the step before
    assert np.all(np.isfinite(r.history["loss"])) and np.all(np.isfinite(r.history["w1"]))
    assert np.all(np.isfinite(r.coef_original[0]))


def test_divergence_on_default_data_with_a_step_too_large_for_raw():
    d = make_regression()
    r = R.run(R.make_problem(d.X, d.y, "raw"), 1e-3, 100, 100)  # 2/lambda_max ~ 7.4e-5
    assert r.diverged and r.diverged_at < 20
    ok = R.run(R.make_problem(d.X, d.y, "standardized"), 1e-3, 100, 100)
    assert not ok.diverged


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_momentum_and_adam_converge_on_the_bowl(optimizer):
    d = make_regression()
    p = R.make_problem(d.X, d.y, "standardized")
    lr = 0.1 if optimizer == "momentum" else 2.0  # Adam moves b (~300) by <= lr per step
    r = R.run(p, lr, 100, 1000, optimizer=optimizer)
    assert r.history["suboptimality"][-1] < 1e-6 * r.history["suboptimality"][0]


def test_momentum_matches_a_hand_written_loop():
    p = _random_problem(11, n=12, variant="standardized")
    r = R.run(p, 0.05, 12, 5, optimizer="momentum", hyper=R.Hyper(momentum=0.7))
    theta, v = np.zeros(3), np.zeros(3)
    for _ in range(5):
        v = 0.7 * v + R.mse_gradient(p.design, p.y, theta)
        theta = theta - 0.05 * v
    np.testing.assert_allclose(r.final_theta, theta, rtol=1e-10)


def test_adam_matches_a_hand_written_loop():
    p = _random_problem(12, n=12, variant="raw")
    r = R.run(p, 0.01, 12, 4, optimizer="adam")
    theta, m, v = np.zeros(2), np.zeros(2), np.zeros(2)
    for t in range(1, 5):
        g = R.mse_gradient(p.design, p.y, theta)
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        theta = theta - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(r.final_theta, theta, rtol=1e-10)


def test_batchnorm_running_statistics_match_a_hand_loop():
    p = _random_problem(13, n=11, variant="batchnorm")
    order, offsets = R.batch_plan(11, 4, 3, seed=2)
    bq = R.batch_quadratics(p, order, offsets)
    rm, rv = np.zeros(2), np.ones(2)
    for k in range(len(offsets) - 1):
        xb = p.X[order[offsets[k]:offsets[k + 1]]]
        if len(xb) < 2:
            continue
        rm = 0.9 * rm + 0.1 * xb.mean(axis=0)
        rv = 0.9 * rv + 0.1 * xb.var(axis=0, ddof=1)
    got_m, got_v = R.running_statistics(bq)
    np.testing.assert_allclose(got_m, rm, rtol=1e-12)
    np.testing.assert_allclose(got_v, rv, rtol=1e-12)



def test_batchnorm_running_statistics_match_the_core_layer():
    """The closed form agrees with BatchNorm1d's own running update fed the same batches."""
    p = _random_problem(14, n=12, variant="batchnorm")
    order, offsets = R.batch_plan(12, 5, 4, seed=3)  # batches of 5, 5, 2
    bq = R.batch_quadratics(p, order, offsets)
    layer = BatchNorm1d(2, momentum=R.BN_MOMENTUM, dtype=np.float64)
    for k in range(len(offsets) - 1):
        layer.forward(p.X[order[offsets[k]:offsets[k + 1]]], training=True)
    got_m, got_v = R.running_statistics(bq)
    np.testing.assert_allclose(got_m, layer.running_mean, rtol=1e-12)
    np.testing.assert_allclose(got_v, layer.running_var, rtol=1e-12)

def test_batchnorm_with_batch_size_one_is_refused_with_a_reason():
    p = _random_problem(0, variant="batchnorm")
    with pytest.raises(ValueError, match="one sample has no batch variance"):
        R.run(p, 0.1, 1, 1)


def test_batchnorm_trailing_single_sample_batch_is_explained_not_crashing():
    p = _random_problem(0, n=9, variant="batchnorm")  # 9 = 4 + 4 + 1
    r = R.run(p, 0.1, 4, 3)
    assert any("single sample" in note for note in r.notes)
    assert np.all(np.isfinite(r.history["loss"]))


@pytest.mark.parametrize("variant", R.VARIANTS)
def test_constant_feature_and_n2_never_crash(variant):
    X = np.array([[3.0, 10.0], [3.0, 50.0], [3.0, 20.0]])
    y = np.array([1.0, 5.0, 2.0])
    r = R.run(R.make_problem(X, y, variant), 1e-4, 3, 5)
    assert np.all(np.isfinite(r.history["loss"]))
    d = make_regression(n=2)
    r = R.run(R.make_problem(d.X, d.y, variant), 1e-5, 2, 5)
    assert np.all(np.isfinite(r.history["loss"]))


def test_steps_to_tolerance():
    loss = np.array([10.0, 5.0, 2.0, 1.1, 1.01])
    assert R.steps_to_tolerance(loss, 1.0, 0.1) == 3
    assert R.steps_to_tolerance(loss, 1.0, 1e-4) is None
    assert R.steps_to_tolerance(np.array([1.0, 1.0]), 1.0, 0.1) == 0


def test_stability_map_cells_equal_individual_runs():
    d = make_regression(seed=1, n=20)
    xs = np.array([0.1, 0.5, 0.99, 1.5])
    m = R.stability_map(d.X, d.y, R.VARIANTS, xs, "fraction", np.array([1, 5, 20]), epochs=20, seed=3)
    assert m.final_loss.shape == (4, 3, 4)
    assert m.undefined[3, 0].all() and not m.undefined[3, 1:].any()
    for v, variant in enumerate(R.VARIANTS):
        p = R.make_problem(d.X, d.y, variant)
        for j, bs in enumerate((1, 5, 20)):
            if variant == "batchnorm" and bs == 1:
                continue
            for i in range(len(xs)):
                r = R.run(p, m.lrs[v, i], bs, 20, seed=3)
                if r.diverged:
                    assert m.diverged[v, j, i] and np.isnan(m.final_loss[v, j, i])
                else:  # a stable run must not be flagged in the map, and its final loss must agree
                    assert not m.diverged[v, j, i], (variant, bs, xs[i])
                    assert m.final_loss[v, j, i] == pytest.approx(r.history["loss"][-1], rel=1e-9)
    # full batch at 1.5 x 2/lambda_max diverges for every variant
    assert m.diverged[:, 2, 3].all()


def test_stability_map_same_lr_mode_and_bad_kind():
    d = make_regression(n=10)
    m = R.stability_map(d.X, d.y, ("raw", "standardized"), np.array([1e-6, 1.0]), "lr", np.array([10]), epochs=3)
    np.testing.assert_array_equal(m.lrs, [[1e-6, 1.0], [1e-6, 1.0]])
    assert m.diverged[0, 0, 1] and not m.diverged[1, 0, 1]
    with pytest.raises(ValueError):
        R.stability_map(d.X, d.y, ("raw",), np.array([1.0]), "bogus", np.array([10]), epochs=1)


def _huge_data(n=30, seed=0):
    """Finite data whose squares overflow: X^T X and y^T y are inf (what a 1e160 CSV would give)."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(1, 10, n) * 1e160, rng.uniform(1, 200, n)])
    return X, X @ np.array([2.0, 3.0])


@pytest.mark.parametrize("variant", R.VARIANTS)
def test_run_on_overflowing_data_keeps_the_start_and_warns_nothing(variant):
    X, y = _huge_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning of any kind may escape
        p = R.make_problem(X, y, variant)
        r = R.run(p, 1e-3, 10, 3)
    assert r.diverged_at == 0  # L(theta_0) itself is not finite
    h = r.history
    assert h["step"].tolist() == [0] and len(h["loss"]) == 1  # a one-point path, never empty
    np.testing.assert_array_equal(np.column_stack([h["w1"], h["w2"]])[0], [0.0, 0.0])  # theta_0
    np.testing.assert_array_equal(r.final_theta, np.zeros(p.design.shape[1]))


def _counting(monkeypatch, name="gd"):
    calls = {"n": 0}
    inner = R.OPTIMIZERS[name]

    def step(*args):
        calls["n"] += 1
        return inner(*args)

    monkeypatch.setitem(R.OPTIMIZERS, name, step)
    return calls


@pytest.mark.parametrize("optimizer", ["gd", "momentum"])  # Adam's step is bounded by ~lr: it never overflows
def test_descend_stops_once_every_run_is_nan_with_the_same_result(monkeypatch, optimizer):
    d = make_regression(seed=3, n=20)
    p = R.make_problem(d.X, d.y, "raw")
    bq = R.batch_quadratics(p, *R.batch_plan(20, 20, 3000, 0))
    lam = np.linalg.eigvalsh(p.hessian)[-1]
    lrs = np.array([[3.0], [10.0]]) * 2 / lam  # both beyond 2(1 + mu)/lambda_max: both overflow to NaN
    monkeypatch.setattr(R, "NAN_CHECK_EVERY", 10**9)  # the full loop, as before
    full = R.descend(bq.G, bq.c, np.zeros((2, 2)), lrs, optimizer)
    monkeypatch.setattr(R, "NAN_CHECK_EVERY", 16)
    calls = _counting(monkeypatch, optimizer)
    early = R.descend(bq.G, bq.c, np.zeros((2, 2)), lrs, optimizer, record_every=1)
    assert calls["n"] < 3000  # it stopped well before the 3000 planned steps
    np.testing.assert_array_equal(early, full)  # bit for bit, NaNs in the same places
    assert np.isnan(full[-1]).all()


def test_descend_does_not_stop_while_one_run_is_still_finite(monkeypatch):
    d = make_regression(seed=3, n=20)
    p = R.make_problem(d.X, d.y, "raw")
    bq = R.batch_quadratics(p, *R.batch_plan(20, 20, 500, 0))
    lam = np.linalg.eigvalsh(p.hessian)[-1]
    calls = _counting(monkeypatch)
    path = R.descend(bq.G, bq.c, np.zeros((2, 2)), np.array([[0.5], [5.0]]) * 2 / lam)
    assert calls["n"] == 500 and np.all(np.isfinite(path[:, 0])) and np.isnan(path[-1, 1]).all()


def test_diverging_run_and_map_are_unchanged_by_the_early_stop(monkeypatch):
    d = make_regression(seed=5, n=30)
    p = R.make_problem(d.X, d.y, "raw")
    lam = np.linalg.eigvalsh(p.hessian)[-1]
    xs = np.array([0.5, 1.2, 3.0])
    monkeypatch.setattr(R, "NAN_CHECK_EVERY", 10**9)
    r_full = R.run(p, 3.0 * 2 / lam, 30, 2000)
    m_full = R.stability_map(d.X, d.y, ("raw", "standardized"), xs, "fraction", np.array([5, 30]), 300)
    monkeypatch.setattr(R, "NAN_CHECK_EVERY", 16)
    r = R.run(p, 3.0 * 2 / lam, 30, 2000)
    m = R.stability_map(d.X, d.y, ("raw", "standardized"), xs, "fraction", np.array([5, 30]), 300)
    assert r.diverged_at == r_full.diverged_at is not None
    for k in r.history:
        np.testing.assert_array_equal(r.history[k], r_full.history[k])
    np.testing.assert_array_equal(m.diverged, m_full.diverged)
    np.testing.assert_array_equal(m.final_loss, m_full.final_loss)


@pytest.mark.parametrize("x_kind, xs", [("fraction", [0.5, 1.5]), ("lr", [1e-6, 3.0])])
def test_stability_map_on_overflowing_data_marks_every_cell_without_a_warning(x_kind, xs):
    X, y = _huge_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = R.stability_map(X, y, R.VARIANTS, np.array(xs), x_kind, np.array([5, 30]), epochs=3)
    assert m.diverged.all() and np.isnan(m.final_loss).all()
