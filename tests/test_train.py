"""Tests of bn_core.train: determinism, learning, recorded quantities, divergence, validation.

Runs are short and narrow (tens of steps, width 16-32) so the file stays fast.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings

import numpy as np
import pytest

from bn_core.layers import BatchNorm1d, Linear
from bn_core.train import (
    DIVERGENCE_LOSS,
    PERCENTILES,
    TrainConfig,
    digits,
    evaluation_steps,
    make_model,
    train,
)

SMALL = TrainConfig(depth=2, width=16, steps=60, eval_every=20, batch_size=30, dtype="float64")


def finite_history(h):
    return all(np.all(np.isfinite(v)) for v in h.values())


@pytest.mark.parametrize("norm", ["none", "bn_before", "bn_after"])
def test_deterministic_for_a_seed(norm):
    cfg = dataclasses.replace(SMALL, norm=norm, optimizer="momentum")
    a, b = train(cfg), train(cfg)
    for key in a.history:
        if key != "step_time":  # wall time is the one thing that is not reproducible
            np.testing.assert_array_equal(a.history[key], b.history[key], err_msg=key)
    c = train(dataclasses.replace(cfg, seed=1))
    assert not np.array_equal(a.history["batch_loss"], c.history["batch_loss"])


def test_history_shapes_and_contents():
    cfg = dataclasses.replace(SMALL, depth=3, steps=50, eval_every=20, norm="bn_before")
    r = train(cfg)
    h = r.history
    assert r.diverged_at is None and r.message == "trained 50 steps"
    np.testing.assert_array_equal(h["step"], [0, 20, 40, 50])  # the last step is always recorded
    n_rec = 4
    for key in ("train_loss", "train_acc", "test_acc"):
        assert h[key].shape == (n_rec,)
    assert h["act_pct"].shape == (n_rec, 3, 3)
    assert h["grad_norm"].shape == (n_rec, 4)
    assert h["batch_loss"].shape == (50,) and h["step_time"].shape == (50,)
    assert finite_history(h)
    assert np.all(h["step_time"] > 0)
    assert np.all((h["test_acc"] >= 0) & (h["test_acc"] <= 1))
    assert np.all(np.diff(h["act_pct"], axis=2) >= 0)  # 15th <= 50th <= 85th percentile
    assert np.all(h["grad_norm"] > 0)


@pytest.mark.parametrize(("steps", "every", "want"), [
    (50, 20, [0, 20, 40, 50]), (40, 20, [0, 20, 40]), (7, 50, [0, 7]), (3, 1, [0, 1, 2, 3]),
])
def test_evaluation_steps_are_the_steps_train_records(steps, every, want):
    assert evaluation_steps(steps, every) == want
    h = train(dataclasses.replace(SMALL, steps=steps, eval_every=every)).history
    np.testing.assert_array_equal(h["step"], want)


@pytest.mark.parametrize("norm", ["none", "bn_before", "bn_after"])
def test_act_pct_is_the_probe_units_input_to_the_nonlinearity(norm):
    """Recompute the last record's percentiles from the trained model, independently."""
    cfg = dataclasses.replace(SMALL, norm=norm, probe_unit=3, steps=40)
    r = train(cfg)
    data = digits()
    h = data.X_test
    expected = []
    layers = r.model.layers
    for i, layer in enumerate(layers):
        h = layer.forward(h, training=False)
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        # the input of a nonlinearity is whatever is fed to the activation layer
        if nxt is not None and not isinstance(nxt, Linear | BatchNorm1d):
            expected.append(np.percentile(h[:, 3], PERCENTILES))
    np.testing.assert_allclose(r.history["act_pct"][-1], np.array(expected), rtol=1e-12)


