"""Tests of bn_core.experiments: sweeps agree with single runs; gradient norms at init."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from bn_core.experiments import gradient_norms_at_init, sweep
from bn_core.train import TrainConfig, train

BASE = TrainConfig(depth=2, width=12, steps=40, eval_every=20, batch_size=30, dtype="float64")


def test_sweep_matches_individual_runs_and_reports_divergence():
    values = [0.1, 1e4]
    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = sweep(BASE, "lr", values, norms=("none", "bn_after"), progress=calls.append)
    assert set(out) == {
        "values",
        "chance_acc",
        *(
            f"{n}/{k}"
            for n in ("none", "bn_after")
            for k in ("test_acc", "train_acc", "diverged_at", "final_loss")
        ),
    }
    np.testing.assert_array_equal(out["values"], values)
    for norm in ("none", "bn_after"):
        for i, lr in enumerate(values):
            r = train(dataclasses.replace(BASE, norm=norm, lr=lr))
            assert out[f"{norm}/test_acc"][i] == r.history["test_acc"][-1]
            assert out[f"{norm}/train_acc"][i] == r.history["train_acc"][-1]
            expected = -1 if r.diverged_at is None else r.diverged_at
            assert out[f"{norm}/diverged_at"][i] == expected
        assert all(np.all(np.isfinite(out[f"{norm}/{k}"])) for k in ("test_acc", "train_acc"))
    assert out["bn_after/diverged_at"][1] > 0  # lr 1e4 blows up the unnormalized output layer
    assert out["none/diverged_at"][0] == -1
    assert calls == sorted(calls) and calls[-1] == 1.0


def test_sweep_int_field_and_validation_before_training():
    out = sweep(BASE, "batch_size", [10, 20], norms=("bn_before",))
    assert out["bn_before/test_acc"].shape == (2,)
    calls = []
    with pytest.raises(ValueError, match="batch_size=1.*one sample has no batch variance"):
        sweep(BASE, "batch_size", [30, 1], progress=calls.append)
    assert calls == []
    with pytest.raises(ValueError, match="cannot sweep"):
        sweep(BASE, "activation", [1.0])
    with pytest.raises(ValueError, match="whole numbers"):
        sweep(BASE, "depth", [2.5])


def test_gradient_norms_at_init_equal_the_first_record_of_training():
    cfg = dataclasses.replace(BASE, depth=4, activation="tanh")
    norms = gradient_norms_at_init(cfg, norms=("none", "bn_before", "bn_after"))
    for norm, g in norms.items():
        assert g.shape == (5,)
        h = train(dataclasses.replace(cfg, norm=norm)).history
        np.testing.assert_allclose(g, h["grad_norm"][0], rtol=1e-12)


def test_deep_sigmoid_gradients_vanish_without_batchnorm():
    """The classic picture: in a deep sigmoid net the first layers get tiny gradients; BN helps."""
    cfg = dataclasses.replace(BASE, depth=10, width=32, init_scale=0.1)
    g = gradient_norms_at_init(cfg)
    plain_ratio = g["none"][0] / g["none"][-1]
    bn_ratio = g["bn_before"][0] / g["bn_before"][-1]
    assert plain_ratio < 1e-3
    assert bn_ratio > 100 * plain_ratio


def test_sweep_exploding_initialization_gives_chance_and_step_zero():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = sweep(
            dataclasses.replace(BASE, activation="relu", depth=8),
            "init_scale",
            [0.1, 20.0],
            norms=("none",),
        )
    assert out["none/diverged_at"][1] == 0
    assert out["chance_acc"] == pytest.approx(0.1)  # ten digit classes
    assert out["none/test_acc"][1] == out["chance_acc"]
    assert np.all(np.isfinite(out["none/final_loss"]))
    assert out["none/diverged_at"][0] == -1


def test_init_scale_sweep_lets_batchnorm_train_where_its_step_zero_evaluation_explodes():
    """Regression: at a large initial scale the BN arm's step-0 evaluation (running mean 0,
    variance 1: not normalized yet) explodes; the sweep must not count that as divergence."""
    base = dataclasses.replace(BASE, activation="relu", depth=3, width=100, steps=100, eval_every=100,
                               lr=0.3, dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = sweep(base, "init_scale", [3.0], norms=("none", "bn_before"))
    first = train(dataclasses.replace(base, norm="bn_before", init_scale=3.0, steps=1))
    assert first.history["train_loss"][0] > 1e4  # the exploding step-0 evaluation
    assert out["bn_before/diverged_at"][0] == -1
    assert out["bn_before/test_acc"][0] > 0.5  # it trained: far above chance (0.1)
    assert out["none/diverged_at"][0] == 0  # the plain network does explode at its first batch
    assert out["none/test_acc"][0] == out["chance_acc"]


def test_experiments_uses_only_the_public_api_of_train():
    """Layering: experiments builds on train's public functions, not on its private helpers."""
    import ast
    from pathlib import Path

    import bn_core.experiments

    tree = ast.parse(Path(bn_core.experiments.__file__).read_text())
    private = [a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               for a in node.names if a.name.startswith("_")]
    assert private == []
