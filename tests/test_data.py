"""The seed data set: exact recipe, determinism, validation, and the conditioning it implies."""

import numpy as np
import pytest

from bn_core.data import TRUE_WEIGHTS, make_regression


def test_recipe_is_the_seed_article_exactly():
    d = make_regression(seed=7, n=13, noise=0.5)
    rng = np.random.default_rng(7)
    a = rng.uniform(1, 10, 13)
    b = rng.uniform(1, 200, 13)
    y = 2 * a + 3 * b + 0.5 * rng.normal(size=13)
    np.testing.assert_array_equal(d.X, np.column_stack([a, b]))
    np.testing.assert_array_equal(d.y, y)
    np.testing.assert_array_equal(d.true_weights, [2.0, 3.0])


def test_deterministic_and_seed_dependent():
    a, b, c = make_regression(42), make_regression(42), make_regression(43)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.allclose(a.X, c.X)


def test_ranges_and_shapes():
    d = make_regression(seed=1, n=500, noise=0.1)
    assert d.X.shape == (500, 2) and d.y.shape == (500,)
    assert d.X[:, 0].min() >= 1 and d.X[:, 0].max() <= 10
    assert d.X[:, 1].min() >= 1 and d.X[:, 1].max() <= 200


def test_noise_free_target_is_exactly_linear():
    d = make_regression(seed=3, n=20, noise=0.0)
    np.testing.assert_allclose(d.y, d.X @ TRUE_WEIGHTS, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kwargs", [{"n": 1}, {"n": 0}, {"noise": -1.0}, {"noise": float("nan")}, {"noise": float("inf")}])
def test_invalid_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        make_regression(**kwargs)


def test_smallest_data_set_n2():
    d = make_regression(seed=0, n=2)
    assert d.X.shape == (2, 2)


def test_default_data_condition_numbers_computed_independently():
    """The numbers the chapter quotes (kappa ~ 919.5 raw, ~ 1.317 standardized), from plain numpy."""
    d = make_regression()  # seed 42, n 100, noise 0.1
    n = len(d.y)
    H_raw = 2.0 / n * d.X.T @ d.X
    ev = np.sort(np.linalg.eigvals(H_raw).real)
    assert ev[0] == pytest.approx(29.37, abs=0.01)
    assert ev[1] == pytest.approx(27006, abs=1)
    assert ev[1] / ev[0] == pytest.approx(919.5, abs=0.05)
    assert 2 / ev[1] == pytest.approx(7.41e-5, rel=1e-3)

    Z = (d.X - d.X.mean(axis=0)) / d.X.std(axis=0)
    D = np.column_stack([Z, np.ones(n)])
    ev = np.sort(np.linalg.eigvals(2.0 / n * D.T @ D).real)
    assert ev[-1] / ev[0] == pytest.approx(1.317, abs=0.001)
    assert 2 / ev[-1] == pytest.approx(0.88, abs=0.001)

    M = (d.X - d.X.min(axis=0)) / (d.X.max(axis=0) - d.X.min(axis=0))
    D = np.column_stack([M, np.ones(n)])
    ev = np.sort(np.linalg.eigvals(2.0 / n * D.T @ D).real)
    assert ev[-1] / ev[0] == pytest.approx(31.7, abs=0.05)