def test_grad_norm_records_the_gradient_of_that_steps_batch():
    """Record at step 0 = first mini-batch at init; recompute it from a fresh model."""
    cfg = dataclasses.replace(SMALL, norm="bn_before")
    r = train(cfg)
    from bn_core.layers import softmax_cross_entropy
    from bn_core.train import _batches, _shuffle_rng

    data = digits()
    idx = next(_batches(len(data.X_train), cfg.batch_size, _shuffle_rng(cfg.seed)))
    model = make_model(cfg)
    _, g = softmax_cross_entropy(model.forward(data.X_train[idx]), data.y_train[idx])
    model.backward(g)
    expected = [np.linalg.norm(la.grads["weight"]) for la in model.linear_layers()]
    np.testing.assert_allclose(r.history["grad_norm"][0], expected, rtol=1e-10)


@pytest.mark.parametrize("norm", ["none", "bn_before"])
def test_loss_decreases_on_digits(norm):
    cfg = dataclasses.replace(SMALL, width=32, steps=300, eval_every=100, lr=2.0, norm=norm)
    h = train(cfg).history
    assert h["train_loss"][-1] < 0.85 * h["train_loss"][0]
    assert np.all(np.diff(h["train_loss"]) < 0)
    assert h["test_acc"][-1] > 0.2  # above chance (0.1) after a few hundred steps


def test_batchnorm_running_statistics_change_during_training():
    r = train(dataclasses.replace(SMALL, norm="bn_before", steps=30))
    bn = r.model.batchnorm_layers()
    assert len(bn) == SMALL.depth
    for layer in bn:
        assert layer.num_batches_tracked == 30
        assert not np.allclose(layer.running_mean, 0.0)
        assert not np.allclose(layer.running_var, 1.0)


def test_eval_mode_is_used_for_recorded_accuracy():
    """The recorded test accuracy uses running statistics, not test-batch statistics."""
    r = train(dataclasses.replace(SMALL, norm="bn_before", steps=20, eval_every=20))
    data = digits("float64")
    pred = r.model.forward(data.X_test, training=False).argmax(axis=1)
    assert r.history["test_acc"][-1] == pytest.approx(np.mean(pred == data.y_test))


@pytest.mark.parametrize(
    "changes",
    [
        {"activation": "relu", "lr": 1000.0},
        {"norm": "bn_after", "lr": 1e4},
        {"activation": "tanh", "lr": 1e5, "optimizer": "momentum"},
    ],
)
def test_divergence_is_detected_reported_and_silent(changes):
    cfg = dataclasses.replace(SMALL, steps=200, **changes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any numpy warning fails the test
        r = train(cfg)
    assert r.diverged_at is not None and 1 <= r.diverged_at <= cfg.steps
    assert r.message.startswith(f"diverged at step {r.diverged_at}")
    h = r.history
    assert finite_history(h)
    assert len(h["batch_loss"]) <= r.diverged_at
    assert np.all(h["step"] < r.diverged_at)
    assert np.all(h["batch_loss"] <= DIVERGENCE_LOSS)


def test_batchnorm_is_not_diverged_by_its_unnormalized_step_zero_evaluation():
    """Regression: with large initial weights the BN network's evaluation at step 0 uses the
    initial running statistics (mean 0, variance 1), so nothing is normalized yet and that
    loss explodes; the training-mode loss is moderate and the network trains."""
    cfg = dataclasses.replace(SMALL, activation="relu", init_scale=3.0, lr=0.3, depth=3, width=100,
                              batch_size=60, steps=150, eval_every=50, norm="bn_before")
    data = digits("float64")
    logits = make_model(cfg).forward(data.X_train, training=False)
    shifted = logits - logits.max(axis=1, keepdims=True)
    eval_loss = np.mean(np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(shifted)), data.y_train])
    assert eval_loss > DIVERGENCE_LOSS  # the situation this test is about
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = train(cfg)
    assert r.diverged_at is None and r.message == "trained 150 steps"
    h = r.history
    np.testing.assert_array_equal(h["step"], [0, 50, 100, 150])
    assert h["train_loss"][0] == pytest.approx(eval_loss, rel=1e-9)  # recorded as measured
    assert h["test_acc"][-1] > 0.8  # chance is 0.1
    assert h["train_loss"][-1] < 1.0
    # the same network without BN does explode, at its first mini-batch: step 0
    plain = train(dataclasses.replace(cfg, norm="none"))
    assert plain.diverged_at == 0


