"""Theory against independent truths: numpy's general eigen-solver and direct simulation."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bn_core import theory as T


def _spd(seed, p=3, spread=100.0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    lam = np.sort(rng.uniform(1, spread, p))
    return Q @ np.diag(lam) @ Q.T


def test_eigenvalues_and_derived_numbers_against_numpy():
    H = _spd(0)
    c = T.conditioning(H)
    ev = np.sort(np.linalg.eig(H)[0].real)  # the general (non-symmetric) solver
    np.testing.assert_allclose(c.eigenvalues, ev, rtol=1e-10)
    assert c.kappa == pytest.approx(ev[-1] / ev[0])
    assert c.max_stable_lr == pytest.approx(2 / ev[-1])
    assert c.optimal_lr == pytest.approx(2 / (ev[0] + ev[-1]))
    assert c.optimal_rate == pytest.approx((c.kappa - 1) / (c.kappa + 1))
    assert c.note == ""


def test_singular_hessian_has_infinite_kappa_and_says_why():
    D = np.column_stack([np.zeros(5), np.arange(5.0)])  # a constant (centred) feature
    c = T.conditioning(2 / 5 * D.T @ D)
    assert math.isinf(c.kappa) and "constant feature" in c.note
    assert T.predicted_steps(c.eigenvalues, c.optimal_lr, 1e-3) < math.inf  # over the identifiable direction


def test_zero_hessian():
    c = T.conditioning(np.zeros((2, 2)))
    assert math.isinf(c.kappa) and math.isinf(c.max_stable_lr)
    assert T.predicted_steps(c.eigenvalues, 0.1, 1e-3) == math.inf


def _gd_relative_subopt(H, e0, lr, steps):
    out, e = [], e0.copy()
    for _ in range(steps + 1):
        out.append(e @ H @ e / 2)
        e = e - lr * H @ e
    out = np.array(out)
    return out / out[0]


def test_prediction_is_tight_for_the_worst_direction():
    H = np.diag([1.0, 50.0])
    c = T.conditioning(H)
    tol = 1e-6
    for lr in (0.5 * c.max_stable_lr, c.optimal_lr, 0.9 * c.max_stable_lr):
        rho = T.contraction(c.eigenvalues, lr)
        worst = np.array([1.0, 0.0]) if abs(1 - lr) >= abs(1 - 50 * lr) else np.array([0.0, 1.0])
        rel = _gd_relative_subopt(H, worst, lr, 3000)
        measured = int(np.argmax(rel <= tol))
        assert measured == T.predicted_steps(c.eigenvalues, lr, tol)
        assert rho == pytest.approx(max(abs(1 - lr), abs(1 - 50 * lr)))


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), frac=st.floats(0.05, 0.99), tol=st.sampled_from([1e-2, 1e-4, 1e-6]))
def test_prediction_bounds_measured_steps_from_any_start(seed, frac, tol):
    H = _spd(seed, spread=30.0)
    c = T.conditioning(H)
    lr = frac * c.max_stable_lr
    pred = T.predicted_steps(c.eigenvalues, lr, tol)
    e0 = np.random.default_rng(seed + 1).normal(size=3)
    rel = _gd_relative_subopt(H, e0, lr, int(pred))
    assert rel[int(pred)] <= tol * (1 + 1e-9)


def test_too_large_step_predicts_never():
    c = T.conditioning(np.diag([1.0, 10.0]))
    assert T.predicted_steps(c.eigenvalues, 1.01 * c.max_stable_lr, 1e-3) == math.inf
    with pytest.raises(ValueError):
        T.predicted_steps(c.eigenvalues, 0.1, 0.0)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_non_finite_hessian_is_refused_instead_of_a_nan_kappa(bad):
    H = np.array([[bad, 1.0], [1.0, 2.0]])
    with pytest.raises(ValueError, match="non-finite"):
        T.conditioning(H)


def test_features_on_scales_a_million_apart_explain_the_infinite_kappa():
    D = np.column_stack([np.array([1.0, -1.0, 2.0, -2.0]) * 1e7, np.array([1.0, 1.0, -1.0, -1.0]) * 1e-1])
    c = T.conditioning(2 / 4 * D.T @ D)  # eigenvalues 5e13 and 1e-2: ratio below 1e-12
    assert math.isinf(c.kappa) and "scales differ" in c.note
