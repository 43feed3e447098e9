"""bn_core.recurrent: gradients by finite differences, per-step statistics, LN invariance,
lengths beyond training, masks, and the trainer's determinism and bad-input handling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bn_core import recurrent as R
from bn_core.layers import BatchNorm1d
from bn_core.recurrent import EVAL_POLICIES, NORMS, RNNClassifier, RNNConfig, train
from tests.test_layers import numeric_grad

NORM_NAMES = list(NORMS)


def loss_of(model, x, G, training=True, lengths=None):
    return float(np.sum(model.forward(x, training=training, lengths=lengths) * G))


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-12))


@pytest.mark.parametrize("norm", NORM_NAMES)
@pytest.mark.parametrize("masked", [False, True])
def test_gradients_match_finite_differences(norm, masked):
    """Every parameter and the input, random upstream gradient, float64, rel. error < 1e-6."""
    rng = np.random.default_rng(3)
    model = RNNClassifier(3, 5, 4, norm=norm, seed=1)
    # perturb gamma/beta away from 1/0 so their gradients are tested in general position
    if norm != "none":
        model.params["gamma"][...] = rng.uniform(0.5, 1.5, 5)
        model.params["beta"][...] = rng.normal(size=5)
    x = rng.normal(size=(6, 5, 3))
    G = rng.normal(size=(6, 4))
    lengths = np.array([3, 2, 5, 5, 2, 4]) if masked else None
    model.forward(x, lengths=lengths)
    dx = model.backward(G)
    analytic = {k: v.copy() for k, v in model.grads.items()}
    assert set(analytic) == set(model.params)

    def f():
        return loss_of(model, x, G, lengths=lengths)

    for k, p in model.params.items():
        assert rel_err(numeric_grad(f, p), analytic[k]) < 1e-6, k
    assert rel_err(numeric_grad(f, x), dx) < 1e-6
    if masked:  # padding is never read
        assert np.all(dx[1, 2:] == 0) and np.all(dx[0, 3:] == 0)


def test_eval_mode_gradients_match_finite_differences_beyond_trained_length():
    """Backward after an evaluation forward that reuses one step's layer for many steps."""
    rng = np.random.default_rng(4)
    model = RNNClassifier(2, 4, 3, norm="bn", seed=0)
    for _ in range(3):
        model.forward(rng.normal(size=(8, 3, 2)), training=True)
    x = rng.normal(size=(5, 7, 2))
    G = rng.normal(size=(5, 3))
    model.forward(x, training=False)
    assert list(model.stat_step) == [1, 2, 3, 3, 3, 3, 3]
    dx = model.backward(G)
    grads = {k: v.copy() for k, v in model.grads.items()}

    def f():
        return loss_of(model, x, G, training=False)

    for k in ("W_h", "gamma", "beta"):
        assert rel_err(numeric_grad(f, model.params[k]), grads[k]) < 1e-6
    assert rel_err(numeric_grad(f, x), dx) < 1e-6