def test_non_finite_evaluations_are_stored_as_nan_and_training_continues():
    """An evaluation that overflows is recorded as NaN; only the mini-batch loss stops training."""
    # 16 unnormalized ReLU layers of std 100 at step 0 (running statistics 0 and 1) overflow
    # float32 in evaluation mode; in training mode batch norm rescales every layer
    cfg = dataclasses.replace(SMALL, activation="relu", depth=16, width=32, init_scale=100.0,
                              lr=0.01, steps=40, eval_every=20, norm="bn_before", dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = train(cfg)
    h = r.history
    assert not np.isfinite(h["train_loss"][0]) and np.isnan(h["train_loss"][0])  # overflowed in float32
    assert np.isnan(h["test_acc"][0]) and np.all(np.isnan(h["act_pct"][0, -1]))
    assert r.diverged_at is None
    assert np.all(np.isfinite(h["batch_loss"])) and len(h["batch_loss"]) == 40
    assert np.all(np.isfinite(h["train_loss"][1:]))
    assert np.all(np.isfinite(h["grad_norm"]))


def test_exploding_initialization_is_reported_at_step_zero():
    cfg = dataclasses.replace(SMALL, activation="relu", depth=8, init_scale=20.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = train(cfg)
    assert r.diverged_at == 0 and r.message.startswith("diverged at step 0")
    assert "init scale" in r.message
    assert all(len(v) == 0 for v in r.history.values())
    assert r.history["act_pct"].shape == (0, 8, 3)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"norm": "bn_before", "batch_size": 1}, "one sample has no batch variance"),
        ({"norm": "bn_after", "batch_size": 1}, "one sample has no batch variance"),
        ({"batch_size": 5000}, "larger than the 1347 training samples"),
        ({"activation": "swish"}, "unknown activation"),
        ({"norm": "layer"}, "unknown normalization"),
        ({"optimizer": "adam"}, "unknown optimizer"),
        ({"lr": 0.0}, "lr must be"),
        ({"lr": float("nan")}, "lr must be"),
        ({"steps": 0}, "steps must be"),
        ({"init_scale": -1.0}, "init_scale must be"),
        ({"probe_unit": 16}, "probe_unit"),
        ({"dtype": "float16"}, "unknown dtype"),
    ],
)
def test_configs_that_cannot_train_raise_before_training(changes, match):
    calls = []
    with pytest.raises(ValueError, match=match):
        train(dataclasses.replace(SMALL, **changes), progress=calls.append)
    assert calls == []  # nothing ran


def test_batch_of_one_without_batchnorm_trains():
    r = train(dataclasses.replace(SMALL, batch_size=1, steps=10, norm="none"))
    assert r.diverged_at is None


def test_progress_is_bounded_monotone_and_ends_at_one():
    calls = []
    train(dataclasses.replace(SMALL, steps=1000, eval_every=500, width=8), progress=calls.append)
    assert 2 <= len(calls) <= 102
    assert calls == sorted(calls) and calls[-1] == 1.0 and 0 <= calls[0]


def test_default_dtype_is_float32_and_data_follows():
    r = train(dataclasses.replace(TrainConfig(), depth=1, width=8, steps=5, eval_every=5))
    assert r.model.layers[0].params["weight"].dtype == np.float32
    assert r.history["act_pct"].shape == (2, 1, 3)


