"""Tests of bn_core.experiments: sweeps agree with single runs; gradient norms at init."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from bn_core import experiments as ex
from bn_core.experiments import gradient_norms_at_init, sweep
from bn_core.layers import one_sample_message
from bn_core.train import TrainConfig, digits, train

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


# ---------------------------------------------------------------- chapter 4 experiments

TINY = {"depth": 2, "width": 16}


def test_batch_size_sweep_is_train_one_by_one_with_fixed_epochs_and_scaled_lr():
    data = digits("float64")
    n_train = len(data.y_train)
    out = ex.batch_size_sweep(norms=("none", "bn_before", "gn"), batch_sizes=(4, 64),
                              seeds=(0, 3), epochs=1, dtype="float64", **TINY)
    np.testing.assert_array_equal(out["batch_sizes"], [4, 64])
    np.testing.assert_array_equal(out["steps"], [n_train // 4, n_train // 64])  # one epoch each
    np.testing.assert_allclose(out["lr"], [0.05 * 4 / 32, 0.05 * 64 / 32])
    for n in ("none", "bn_before", "gn"):
        assert out[f"{n}/test_acc"].shape == (2, 2)
        for i, b in enumerate((4, 64)):
            for j, seed in enumerate((0, 3)):
                steps = n_train // b
                cfg = TrainConfig(norm=n, batch_size=b, seed=seed, steps=steps, eval_every=steps,
                                  lr=0.05 * b / 32, activation="relu", init_scale=0.1,
                                  optimizer="momentum", momentum=0.9, dtype="float64", **TINY)
                h = train(cfg).history
                assert out[f"{n}/test_acc"][i, j] == pytest.approx(h["test_acc"][-1], abs=1e-12)
                assert out[f"{n}/test_acc_batch_stats"][i, j] == pytest.approx(
                    h["test_acc_batch_stats"][-1], abs=1e-12)
                # rel 1e-5: 336 steps of batch-4 batch norm amplify round-off (the sums of
                # the stacked code run in another order) to ~1e-7; accuracies agree exactly
                assert out[f"{n}/train_loss"][i, j] == pytest.approx(h["train_loss"][-1],
                                                                     rel=1e-5)
    fixed = ex.batch_size_sweep(norms=("none",), batch_sizes=(4, 64), seeds=(0,), epochs=1,
                                scale_lr=False, base_lr=0.02, **TINY)
    np.testing.assert_array_equal(fixed["lr"], [0.02, 0.02])


def test_batch_size_sweep_progress_and_refusals():
    calls = []
    ex.batch_size_sweep(norms=("ln",), batch_sizes=(64, 128), seeds=(0,), epochs=1,
                        progress=calls.append, **TINY)
    assert calls == sorted(calls) and calls[-1] == 1.0 and len(calls) <= 202
    calls.clear()
    with pytest.raises(ValueError) as err:
        ex.batch_size_sweep(norms=("ln", "brn"), batch_sizes=(1,), progress=calls.append)
    assert one_sample_message("BatchRenorm1d").rstrip(".") in str(err.value) and calls == []
    with pytest.raises(ValueError, match="norms"):
        ex.batch_size_sweep(norms=("batchnorm",))
    with pytest.raises(ValueError, match="batch_sizes"):
        ex.batch_size_sweep(batch_sizes=(0, 4))


def test_batch_statistics_agree_with_the_closed_forms_of_sampling_theory():
    out = ex.batch_statistics(n_batches=4000)
    m = out["batch_sizes"].astype(float)
    v = out["values"]
    n = v.size
    assert out["pop_mean"] == pytest.approx(v.mean()) and out["pop_var"] == pytest.approx(v.var())
    # standard error of the mean, without replacement (finite-population factor)
    sigma = v.std()
    np.testing.assert_allclose(out["se_mean"], sigma / np.sqrt(m))
    np.testing.assert_allclose(out["sd_mean_measured"], sigma / np.sqrt(m)
                               * np.sqrt((n - m) / (n - 1)), rtol=0.06)
    # the biased batch variance is (m - 1)/m sigma^2 on average (2 % tolerance: 4000 batches)
    np.testing.assert_allclose(out["batch_vars"].mean(axis=1), (m - 1) / m * v.var(), rtol=0.03)
    # its relative spread: the general (kurtosis) formula, not the Gaussian one, fits
    kurt = np.mean((v - v.mean()) ** 4) / v.var() ** 2
    general = np.sqrt(2 / (m - 1) + (kurt - 3) / m)
    np.testing.assert_allclose(out["var_rel_sd_kurtosis"], general)
    np.testing.assert_allclose(out["var_rel_sd_measured"], general, rtol=0.1)
    np.testing.assert_allclose(out["var_rel_sd_gaussian"], np.sqrt(2 / (m - 1)))
    band = ex.gaussian_bands(v.mean(), v.var(), out["batch_sizes"])
    for key, want in band.items():
        np.testing.assert_allclose(out[key], want, rtol=1e-12, err_msg=key)
    # the batches are the ones training draws: the first batch of size 8, recomputed
    from bn_core.train import batch_schedule

    cfg = TrainConfig(batch_size=8, seed=0)
    first = next(batch_schedule(cfg, digits().y_train))
    assert out["batch_means"][2, 0] == pytest.approx(v[first].mean())
    assert out["batch_vars"][2, 0] == pytest.approx(v[first].var())
    with pytest.raises(ValueError, match="unit"):
        ex.batch_statistics(unit=64)


def test_gaussian_bands_are_scipys_chi_square_and_normal_quantiles():
    from scipy.stats import chi2, norm

    sizes = (2, 3, 4, 32, 128)
    m = np.array(sizes, dtype=float)
    out = ex.gaussian_bands(1.5, 4.0, sizes)
    assert out["band_level"] == pytest.approx(norm.cdf(1) - norm.cdf(-1), abs=1e-15) == ex.BAND_LEVEL
    np.testing.assert_allclose(out["var_band_lo"], 4.0 * chi2.ppf(0.15865525393145707, m - 1) / m, rtol=1e-12)
    np.testing.assert_allclose(out["var_band_hi"], 4.0 * chi2.ppf(0.8413447460685429, m - 1) / m, rtol=1e-12)
    np.testing.assert_allclose(out["mean_band_lo"], 1.5 - 2.0 / np.sqrt(m), rtol=1e-12)
    np.testing.assert_allclose(out["mean_band_hi"], 1.5 + 2.0 / np.sqrt(m), rtol=1e-12)
    # m = 2: one degree of freedom, chi2_1 = Z^2, so the quantiles are squared normal quantiles
    z = norm.ppf([0.5 + 0.15865525393145707 / 2, 0.5 + 0.8413447460685429 / 2])
    np.testing.assert_allclose([out["var_band_lo"][0], out["var_band_hi"][0]], 4.0 * z**2 / 2, rtol=1e-10)
    for bad in ((1,), (0, 4)):
        with pytest.raises(ValueError, match="batch_sizes"):
            ex.gaussian_bands(0.0, 1.0, bad)
    with pytest.raises(ValueError, match="positive variance"):
        ex.gaussian_bands(0.0, 0.0, (4,))


@pytest.mark.parametrize("sizes", [ex.BATCH_SIZES, (2,), tuple(range(2, 300))])
def test_variance_band_is_never_below_zero(sizes):
    """Every batch size the chapter draws, m = 2 included (where E -+ E sqrt(2/(m-1)) was -0.21 sigma^2)."""
    out = ex.gaussian_bands(0.0, 1e-6, sizes)
    assert np.all(out["var_band_lo"] > 0)
    m = np.array(sizes, dtype=float)
    assert np.all(out["var_band_lo"] < (m - 1) / m * 1e-6)  # below the expected value, as a band should be
    assert np.all(out["var_band_hi"] > out["var_band_lo"])


@pytest.mark.parametrize("m", [2, 4, 32])
def test_gaussian_bands_hold_68_percent_of_sampled_gaussian_batches(m):
    """Independent truth: Monte Carlo. 40 000 Gaussian batches of m (fixed seed); the binomial
    standard error of a 68 % fraction is 0.0023, the tolerance 0.01. The old variance band
    (E -+ E sqrt(2/(m-1))) held 88 % at m = 2 and 77 % at m = 4, so this fails for it."""
    rng = np.random.default_rng(20240601 + m)
    mu, sigma = -0.7, 2.5
    x = rng.normal(mu, sigma, size=(40_000, m))
    band = ex.gaussian_bands(mu, sigma**2, (m,))
    v, u = x.var(axis=1), x.mean(axis=1)  # biased variance, divisor m, as BatchNorm computes it
    inside_v = np.mean((v >= band["var_band_lo"][0]) & (v <= band["var_band_hi"][0]))
    inside_u = np.mean((u >= band["mean_band_lo"][0]) & (u <= band["mean_band_hi"][0]))
    assert inside_v == pytest.approx(0.6827, abs=0.01)
    assert inside_u == pytest.approx(0.6827, abs=0.01)
    # and about 15.9 % on each side: the band is the central interval, not just any 68 % one
    assert np.mean(v < band["var_band_lo"][0]) == pytest.approx(0.1587, abs=0.008)
    assert np.mean(v > band["var_band_hi"][0]) == pytest.approx(0.1587, abs=0.008)


def test_momentum_effect_matches_train_and_starts_together():
    out = ex.momentum_effect(batch_size=16, momenta=(0.05, 0.5), epochs=1, n_points=4,
                             dtype="float64", **TINY)
    acc = out["test_acc"]
    assert acc.shape == (2, 1, len(out["step"])) and out["step"][0] == 0
    assert acc[0, 0, 0] == acc[1, 0, 0]  # same initial network
    steps = int(out["step"][-1])
    cfg = TrainConfig(norm="bn_before", batch_size=16, bn_momentum=0.5, steps=steps,
                      eval_every=int(out["step"][1]), lr=0.025, activation="relu",
                      init_scale=0.1, optimizer="momentum", momentum=0.9, dtype="float64", **TINY)
    h = train(cfg).history
    np.testing.assert_allclose(acc[1, 0], h["test_acc"], atol=1e-12)
    np.testing.assert_allclose(out["test_acc_batch_stats"][1, 0], h["test_acc_batch_stats"],
                               atol=1e-12)


def test_class_sorted_batches_break_batch_norm_but_not_layer_norm():
    """The issue's independent PyTorch reference: class-sorted batches of 32, 6 epochs, BN's
    evaluation accuracy collapses (0.13-0.16) while LayerNorm keeps learning (>= 0.91)."""
    out = ex.non_iid(norms=("bn_before", "ln"), seeds=(0,))
    assert out["by_class/bn_before/test_acc"][0] < 0.3
    assert out["by_class/ln/test_acc"][0] > 0.8
    assert out["shuffled/bn_before/test_acc"][0] > 0.9  # the same network on shuffled batches
    assert out["by_class/step"][-1] == out["by_class/steps"] == 6 * sum(
        c // 32 for c in np.bincount(digits().y_train))
    assert out["by_class/ln/batch_loss"].shape == (1, int(out["by_class/steps"]))


def test_online_learning_trains_per_sample_norms_and_quotes_the_layers_refusal():
    out = ex.online_learning(norms=("bn_before", "ln", "brn"), seeds=(0,), eval_every=200, **TINY)
    assert list(out["trained"]) == ["ln"] and list(out["refused"]) == ["bn_before", "brn"]
    assert str(out["bn_before/message"]) == one_sample_message("BatchNorm1d", 1)
    assert str(out["brn/message"]) == one_sample_message("BatchRenorm1d", 1)
    n_train = len(digits().y_train)
    assert out["samples_seen"][-1] == n_train and out["samples_seen"][0] == 0
    acc = out["ln/test_acc"]
    assert acc.shape == (1, len(out["samples_seen"])) and np.all(np.isfinite(acc))
    assert acc[0, -1] > acc[0, 0] + 0.3  # one pass of single samples does learn
    assert "bn_before/test_acc" not in out


def test_renorm_dynamics_bounds_and_agreement_with_train():
    out = ex.renorm_dynamics(batch_size=8, r_max=1.5, d_max=0.5, epochs=1, dtype="float64",
                             **TINY)
    r, d = out["r"], out["d"]
    assert r.shape == d.shape == (len(out["step"]), 2, 3)
    assert r.min() >= 1 / 1.5 - 1e-12 and r.max() <= 1.5 + 1e-12 and np.abs(d).max() <= 0.5
    assert out["clipped_r"].any()  # at batch 8 the batch spread often leaves [1/1.5, 1.5]
    steps = len(out["step"])
    cfg = TrainConfig(norm="brn", batch_size=8, r_max=1.5, d_max=0.5, steps=steps,
                      eval_every=steps, lr=0.0125, activation="relu", init_scale=0.1,
                      optimizer="momentum", momentum=0.9, dtype="float64", **TINY)
    h = train(cfg).history
    np.testing.assert_allclose(r, h["brn_r"], rtol=1e-8)
    assert float(out["brn/test_acc"]) == pytest.approx(h["test_acc"][-1], abs=1e-12)
    same = ex.renorm_dynamics(batch_size=8, r_max=1.0, d_max=0.0, epochs=1, **TINY)
    np.testing.assert_allclose(same["brn/batch_loss"], same["bn/batch_loss"], rtol=1e-6)


def test_step_cost_times_and_the_bytes_each_layer_keeps():
    out = ex.step_cost(width=32, batch_size=16, groups=4, repeats=5)
    b, c, depth, item = 16, 32, 2, 4  # float32
    expected = {"none": 0, "bn_before": (b * c + 2 * c) * item * depth,
                "brn": (b * c + 4 * c) * item * depth, "ln": (b * c + b) * item * depth,
                "gn": (b * c + b * 4) * item * depth}
    for n, nbytes in expected.items():
        assert int(out[f"{n}/cache_bytes"]) == nbytes, n
        assert int(out[f"{n}/network_cache_bytes"]) >= nbytes
        for part in ("forward_s", "backward_s", "update_s"):
            assert 0 < float(out[f"{n}/{part}"]) < 1.0
        assert float(out[f"{n}/step_s_q25"]) <= float(out[f"{n}/step_s_q75"])
    assert "1/std" in str(out["bn_before/cache_arrays"])