def test_bn_uses_each_steps_own_batch_statistics():
    rng = np.random.default_rng(0)
    model = RNNClassifier(3, 6, 2, norm="bn", seed=0)
    x = rng.normal(size=(10, 4, 3)) + np.arange(4)[None, :, None]  # steps differ
    model.forward(x, training=True)
    assert model.trained_length == 4 and len({id(b) for b in model.bn_steps}) == 4
    for t, bn in enumerate(model.bn_steps):
        a = model.pre_norm[t]
        np.testing.assert_allclose(bn.last_mean, a.mean(axis=0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(bn.last_var, a.var(axis=0), rtol=1e-10, atol=1e-12)
        # running statistics: one momentum-0.1 update from (0, 1), unbiased variance
        np.testing.assert_allclose(bn.running_mean, 0.1 * a.mean(axis=0), atol=1e-12)
        np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * a.var(axis=0, ddof=1), atol=1e-12)
        # gamma and beta are the model's shared arrays
        assert bn.params["gamma"] is model.params["gamma"]
    rm, _ = model.running_stats()
    assert rm.shape == (4, 6) and not np.allclose(rm[0], rm[3])


def test_masked_bn_averages_over_active_sequences_only():
    rng = np.random.default_rng(1)
    model = RNNClassifier(2, 3, 2, norm="bn", seed=0)
    lengths = np.array([1, 2, 4, 4, 3])
    model.forward(rng.normal(size=(5, 4, 2)), training=True, lengths=lengths)
    assert list(model.n_active) == [5, 4, 3, 2]
    for t in range(4):
        assert model.pre_norm[t].shape[0] == model.n_active[t]
        np.testing.assert_allclose(model.bn_steps[t].last_mean, model.pre_norm[t].mean(axis=0))
    assert model.fallback_steps == []
    model.forward(rng.normal(size=(5, 4, 2)), training=True, lengths=np.array([1, 1, 4, 2, 2]))
    assert model.fallback_steps == [3, 4]  # one sequence left: no batch variance


@pytest.mark.parametrize("norm", NORM_NAMES)
def test_masked_sequences_equal_their_unpadded_selves_in_evaluation(norm):
    rng = np.random.default_rng(2)
    model = RNNClassifier(3, 5, 4, norm=norm, seed=0)
    if norm == "bn":
        model.forward(rng.normal(size=(8, 6, 3)), training=True)
    x = rng.normal(size=(4, 6, 3))
    lengths = np.array([6, 2, 4, 1])
    batch = model.forward(x, training=False, lengths=lengths)
    for i, L in enumerate(lengths):
        alone = model.forward(x[i:i + 1, :L], training=False)
        np.testing.assert_allclose(batch[i], alone[0], rtol=1e-12, atol=1e-12)


def test_ln_same_in_training_and_evaluation_and_alone_or_in_a_batch():
    rng = np.random.default_rng(5)
    model = RNNClassifier(4, 7, 3, norm="ln", seed=2)
    x = rng.normal(size=(9, 6, 4))
    train_out = model.forward(x, training=True)
    eval_out = model.forward(x, training=False)
    np.testing.assert_array_equal(train_out, eval_out)
    for i in (0, 4, 8):
        np.testing.assert_allclose(model.forward(x[i:i + 1], training=True)[0], train_out[i],
                                   rtol=1e-12, atol=1e-12)
    # and per sample: each step's hidden pre-activation is normalized over its own units
    model.forward(x, training=True)
    xh = model.ln.x_hat
    np.testing.assert_allclose(xh.mean(axis=1), 0, atol=1e-12)


def test_bn_output_of_a_sample_depends_on_its_batch_in_training_but_not_in_evaluation():
    rng = np.random.default_rng(6)
    model = RNNClassifier(3, 5, 2, norm="bn", seed=0)
    x = rng.normal(size=(8, 4, 3))
    a = model.forward(x, training=True)[0]
    b = model.forward(np.concatenate([x[:1], rng.normal(size=(7, 4, 3))]), training=True)[0]
    assert not np.allclose(a, b)
    e1 = model.forward(x, training=False)[0]
    e2 = model.forward(x[:2], training=False)[0]
    np.testing.assert_allclose(e1, e2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("norm", NORM_NAMES)
@pytest.mark.parametrize("policy", list(EVAL_POLICIES))
def test_evaluation_longer_than_training_works(norm, policy):
    rng = np.random.default_rng(7)
    model = RNNClassifier(3, 5, 4, norm=norm, seed=0)
    model.eval_policy = policy
    for _ in range(2):
        model.forward(rng.normal(size=(6, 4, 3)), training=True)
    out = model.forward(rng.normal(size=(5, 12, 3)), training=False)
    assert out.shape == (5, 4) and np.all(np.isfinite(out))
    if norm == "bn":
        expected_beyond = {"last": 4, "fresh": 0, "batch": -1}[policy]
        assert list(model.stat_step[:4]) == [1, 2, 3, 4]
        assert set(model.stat_step[4:]) == {expected_beyond}
        assert model.trained_length == 4  # evaluation never adds statistics
        one = model.forward(rng.normal(size=(1, 9, 3)), training=False)  # a batch of one
        assert np.all(np.isfinite(one))
        if policy == "batch":
            assert set(model.stat_step[4:]) == {4}  # no batch statistics of one sample: "last"


def test_last_policy_equals_statistics_of_last_step():
    """Beyond T_max, "last" normalizes exactly as step T_max's layer does."""
    rng = np.random.default_rng(8)
    model = RNNClassifier(2, 4, 2, norm="bn", seed=0)
    model.forward(rng.normal(size=(6, 3, 2)), training=True)
    model.forward(rng.normal(size=(3, 5, 2)), training=False)
    last = model.bn_steps[-1]
    a = model.pre_norm[4]
    expected = (a - last.running_mean) / np.sqrt(last.running_var + last.eps)
    np.testing.assert_allclose(last.x_hat, expected, rtol=1e-12)


def test_untrained_bn_evaluates_with_fresh_statistics():
    model = RNNClassifier(2, 3, 2, norm="bn", seed=0)
    out = model.forward(np.ones((2, 3, 2)), training=False)
    assert np.all(np.isfinite(out)) and list(model.stat_step) == [0, 0, 0]


def test_batch_of_one_with_bn_gives_the_layers_message():
    model = RNNClassifier(2, 3, 2, norm="bn", seed=0)
    with pytest.raises(ValueError) as exc:
        model.forward(np.ones((1, 3, 2)), training=True)
    with pytest.raises(ValueError) as layer_exc:
        BatchNorm1d(3).forward(np.ones((1, 3)), training=True)
    assert str(exc.value) == str(layer_exc.value)
    assert model.trained_length == 0  # refused before any state changed
    for norm in ("none", "ln"):
        out = RNNClassifier(2, 3, 2, norm=norm).forward(np.ones((1, 3, 2)), training=True)
        assert out.shape == (1, 2)


def test_bad_shapes_and_names_are_refused_with_a_sentence():
    model = RNNClassifier(2, 3, 2)
    for bad in (np.ones((2, 3)), np.ones((2, 0, 2)), np.ones((2, 3, 5))):
        with pytest.raises(ValueError, match="x must have shape"):
            model.forward(bad)
    with pytest.raises(ValueError, match="lengths"):
        model.forward(np.ones((2, 3, 2)), lengths=np.array([0, 3]))
    with pytest.raises(ValueError, match="unknown normalization"):
        RNNClassifier(2, 3, 2, norm="gn")
    with pytest.raises(RuntimeError, match="before forward"):
        RNNClassifier(2, 3, 2).backward(np.ones((2, 2)))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 6), T=st.integers(1, 7), n_in=st.integers(1, 4),
       hidden=st.integers(1, 6), norm=st.sampled_from(NORM_NAMES), seed=st.integers(0, 1000))