def test_float32_training_matches_float64_closely():
    a = train(dataclasses.replace(SMALL, norm="bn_before"))
    b = train(dataclasses.replace(SMALL, norm="bn_before", dtype="float32"))
    assert b.model.layers[0].params["weight"].dtype == np.float32
    np.testing.assert_allclose(a.history["batch_loss"], b.history["batch_loss"], rtol=1e-3)


def test_result_pickles_small_and_whole():
    """Streamlit's cache pickles results: no megabytes of cached activations inside, and an
    unpickled model is a working model (its layers are views of its flat vector again)."""
    import pickle

    r = train(dataclasses.replace(SMALL, norm="bn_before", width=100, depth=3))
    assert r.model.layers[0]._x is None and r.model.batchnorm_layers()[0]._xc is None
    n_params = r.model.flat.params["all"].size
    # parameters and gradients, each as the flat vector plus the layers' views
    assert len(pickle.dumps(r)) < 4 * 8 * n_params + 100_000
    clone = pickle.loads(pickle.dumps(r)).model
    x = digits("float64").X_test[:5]
    np.testing.assert_array_equal(clone.forward(x, False), r.model.forward(x, False))
    clone.flat.params["all"][:] = 0.0
    assert not clone.layers[0].params["weight"].any()


# ---------------------------------------------------------------- chapter 4: new norms and orders


NEW_NORMS = ["ln", "gn", "brn"]


@pytest.mark.parametrize("norm", NEW_NORMS)
def test_new_norms_train_deterministically_and_learn(norm):
    cfg = dataclasses.replace(SMALL, norm=norm, activation="relu", optimizer="momentum",
                              lr=0.05, steps=150, eval_every=50)
    a, b = train(cfg), train(cfg)
    assert a.diverged_at is None and finite_history(a.history)
    for key in a.history:
        if key != "step_time":
            np.testing.assert_array_equal(a.history[key], b.history[key], err_msg=key)
    assert a.history["test_acc"][-1] > 0.6  # far above chance (0.1) after 150 steps
    assert np.mean(a.history["batch_loss"][-20:]) < np.mean(a.history["batch_loss"][:20])


def test_model_has_the_configured_norm_layers():
    from bn_core.layers import BatchRenorm1d, GroupNorm, LayerNorm

    m = make_model(dataclasses.replace(SMALL, norm="gn", groups=8))
    assert all(type(la) is GroupNorm and la.num_groups == 8 for la in m.norm_layers())
    m = make_model(dataclasses.replace(SMALL, norm="ln"))
    assert [type(la) for la in m.norm_layers()] == [LayerNorm, LayerNorm]
    m = make_model(dataclasses.replace(SMALL, norm="brn", r_max=2.0, d_max=0.5, bn_momentum=0.3))
    assert all(type(la) is BatchRenorm1d and (la.r_max, la.d_max, la.momentum) == (2.0, 0.5, 0.3)
               for la in m.norm_layers())


@pytest.mark.parametrize("norm", ["none", "ln", "gn"])
def test_batch_statistics_accuracy_equals_evaluation_accuracy_without_batch_statistics(norm):
    h = train(dataclasses.replace(SMALL, norm=norm)).history
    np.testing.assert_array_equal(h["test_acc_batch_stats"], h["test_acc"])


@pytest.mark.parametrize("norm,batch_size", [("bn_before", 30), ("brn", 7), ("bn_after", 2)])
def test_batch_statistics_accuracy_is_the_training_mode_pass_over_test_batches(norm, batch_size):
    """Recompute the last record by hand: a copy of the final model per test batch, training
    mode, batches cut as documented; the running statistics are not moved by it."""
    cfg = dataclasses.replace(SMALL, norm=norm, batch_size=batch_size, steps=40)
    r = train(cfg)
    data = digits("float64")
    n_test = len(data.y_test)
    starts = list(range(0, n_test, batch_size))
    if n_test - starts[-1] == 1:
        starts.pop()
    ends = starts[1:] + [n_test]
    preds = []
    for a, b in zip(starts, ends, strict=True):
        logits = copy.deepcopy(r.model).forward(data.X_test[a:b], training=True)
        preds.append(logits.argmax(axis=1))
    expected = float(np.mean(np.concatenate(preds) == data.y_test))
    assert r.history["test_acc_batch_stats"][-1] == expected
    # the evaluation pass did not count as training, nor change the running statistics
    assert all(la.num_batches_tracked == 40 for la in r.model.batchnorm_layers())
    acc_eval = float(np.mean(r.model.predict(data.X_test) == data.y_test))
    assert r.history["test_acc"][-1] == acc_eval


