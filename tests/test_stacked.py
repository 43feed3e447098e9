"""bn_core.stacked.train_many: K configurations at once give what train() gives for each.

The reference is :func:`bn_core.train.train`, run one configuration at a time through the
layer objects (themselves checked by finite differences in test_layers/test_network); the
stacked code shares none of its array code.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bn_core.stacked import train_many
from bn_core.train import TrainConfig, train

BASE = TrainConfig(depth=2, width=16, steps=60, eval_every=20, batch_size=8, dtype="float64",
                   activation="relu", optimizer="momentum", lr=0.05)


def assert_same_result(a, b, rtol=1e-8):
    assert a.diverged_at == b.diverged_at and a.message == b.message
    assert set(a.history) == set(b.history)
    for key in a.history:
        if key == "step_time":
            assert a.history[key].shape == b.history[key].shape
            continue
        np.testing.assert_allclose(a.history[key], b.history[key], rtol=rtol, atol=1e-10,
                                   err_msg=key)


def test_every_norm_and_mixed_settings_equal_train_one_by_one():
    cfgs = [dataclasses.replace(BASE, norm=n, seed=s)
            for n in ("none", "bn_before", "bn_after", "ln", "gn", "brn") for s in (0, 1)]
    cfgs += [
        dataclasses.replace(BASE, norm="brn", r_max=1.5, d_max=0.3, seed=2, optimizer="sgd",
                            lr=0.1, bn_momentum=0.3, probe_unit=5),
        dataclasses.replace(BASE, norm="gn", groups=8, seed=3, init_scale=0.3),
        dataclasses.replace(BASE, norm="ln", lr=0.01, momentum=0.5, seed=4),
    ]
    many = train_many(cfgs)
    assert len(many) == len(cfgs)
    for cfg, got in zip(cfgs, many, strict=True):
        assert got.config == cfg  # results come back in the order of the configurations
        assert_same_result(got, train(cfg))


def test_final_models_are_the_trained_networks():
    cfgs = [dataclasses.replace(BASE, norm=n) for n in ("bn_before", "gn", "brn")]
    x = np.random.default_rng(0).normal(size=(5, 64))
    for got, cfg in zip(train_many(cfgs), cfgs, strict=True):
        ref = train(cfg).model
        np.testing.assert_allclose(got.model.forward(x, training=False),
                                   ref.forward(x, training=False), rtol=1e-8)
        for la, lb in zip(got.model.batchnorm_layers(), ref.batchnorm_layers(), strict=True):
            assert la.num_batches_tracked == lb.num_batches_tracked


def test_a_diverging_configuration_stops_alone_as_in_train():
    cfgs = [dataclasses.replace(BASE, norm="none", lr=3.0, init_scale=1.0),
            dataclasses.replace(BASE, norm="bn_before"),
            dataclasses.replace(BASE, norm="none", init_scale=200.0)]
    many = train_many(cfgs)
    refs = [train(c) for c in cfgs]
    assert refs[0].diverged_at not in (None, 0) and refs[2].diverged_at == 0
    for got, ref in zip(many, refs, strict=True):
        assert_same_result(got, ref)
    assert many[1].diverged_at is None


@pytest.mark.parametrize("batch_size,order,steps", [(2, "shuffled", 20), (32, "by_class", 60),
                                                   (7, "shuffled", 60)])
def test_small_batches_class_order_and_ragged_test_batches(batch_size, order, steps):
    # batch 2 is kept short: two-sample batch statistics amplify round-off quickly (at 60
    # steps the two implementations drift apart by 1e-7 relative, as any reordering of sums
    # would), which says nothing about the equations
    cfgs = [dataclasses.replace(BASE, norm=n, batch_size=batch_size, batch_order=order, seed=s,
                                steps=steps)
            for n in ("bn_before", "brn", "ln") for s in (0, 5)]
    for cfg, got in zip(cfgs, train_many(cfgs), strict=True):
        assert_same_result(got, train(cfg))


def test_batch_of_one_with_per_sample_norms():
    cfgs = [dataclasses.replace(BASE, norm=n, batch_size=1, lr=0.01, steps=40)
            for n in ("none", "ln", "gn")]
    for cfg, got in zip(cfgs, train_many(cfgs), strict=True):
        assert_same_result(got, train(cfg))


def test_float32_stacks_too():
    cfgs = [dataclasses.replace(BASE, norm=n, dtype="float32") for n in ("bn_before", "gn")]
    for cfg, got in zip(cfgs, train_many(cfgs), strict=True):
        ref = train(cfg)
        np.testing.assert_allclose(got.history["batch_loss"], ref.history["batch_loss"], rtol=1e-3)


def test_progress_is_bounded_monotone_and_ends_at_one():
    calls = []
    train_many([BASE, dataclasses.replace(BASE, norm="ln")], progress=calls.append)
    assert calls == sorted(calls) and calls[-1] == 1.0 and 0 <= calls[0] and len(calls) <= 102


@pytest.mark.parametrize(
    "configs,match",
    [
        ([], "at least one"),
        ([BASE, dataclasses.replace(BASE, width=32)], "must share 'width'"),
        ([BASE, dataclasses.replace(BASE, batch_size=4)], "must share 'batch_size'"),
        ([BASE, dataclasses.replace(BASE, norm="bn_before", batch_size=8, lr=-1.0)],
         "configuration 1"),
        ([dataclasses.replace(BASE, norm="brn", batch_size=1)], "BatchRenorm1d cannot train"),
    ],
)
def test_configurations_that_cannot_be_stacked_raise_before_training(configs, match):
    calls = []
    with pytest.raises(ValueError, match=match):
        train_many(configs, progress=calls.append)
    assert calls == []
