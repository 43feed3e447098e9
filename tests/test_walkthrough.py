"""Chapter 2 helpers against independent truths: closed forms, hand loops, invariants."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_

from bn_core import walkthrough as w


@pytest.mark.parametrize(("shift", "scale"), [(0.0, 1.0), (3.5, 2.0), (-40.0, 0.01), (50.0, 100.0)])
def test_synthetic_batch_has_the_requested_statistics(shift, scale):
    n = 40_000
    x = w.make_batch("synthetic", n, 4, shift, scale, seed=7)
    mean, var = w.synthetic_population(4, shift, scale)
    assert np.allclose(mean, np.array(w.OFFSETS) + shift)
    assert np.allclose(var, (scale * np.array(w.SCALES)) ** 2)
    se = np.sqrt(var / n)
    assert np.all(np.abs(x.mean(axis=0) - mean) < 5 * se)
    assert np.allclose(x.var(axis=0), var, rtol=0.05)


@pytest.mark.parametrize("shape", list(w.SHAPES_TABLE))
def test_every_shape_is_standardized(shape):
    z = w.SHAPES_TABLE[shape](np.random.default_rng(3), 200_000)
    assert abs(z.mean()) < 0.02
    assert abs(z.var() - 1.0) < 0.02


@pytest.mark.parametrize("source", list(w.SOURCES))
def test_batches_are_deterministic_by_seed(source):
    a = w.make_batch(source, 16, 3, 1.0, 2.0, seed=5)
    b = w.make_batch(source, 16, 3, 1.0, 2.0, seed=5)
    c = w.make_batch(source, 16, 3, 1.0, 2.0, seed=6)
    assert a.shape == (16, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_digits_batch_is_distinct_rows_of_the_preactivations():
    pre = w.digits_preactivations(2, shift=1.0, scale=3.0)
    x = w.make_batch("digits", 100, 2, 1.0, 3.0, seed=1)
    rows = [int(np.flatnonzero(np.all(pre == r, axis=1))[0]) for r in x]
    assert len(set(rows)) == 100  # sampled without replacement
    mean, var = w.population_stats("digits", 2, 1.0, 3.0)
    assert np.allclose(mean, pre.mean(axis=0)) and np.allclose(var, pre.var(axis=0))
    # shift and scale act on the real pre-activations as x = shift + scale * u
    assert np.allclose(pre, 1.0 + 3.0 * w.digits_preactivations(2))


@pytest.mark.parametrize("bad", [0, 5, -1])
def test_feature_count_is_checked(bad):
    with pytest.raises(ValueError, match="n_features"):
        w.make_batch("synthetic", 4, bad)


def test_training_pass_matches_the_formulas_by_hand():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(37, 3))
    gamma, beta, eps = 1.7, -0.4, 1e-3
    out = w.pass_batch(x, gamma, beta, eps, training=True)
    mu = x.sum(axis=0) / 37
    var = ((x - mu) ** 2).sum(axis=0) / 37  # biased
    x_hat = (x - mu) / np.sqrt(var + eps)
    assert out["error"] is None
    assert np.allclose(out["mean"], mu) and np.allclose(out["var"], var)
    assert np.allclose(out["var_unbiased"], var * 37 / 36)
    assert np.allclose(out["x_hat"], x_hat)
    assert np.allclose(out["y"], gamma * x_hat + beta)
    # invariants of the normalized batch
    assert np.allclose(out["x_hat"].mean(axis=0), 0.0, atol=1e-12)
    assert np.allclose(out["x_hat"].var(axis=0), var / (var + eps))


def test_evaluation_pass_uses_the_given_running_statistics():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 2))
    rm, rv = np.array([0.5, -1.0]), np.array([2.0, 0.25])
    out = w.pass_batch(x, 2.0, 1.0, 1e-5, training=False, running_mean=rm, running_var=rv)
    x_hat = (x - rm) / np.sqrt(rv + 1e-5)
    assert np.allclose(out["mean"], rm) and np.allclose(out["var"], rv)
    assert np.allclose(out["x_hat"], x_hat)
    assert np.allclose(out["y"], 2.0 * x_hat + 1.0)


def test_one_sample_cannot_train_but_evaluates():
    x = np.array([[1.0, 2.0]])
    out = w.pass_batch(x, training=True)
    assert out["y"] is None and out["x_hat"] is None
    assert "variance" in out["error"]
    ev = w.pass_batch(x, training=False)
    assert ev["error"] is None
    assert np.allclose(ev["y"], x / np.sqrt(1.0 + 1e-5))  # fresh layer: running 0 and 1
    assert np.all(np.isnan(ev["var_unbiased"]))


@settings(max_examples=30, deadline=None)
@given(shift=st_.floats(-50, 50), scale=st_.floats(0.05, 100), seed=st_.integers(0, 1000))
def test_normalization_removes_shift_and_scale(shift, scale, seed):
    """BN(shift + scale * u) = BN(u) for scale > 0 (up to eps): the layer undoes both."""
    eps = 1e-12
    base = w.pass_batch(w.make_batch("digits", 64, 3, 0.0, 1.0, seed), eps=eps)["x_hat"]
    moved = w.pass_batch(w.make_batch("digits", 64, 3, shift, scale, seed), eps=eps)["x_hat"]
    assert np.allclose(moved, base, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("momentum", [0.01, 0.1, 0.5, 1.0])
def test_running_statistics_of_a_repeated_batch_follow_the_closed_form(momentum):
    rng = np.random.default_rng(2)
    batch = rng.normal(4.0, 3.0, size=(10, 2))
    k = 25
    hist = w.running_stats_from_batches([batch] * k, 2, momentum=momentum)
    steps = np.arange(k + 1)[:, None]
    decay = (1.0 - momentum) ** steps
    mu, s2 = batch.mean(axis=0), batch.var(axis=0, ddof=1)
    assert np.allclose(hist["running_mean"], (1 - decay) * mu)
    assert np.allclose(hist["running_var"], decay * 1.0 + (1 - decay) * s2)
    assert np.array_equal(hist["step"], np.arange(k + 1))


def test_running_statistics_match_a_hand_loop_over_fresh_batches():
    m = 0.2
    batches = list(w.batch_stream("synthetic", 8, 3, 2.0, 1.5, n_steps=30, seed=4))
    hist = w.running_stats_from_batches(batches, 3, momentum=m)
    rm, rv = np.zeros(3), np.ones(3)
    for t, b in enumerate(batches, start=1):
        rm = (1 - m) * rm + m * b.mean(axis=0)
        rv = (1 - m) * rv + m * b.var(axis=0, ddof=1)
        assert np.allclose(hist["running_mean"][t], rm)
        assert np.allclose(hist["running_var"][t], rv)


def test_demo_converges_to_the_population_and_closes_the_train_eval_gap():
    probe = w.make_batch("synthetic", 64, 2, 5.0, 2.0, seed=0)
    hist = w.running_stats_demo("synthetic", 64, 2, 5.0, 2.0, momentum=0.1, n_steps=300, seed=0,
                                gamma=1.5, beta=0.5, probe=probe)
    # after 300 steps (1 - 0.1)**300 ~ 2e-14 of the initial 0/1 is left; the rest is batch noise
    tail_mean = hist["running_mean"][-100:].mean(axis=0)
    tail_var = hist["running_var"][-100:].mean(axis=0)
    assert np.allclose(tail_mean, hist["pop_mean"], atol=0.15 * np.sqrt(hist["pop_var"]))
    assert np.allclose(tail_var, hist["pop_var"], rtol=0.15)
    gap = hist["eval_gap"]
    assert gap.shape == (301, 2)
    assert np.all(gap[-1] < 0.25 * gap[0])
    # the training-mode output of the probe is the probe's own normalization
    assert np.allclose(hist["y_train"], w.pass_batch(probe, 1.5, 0.5)["y"])
    assert hist["y_eval_first"].shape == hist["y_eval_last"].shape == (64, 2)


def test_demo_with_a_one_sample_probe_has_no_gap_but_eval_outputs():
    probe = w.make_batch("synthetic", 1, 2, 0.0, 1.0, seed=0)
    hist = w.running_stats_demo("synthetic", 16, 2, 0.0, 1.0, 0.1, 10, seed=0, probe=probe)
    assert "eval_gap" not in hist
    assert hist["y_eval_last"].shape == (1, 2)
    assert np.all(np.isfinite(hist["y_eval_last"]))


@pytest.mark.parametrize("momentum", [0.001, 0.01, 0.1, 0.3, 0.9, 1.0])
def test_steps_to_forget_is_the_smallest_such_step(momentum):
    k = w.steps_to_forget(momentum, 0.05)
    assert (1 - momentum) ** k <= 0.05 + 1e-15
    assert k == 1 or (1 - momentum) ** (k - 1) > 0.05


def test_constant_feature_stays_finite():
    x = np.column_stack([np.full(8, 3.0), np.arange(8.0)])
    out = w.pass_batch(x, 2.0, 0.5)
    assert np.all(np.isfinite(out["y"]))
    assert np.allclose(out["y"][:, 0], 0.5)