@pytest.mark.parametrize("norm", ["none", "bn_before", "brn"])
def test_leaving_out_the_batch_statistics_accuracy_changes_no_other_record(norm):
    cfg = dataclasses.replace(SMALL, norm=norm)
    full, lean = train(cfg), train(cfg, test_batch_stats=False)
    assert "test_acc_batch_stats" not in lean.history
    assert set(full.history) - set(lean.history) == {"test_acc_batch_stats"}
    for key in lean.history:
        if key != "step_time":  # measured wall-clock times differ from run to run
            np.testing.assert_array_equal(lean.history[key], full.history[key], err_msg=key)
    for a, b in zip(full.model.batchnorm_layers(), lean.model.batchnorm_layers(), strict=True):
        np.testing.assert_array_equal(a._running, b._running)
        assert a.num_batches_tracked == b.num_batches_tracked


def test_batch_renorm_with_r_max_1_d_max_0_trains_exactly_like_batch_norm():
    bn = train(dataclasses.replace(SMALL, norm="bn_before"))
    brn = train(dataclasses.replace(SMALL, norm="brn", r_max=1.0, d_max=0.0))
    for key in ("batch_loss", "test_acc", "train_loss", "test_acc_batch_stats", "grad_norm"):
        np.testing.assert_array_equal(bn.history[key], brn.history[key], err_msg=key)
    np.testing.assert_array_equal(brn.history["brn_r"], 1.0)
    np.testing.assert_array_equal(np.abs(brn.history["brn_d"]), 0.0)


def test_batch_renorm_records_r_and_d_within_their_bounds():
    cfg = dataclasses.replace(SMALL, norm="brn", r_max=1.5, d_max=0.2, batch_size=4, steps=50)
    h = train(cfg).history
    assert h["brn_r"].shape == h["brn_d"].shape == (50, 2, 3)
    r, d = h["brn_r"], h["brn_d"]
    assert np.all(r[..., 0] <= r[..., 1]) and np.all(r[..., 1] <= r[..., 2])
    assert r.min() >= 1 / 1.5 and r.max() <= 1.5 and np.abs(d).max() <= 0.2
    assert np.isclose(r.max(), 1.5) or np.isclose(np.abs(d).max(), 0.2)  # clipping happens
    assert "brn_r" not in train(SMALL).history  # only Batch Renorm has r and d