def test_property_prefix_states_are_shorter_forwards(n, T, n_in, hidden, norm, seed):
    """Causality: the logits of a length-L forward equal h_L W_o + b_o of a longer forward
    (evaluation mode), which is how the trainer measures accuracy at every test length."""
    rng = np.random.default_rng(seed)
    model = RNNClassifier(n_in, hidden, 3, norm=norm, seed=seed)
    if norm == "bn":
        model.forward(rng.normal(size=(n, max(1, T // 2), n_in)), training=True)
    x = rng.normal(size=(n, T + 3, n_in))
    model.forward(x, training=False)
    hs = model._cache["hs"]
    for L in range(1, T + 4):
        short = model.forward(x[:, :L], training=False)
        np.testing.assert_allclose(short, hs[L] @ model.params["W_o"] + model.params["b_o"],
                                   rtol=1e-10, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), norm=st.sampled_from(NORM_NAMES))
def test_property_hidden_states_bounded_and_grads_finite(seed, norm):
    rng = np.random.default_rng(seed)
    model = RNNClassifier(3, 4, 2, norm=norm, seed=seed)
    x = rng.normal(scale=100.0, size=(5, 6, 3))  # huge inputs saturate tanh, never overflow
    out = model.forward(x, training=True)
    assert all(np.all(np.abs(h) <= 1) for h in model._cache["hs"])
    dx = model.backward(rng.normal(size=out.shape))
    assert np.all(np.isfinite(dx)) and all(np.all(np.isfinite(g)) for g in model.grads.values())


# ------------------------------------------------------------------------------ tasks


def test_sequential_digits_reads_rows():
    task = R.sequential_digits()
    assert task.X_train.shape == (1347, 8, 8) and task.X_test.shape == (450, 8, 8)
    from bn_core.train import digits
    np.testing.assert_array_equal(task.X_train[5, 3], digits().X_train[5, 24:32])


def test_length_task_prefixes_keep_their_class_and_rule():
    task = R.length_task(5, 15, n_train=40, n_test=400, seed=3)
    assert task.prefix_ok and task.X_test.shape == (400, 15, 4)
    assert np.bincount(task.y_test).tolist() == [100] * 4
    # the loudest channel's mean is the label's channel on average
    means = task.X_test.mean(axis=1)
    assert np.mean(means.argmax(axis=1) == task.y_test) > 0.9
    assert R.optimal_length_accuracy(24) > R.optimal_length_accuracy(8) > R.optimal_length_accuracy(1)


# ------------------------------------------------------------------------------ trainer

SMALL = RNNConfig(task="length", hidden=8, steps=30, eval_every=10, train_length=4,
                  max_test_length=12)


@pytest.mark.parametrize("norm", NORM_NAMES)
def test_trainer_is_deterministic_for_a_seed(norm):
    cfg = dataclasses.replace(SMALL, norm=norm)
    a, b = train(cfg), train(cfg)
    for k in a.history:
        if k != "step_time":
            np.testing.assert_array_equal(a.history[k], b.history[k], err_msg=k)
    c = train(dataclasses.replace(cfg, seed=1))
    assert not np.array_equal(a.history["batch_loss"], c.history["batch_loss"])


def test_trainer_history_shapes_and_values():
    res = train(dataclasses.replace(SMALL, norm="bn"))
    h = res.history
    assert res.diverged_at is None and res.message == "trained 30 steps"
    assert list(h["step"]) == [0, 10, 20, 30]
    assert h["act_mean"].shape == (4, 4) and h["act_std"].shape == (4, 4)
    assert h["batch_loss"].shape == (30,) and np.all(h["step_time"] > 0)
    assert list(h["length"]) == list(range(1, 13))
    assert list(h["stat_step"]) == [1, 2, 3, 4] + [4] * 8
    assert h["running_mean"].shape == (4, 8)
    assert np.all(h["active_mean"] == 32) and np.all(h["fallback"] == 0)
    assert np.all((h["acc_by_length"] >= 0) & (h["acc_by_length"] <= 1))


def test_trainer_learns_sequential_digits():
    res = train(RNNConfig(task="digits", norm="ln", steps=150, eval_every=50))
    assert res.history["test_acc"][-1] > 0.6 > res.history["test_acc"][0]


def test_variable_lengths_count_active_sequences():
    cfg = dataclasses.replace(SMALL, norm="bn", min_length=1, batch_size=4, train_length=8,
                              max_test_length=8, steps=60)
    h = train(cfg).history
    am = h["active_mean"]
    assert am[0] == 4 and np.all(np.diff(am) <= 0) and am[-1] < 2
    assert h["active_min"][-1] == 0 and h["fallback"].sum() > 0


def test_trainer_refuses_batch_of_one_with_bn_and_bad_values():
    with pytest.raises(ValueError, match="BatchNorm1d cannot train on a batch of 1 sample"):
        train(dataclasses.replace(SMALL, norm="bn", batch_size=1))
    for bad in (dict(lr=float("nan")), dict(hidden=0), dict(task="xyz"), dict(eval_policy="x"),
                dict(min_length=9), dict(batch_size=10**6)):
        with pytest.raises(ValueError, match="cannot train"):
            train(dataclasses.replace(SMALL, **bad))
    assert train(dataclasses.replace(SMALL, batch_size=1, steps=3)).diverged_at is None


def test_divergence_stops_cleanly_and_says_where():
    res = train(dataclasses.replace(SMALL, lr=1e6, clip=0.0, steps=50))
    assert res.diverged_at is not None and 1 <= res.diverged_at <= 50
    assert res.message.startswith(f"diverged at step {res.diverged_at}")
    h = res.history
    assert len(h["batch_loss"]) == res.diverged_at - 1 and np.all(np.isfinite(h["batch_loss"]))
    assert np.all(h["step"] < res.diverged_at)


def test_batch_sweep_marks_untrainable_runs_as_nan():
    out = R.batch_sweep(dataclasses.replace(SMALL, steps=5), [1, 4], norms=("none", "bn"))
    assert list(out["batch"]) == [1, 4]
    assert np.isnan(out["bn"][0]) and np.all(np.isfinite(out["bn"][1:]))
    assert np.all(np.isfinite(out["none"]))
