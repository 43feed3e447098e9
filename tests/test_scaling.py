"""Scalers: invariants, constant features, and the round trip to original units."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bn_core.scaling import (
    BN_EPS,
    batch_standardize,
    fit_minmax,
    fit_standard,
    from_original_units,
    to_original_units,
)


def _data(seed=0, n=30):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(1, 10, n), rng.uniform(1, 200, n)])


def test_minmax_maps_to_unit_interval():
    X = _data()
    Xs = fit_minmax(X).transform(X)
    np.testing.assert_allclose(Xs.min(axis=0), 0.0, atol=1e-15)
    np.testing.assert_allclose(Xs.max(axis=0), 1.0, atol=1e-15)


def test_standard_has_zero_mean_unit_biased_variance():
    X = _data(1)
    Z = fit_standard(X).transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Z.var(axis=0), 1.0, rtol=1e-12)  # biased variance, ddof=0


def test_inverse_transform_round_trip():
    X = _data(2)
    for sc in (fit_minmax(X), fit_standard(X)):
        np.testing.assert_allclose(sc.inverse_transform(sc.transform(X)), X, rtol=1e-12)


@pytest.mark.parametrize("fit", [fit_minmax, fit_standard])
def test_constant_feature_does_not_divide_by_zero(fit):
    X = _data(3, 10)
    X[:, 0] = 4.2
    sc = fit(X)
    assert sc.constant.tolist() == [True, False]
    assert sc.scale[0] == 1.0
    Xs = sc.transform(X)
    assert np.all(np.isfinite(Xs))
    np.testing.assert_allclose(Xs[:, 0], 0.0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    w=st.lists(st.floats(-50, 50), min_size=2, max_size=2),
    b=st.floats(-100, 100),
    kind=st.sampled_from(["minmax", "standardized"]),
)
def test_back_mapping_round_trip_and_same_predictions(seed, w, b, kind):
    X = _data(seed, 25)
    sc = fit_minmax(X) if kind == "minmax" else fit_standard(X)
    w = np.array(w)
    w_orig, b_orig = to_original_units(w, b, sc.shift, sc.scale)
    # same function in both coordinate systems
    np.testing.assert_allclose(X @ w_orig + b_orig, sc.transform(X) @ w + b, rtol=1e-9, atol=1e-8)
    # and back
    w_back, b_back = from_original_units(w_orig, b_orig, sc.shift, sc.scale)
    np.testing.assert_allclose(w_back, w, rtol=1e-10, atol=1e-10)
    assert b_back == pytest.approx(b, rel=1e-9, abs=1e-8)


def test_batch_standardize_invariants():
    rng = np.random.default_rng(4)
    Xb = rng.normal(5, 3, size=(16, 2))
    x_hat, mean, var = batch_standardize(Xb)
    np.testing.assert_allclose(mean, Xb.mean(axis=0))
    np.testing.assert_allclose(var, Xb.var(axis=0))
    np.testing.assert_allclose(x_hat.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(x_hat.var(axis=0), var / (var + BN_EPS), rtol=1e-12)


def test_batch_of_one_sample_normalizes_to_zero():
    x_hat, _, var = batch_standardize(np.array([[3.0, 7.0]]))
    np.testing.assert_array_equal(var, 0.0)
    np.testing.assert_array_equal(x_hat, 0.0)


@pytest.mark.parametrize("fit", [fit_minmax, fit_standard])
def test_a_feature_varying_on_a_tiny_scale_is_not_called_constant(fit):
    rng = np.random.default_rng(2)
    X = np.column_stack([rng.uniform(1, 9, 20) * 1e-20, np.full(20, 3e-20)])
    sc = fit(X)
    assert sc.constant.tolist() == [False, True]  # varying at 1e-20 vs truly constant at 3e-20
    Z = sc.transform(X)
    assert np.ptp(Z[:, 0]) > 0.5 and np.all(Z[:, 1] == 0)