def test_by_class_batches_hold_one_class_each_and_leftovers_sit_out_an_epoch():
    from bn_core.train import batch_schedule, steps_per_epoch

    data = digits("float64")
    y = np.asarray(data.y_train)
    cfg = dataclasses.replace(SMALL, batch_size=32, batch_order="by_class", seed=3)
    per_epoch = steps_per_epoch(32, "by_class", data)
    counts = np.bincount(y)
    assert per_epoch == sum(c // 32 for c in counts)  # 4 per class here
    schedule = batch_schedule(cfg, y)
    epochs = [[next(schedule) for _ in range(per_epoch)] for _ in range(2)]
    for epoch in epochs:
        for idx in epoch:
            assert len(idx) == 32 and len(set(y[idx])) == 1
        used = np.concatenate(epoch)
        assert len(np.unique(used)) == len(used)  # no sample twice in an epoch
        used_per_class = np.bincount(y[used], minlength=10)
        np.testing.assert_array_equal(used_per_class, counts // 32 * 32)
        # the visiting order mixes classes (not all of class 0 first)
        first_classes = [int(y[idx[0]]) for idx in epoch]
        assert first_classes != sorted(first_classes)
    # the leftover samples that sit out differ between epochs
    assert set(np.concatenate(epochs[0])) != set(np.concatenate(epochs[1]))
    # shuffled batches of 32 do mix classes
    mixed = next(batch_schedule(dataclasses.replace(cfg, batch_order="shuffled"), y))
    assert len(set(y[mixed])) > 1


def test_by_class_training_runs_and_steps_per_epoch_shuffled():
    from bn_core.train import steps_per_epoch

    r = train(dataclasses.replace(SMALL, batch_order="by_class", norm="ln", steps=30))
    assert r.diverged_at is None and finite_history(r.history)
    assert steps_per_epoch(32) == len(digits().y_train) // 32


@pytest.mark.parametrize("norm", ["none", "ln", "gn"])
def test_batch_of_one_trains_per_sample_norms(norm):
    r = train(dataclasses.replace(SMALL, batch_size=1, steps=40, norm=norm, lr=0.01))
    assert r.diverged_at is None and r.history["batch_loss"].shape == (40,)
    np.testing.assert_array_equal(r.history["test_acc_batch_stats"], r.history["test_acc"])


@pytest.mark.parametrize("norm,layer", [("bn_before", "BatchNorm1d"), ("bn_after", "BatchNorm1d"),
                                        ("brn", "BatchRenorm1d")])
def test_batch_of_one_with_batch_statistics_raises_the_layers_own_message(norm, layer):
    from bn_core.layers import BatchRenorm1d, one_sample_message

    cls = {"BatchNorm1d": BatchNorm1d, "BatchRenorm1d": BatchRenorm1d}[layer]
    with pytest.raises(ValueError) as layer_err:
        cls(4).forward(np.ones((1, 4)), training=True)
    assert str(layer_err.value) == one_sample_message(layer, 1)
    with pytest.raises(ValueError) as train_err:
        train(dataclasses.replace(SMALL, batch_size=1, norm=norm))
    assert str(layer_err.value) in str(train_err.value)


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"norm": "gn", "width": 16, "groups": 3}, r"groups \(3\) must divide the width \(16"),
        ({"norm": "gn", "width": 16, "groups": 0}, "must divide the width"),
        ({"norm": "brn", "r_max": 0.5}, "r_max must be"),
        ({"norm": "brn", "d_max": -1.0}, "d_max must be"),
        ({"bn_momentum": 0.0}, "bn_momentum must be"),
        ({"batch_order": "sorted"}, "unknown batch_order"),
        ({"batch_order": "by_class", "batch_size": 200}, "smallest class"),
    ],
)
def test_chapter4_configs_that_cannot_train_raise_before_training(changes, match):
    calls = []
    with pytest.raises(ValueError, match=match):
        train(dataclasses.replace(SMALL, **changes), progress=calls.append)
    assert calls == []


def test_groups_only_matter_for_group_norm():
    r = train(dataclasses.replace(SMALL, norm="ln", width=16, groups=3, steps=5))
    assert r.diverged_at is None


@pytest.mark.parametrize("n,batch,sizes", [(450, 60, [60] * 7 + [30]), (450, 7, [7] * 64 + [2]), (449, 7, [7] * 63 + [8]),
                                           (450, 449, [450]), (450, 1, [1] * 450),
                                           (10, 5, [5, 5])])
def test_eval_batches_cover_the_test_set_and_never_leave_one_sample_alone(n, batch, sizes):
    from bn_core.train import eval_batches

    slices = eval_batches(n, batch)
    assert [s.stop - s.start for s in slices] == sizes
    assert slices[0].start == 0 and slices[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(slices, slices[1:], strict=False))
