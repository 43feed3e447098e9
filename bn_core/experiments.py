"""Experiments built on :func:`bn_core.train.train`: sweeps and gradient norms at initialization.

Each function runs the same configuration with and without batch normalization (the
``norms``), with the same seed, hence the same initial Linear weights and the same
mini-batches, so the arms differ only by the normalization.

Chapter 4 ("the curse of batch norm") adds :func:`batch_size_sweep`,
:func:`batch_statistics`, :func:`momentum_effect`, :func:`non_iid`, :func:`online_learning`,
:func:`renorm_dynamics` and :func:`step_cost`; the training ones stack their configurations
with :func:`bn_core.stacked.train_many` (same results as ``train`` one by one, faster).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from bn_core.data import DigitsSplit
from bn_core.network import BATCH_STAT_NORMS, NORMS
from bn_core.train import (
    TrainConfig,
    batch_schedule,
    digits,
    evaluation_steps,
    initial_grad_norms,
    make_model,
    steps_per_epoch,
    train,
    validate_config,
)

__all__ = [
    "BAND_LEVEL",
    "BATCH_SIZES",
    "BATCH_STAT_NORMS",
    "CACHED_FOR_BACKWARD",
    "CH4_NETWORK",
    "CH4_NORMS",
    "NORM_LABELS",
    "SWEEPABLE",
    "batch_size_sweep",
    "batch_statistics",
    "chance_accuracy",
    "gaussian_bands",
    "gradient_norms_at_init",
    "momentum_effect",
    "non_iid",
    "online_learning",
    "renorm_dynamics",
    "scaled_lr",
    "step_cost",
    "sweep",
]

#: Fields of TrainConfig that :func:`sweep` can vary, with the type their values become.
SWEEPABLE = {
    "lr": float,
    "init_scale": float,
    "batch_size": int,
    "depth": int,
    "width": int,
    "steps": int,
    "momentum": float,
    "seed": int,
}


def _configs(base: TrainConfig, field: str, values: Sequence[float], norms) -> list[TrainConfig]:
    if field not in SWEEPABLE:
        raise ValueError(f"cannot sweep {field!r}; choose one of {sorted(SWEEPABLE)}")
    cast = SWEEPABLE[field]
    configs = []
    for norm in norms:
        for v in values:
            if cast is int and float(v) != int(v):
                raise ValueError(f"{field} takes whole numbers, got {v!r}")
            configs.append(dataclasses.replace(base, norm=norm, **{field: cast(v)}))
    return configs


def sweep(
    base: TrainConfig,
    field: str,
    values: Sequence[float],
    norms: Sequence[str] = ("none", "bn_before"),
    data: DigitsSplit | None = None,
    progress: Callable[[float], None] | None = None,
    train_fn: Callable[..., object] = train,
) -> dict[str, np.ndarray]:
    """Train ``base`` for every value of ``field`` and every normalization in ``norms``.

    Parameters
    ----------
    base : TrainConfig
        The configuration to vary (its ``norm`` is replaced by each of ``norms``).
    field : str
        A key of :data:`SWEEPABLE`, e.g. ``"lr"`` or ``"init_scale"``.
    values : sequence of numbers
        Values of ``field``, length ``k``.
    norms : sequence of str
        Normalizations to compare (see :data:`bn_core.network.NORMS`).
    data : DigitsSplit, optional
        Default: :func:`bn_core.train.digits` for ``base.dtype``.
    progress : callable, optional
        Called with the completed fraction of the whole sweep in [0, 1].
    train_fn : callable, optional
        ``train_fn(config, data=..., progress=...) -> TrainResult``, default
        :func:`bn_core.train.train`; e.g. a process pool's lookup of runs it trains in parallel.

    Returns
    -------
    dict of str to ndarray
        ``"values"``: float array (k,), the swept values. For every ``n`` in ``norms``:

        ``"chance_acc"``: float array of shape (), the chance level ``1 / n_classes``
        (:func:`chance_accuracy`) used below.

        ``f"{n}/test_acc"``, ``f"{n}/train_acc"``: float arrays (k,), accuracy (evaluation
        mode) at the end of training; more precisely at the run's **last evaluation with a
        finite value**: for a run that diverged, the last one before divergence -- read it
        together with ``diverged_at``. A run with no finite evaluation (e.g. its initial
        network already exploded: ``diverged_at`` 0, no evaluation at all) gets the chance
        level. Always finite.
        ``f"{n}/diverged_at"``: int array (k,), the step at which the run diverged (decided
        on the training-mode mini-batch loss, see :func:`bn_core.train.train`), ``-1`` if it
        did not.
        ``f"{n}/final_loss"``: float array (k,), the last finite training-set loss
        (``ln n_classes``, the chance-level loss, when there is none).

    Raises
    ------
    ValueError
        Before training anything, if any configuration of the sweep cannot train (the
        message names the offending value), or if ``field`` cannot be swept.
    """
    if data is None:
        data = digits(base.dtype if base.dtype in ("float32", "float64") else "float64")
    values = list(values)
    configs = _configs(base, field, values, norms)
    n_train = int(data.X_train.shape[0])
    for cfg in configs:  # validate everything before spending time on anything
        try:
            validate_config(cfg, n_train)
        except ValueError as err:
            raise ValueError(f"{field}={getattr(cfg, field)!r}, norm={cfg.norm!r}: {err}") from None
    k = len(values)
    chance = chance_accuracy(data)
    out: dict[str, np.ndarray] = {"values": np.asarray(values, dtype=float),
                                  "chance_acc": np.array(chance)}
    total = len(configs)
    for j, norm in enumerate(norms):
        test_acc, train_acc = np.zeros(k), np.zeros(k)
        final_loss, diverged = np.zeros(k), np.full(k, -1, dtype=np.int64)
        for i in range(k):
            done_before = j * k + i
            sub = None
            if progress is not None:
                sub = _scaled(progress, done_before / total, 1.0 / total)
            result = train_fn(configs[done_before], data=data, progress=sub)
            h = result.history
            test_acc[i] = _last_finite(h["test_acc"], chance)
            train_acc[i] = _last_finite(h["train_acc"], chance)
            final_loss[i] = _last_finite(h["train_loss"], -np.log(chance))
            if result.diverged_at is not None:
                diverged[i] = result.diverged_at
        out[f"{norm}/test_acc"] = test_acc
        out[f"{norm}/train_acc"] = train_acc
        out[f"{norm}/diverged_at"] = diverged
        out[f"{norm}/final_loss"] = final_loss
    if progress is not None:
        progress(1.0)
    return out


def chance_accuracy(data: DigitsSplit | None = None) -> float:
    """Accuracy of guessing: ``1 / n_classes``, classes counted over train and test labels.

    Parameters
    ----------
    data : DigitsSplit, optional
        Default :func:`bn_core.train.digits` (10 classes: 0.1).
    """
    if data is None:
        data = digits()
    return 1.0 / (int(max(data.y_train.max(), data.y_test.max())) + 1)


def _last_finite(values: np.ndarray, default: float) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v[-1]) if v.size else float(default)


def _scaled(progress: Callable[[float], None], start: float, width: float):
    def report(fraction: float) -> None:
        progress(min(1.0, start + width * fraction))

    return report


def gradient_norms_at_init(
    base: TrainConfig,
    norms: Sequence[str] = ("none", "bn_before"),
    data: DigitsSplit | None = None,
) -> dict[str, np.ndarray]:
    """L2 norm of each Linear weight gradient on one mini-batch at initialization.

    :func:`bn_core.train.initial_grad_norms` for each normalization: the first mini-batch
    :func:`bn_core.train.train` would use for ``base.seed`` (same shuffling), the model it
    would build (same initial weights for every norm), in training mode; nothing is updated.
    The values equal ``train(cfg).history["grad_norm"][0]``.

    Parameters
    ----------
    base : TrainConfig
    norms : sequence of str
    data : DigitsSplit, optional

    Returns
    -------
    dict of str to ndarray
        For every ``n`` in ``norms``: ``n`` -> float array of shape ``(depth + 1,)``, hidden
        layers first, then the output layer. Non-finite norms (an exploding initialization)
        are returned as ``inf``; nothing raises or warns.

    Raises
    ------
    ValueError
        If a configuration cannot train (e.g. batch size 1 with batch norm).
    """
    out: dict[str, np.ndarray] = {}
    for norm in norms:
        norms_out = initial_grad_norms(dataclasses.replace(base, norm=norm), data)
        norms_out[~np.isfinite(norms_out)] = np.inf
        out[norm] = norms_out
    return out


# --------------------------------------------------------------------------------------
# Chapter 4: the curse of batch norm (all built on bn_core.stacked.train_many)
# --------------------------------------------------------------------------------------

#: The five normalizations chapter 4 compares, in the order the page shows them.
CH4_NORMS = ("none", "bn_before", "brn", "ln", "gn")

#: Names for people.
NORM_LABELS = {
    "none": "no normalization",
    "bn_before": "BatchNorm",
    "bn_after": "BatchNorm after activation",
    "brn": "Batch Renorm",
    "ln": "LayerNorm",
    "gn": "GroupNorm",
}

#: The reference network of issue 7 (2 x 64 ReLU units, N(0, 0.1^2) weights, SGD with
#: momentum 0.9); every chapter-4 experiment starts from it.
CH4_NETWORK = {"depth": 2, "width": 64, "activation": "relu", "init_scale": 0.1,
               "optimizer": "momentum", "momentum": 0.9}

BATCH_SIZES = (2, 4, 8, 16, 32, 64, 128)


def _ch4_base(**overrides) -> TrainConfig:
    fields = dict(CH4_NETWORK)
    fields.update(overrides)
    return TrainConfig(**fields)


def _check_norms(norms: Sequence[str]) -> tuple[str, ...]:
    norms = tuple(norms)
    unknown = [n for n in norms if n not in NORMS]
    if not norms or unknown or len(set(norms)) != len(norms):
        raise ValueError(f"norms must be distinct names from {list(NORMS)}, got {list(norms)}")
    return norms


def _check_ints(name: str, values, low: int = 1) -> tuple[int, ...]:
    values = tuple(values)
    if not values or not all(isinstance(v, int | np.integer) and v >= low for v in values):
        raise ValueError(f"{name} must be whole numbers >= {low}, got {list(values)}")
    return tuple(int(v) for v in values)


def _data(data: DigitsSplit | None, dtype: str) -> DigitsSplit:
    return digits(dtype if dtype in ("float32", "float64") else "float64") if data is None else data


def scaled_lr(batch_size: int, base_lr: float = 0.05, base_batch: int = 32,
              scale_lr: bool = True) -> float:
    """The linear scaling rule: ``base_lr * batch_size / base_batch`` (``base_lr`` if not
    ``scale_lr``), as Goyal et al. (2017) and Wu & He (2018) scale the learning rate."""
    return float(base_lr) * (batch_size / base_batch if scale_lr else 1.0)


def batch_size_sweep(
    norms: Sequence[str] = CH4_NORMS,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    seeds: Sequence[int] = (0, 1),
    epochs: int = 8,
    base_lr: float = 0.05,
    base_batch: int = 32,
    scale_lr: bool = True,
    batch_order: str = "shuffled",
    groups: int = 4,
    r_max: float = 3.0,
    d_max: float = 5.0,
    bn_momentum: float = 0.1,
    dtype: str = "float32",
    data: DigitsSplit | None = None,
    progress: Callable[[float], None] | None = None,
    **network,
) -> dict[str, np.ndarray]:
    """Test accuracy against batch size for several norms and seeds, same number of epochs.

    Every batch size trains for ``epochs`` passes over the training set
    (``epochs * steps_per_epoch(batch)`` steps), so small batches take more, smaller steps;
    the learning rate follows the linear scaling rule :func:`scaled_lr` unless ``scale_lr``
    is False (then a fixed learning rate changes the effective step per epoch with the
    batch size, which confounds the comparison). All norms and seeds of one batch size train
    at once (:func:`bn_core.stacked.train_many`).

    Parameters
    ----------
    norms : sequence of str
        Names from :data:`bn_core.network.NORMS` (default :data:`CH4_NORMS`).
    batch_sizes : sequence of int
        Batch sizes ``S`` (>= 2 when a norm with batch statistics is included).
    seeds : sequence of int
        ``R`` seeds (initial weights and batch order).
    epochs, base_lr, base_batch, scale_lr
        Training length and learning-rate rule.
    batch_order, groups, r_max, d_max, bn_momentum, dtype
        As :class:`bn_core.train.TrainConfig`.
    data : DigitsSplit, optional
    progress : callable, optional
        Called with the completed fraction in [0, 1] (weighted by the work per batch size).
    **network
        Overrides of :data:`CH4_NETWORK` (``depth``, ``width``, ``activation``,
        ``init_scale``, ``momentum``, ``optimizer``).

    Returns
    -------
    dict of str to ndarray
        ``"batch_sizes"`` int (S,); ``"seeds"`` int (R,); ``"lr"`` float (S,), the learning
        rate of each batch size; ``"steps"`` int (S,); ``"epochs"`` int (); ``"chance_acc"``
        float (). For each norm ``n``: ``f"{n}/test_acc"`` (S, R), evaluation mode (running
        statistics) at the end; ``f"{n}/test_acc_batch_stats"`` (S, R), the same network on
        test mini-batches in training mode; ``f"{n}/train_loss"`` (S, R), evaluation-mode
        training loss; ``f"{n}/diverged_at"`` int (S, R), ``-1`` if the run did not diverge.
        Accuracies and losses are those of the last finite evaluation (chance level / ln 10
        if there is none), so always finite.

    Raises
    ------
    ValueError
        Before training anything, for names, sizes or settings that cannot train (e.g. a
        batch of one with batch statistics: the layer's own message).
    """
    from bn_core.stacked import train_many

    norms = _check_norms(norms)
    batch_sizes = _check_ints("batch_sizes", batch_sizes)
    seeds = _check_ints("seeds", seeds, low=0)
    if not (isinstance(epochs, int | np.integer) and epochs >= 1):
        raise ValueError(f"epochs must be a whole number >= 1, got {epochs!r}")
    data = _data(data, dtype)
    chance = chance_accuracy(data)
    plans = []
    for b in batch_sizes:
        steps = int(epochs) * steps_per_epoch(b, batch_order, data)
        if steps < 1:
            raise ValueError(f"batch size {b} leaves no full batch to train on")
        base = _ch4_base(**network, batch_size=b, steps=steps, eval_every=steps,
                         lr=scaled_lr(b, base_lr, base_batch, scale_lr), batch_order=batch_order,
                         groups=groups, r_max=r_max, d_max=d_max, bn_momentum=bn_momentum,
                         dtype=dtype)
        cfgs = [dataclasses.replace(base, norm=n, seed=s) for n in norms for s in seeds]
        n_train = int(data.X_train.shape[0])
        for cfg in cfgs:  # validate everything before training anything
            try:
                validate_config(cfg, n_train)
            except ValueError as err:
                raise ValueError(f"batch size {b}, {NORM_LABELS.get(cfg.norm, cfg.norm)}: "
                                 f"{err}") from None
        plans.append((b, base, cfgs))
    # work per batch size: steps x (call overhead + arithmetic growing with the batch)
    work = np.array([base.steps * (1.0 + base.batch_size / 16.0) for _, base, _ in plans])
    starts = np.concatenate([[0.0], np.cumsum(work)[:-1]]) / work.sum()
    widths = work / work.sum()
    S, R = len(batch_sizes), len(seeds)
    out: dict[str, np.ndarray] = {
        "batch_sizes": np.array(batch_sizes, dtype=np.int64),
        "seeds": np.array(seeds, dtype=np.int64),
        "lr": np.array([base.lr for _, base, _ in plans]),
        "steps": np.array([base.steps for _, base, _ in plans], dtype=np.int64),
        "epochs": np.array(int(epochs)),
        "chance_acc": np.array(chance),
    }
    for n in norms:
        for key in ("test_acc", "test_acc_batch_stats", "train_loss"):
            out[f"{n}/{key}"] = np.zeros((S, R))
        out[f"{n}/diverged_at"] = np.full((S, R), -1, dtype=np.int64)
    for i, (_, _, cfgs) in enumerate(plans):
        sub = None if progress is None else _scaled(progress, starts[i], widths[i])
        results = train_many(cfgs, data=data, progress=sub)
        for cfg, res in zip(cfgs, results, strict=True):
            j = seeds.index(cfg.seed)
            h = res.history
            out[f"{cfg.norm}/test_acc"][i, j] = _last_finite(h["test_acc"], chance)
            out[f"{cfg.norm}/test_acc_batch_stats"][i, j] = _last_finite(
                h["test_acc_batch_stats"], chance)
            out[f"{cfg.norm}/train_loss"][i, j] = _last_finite(h["train_loss"], -np.log(chance))
            if res.diverged_at is not None:
                out[f"{cfg.norm}/diverged_at"][i, j] = res.diverged_at
    if progress is not None:
        progress(1.0)
    return out


def batch_statistics(
    batch_sizes: Sequence[int] = BATCH_SIZES,
    n_batches: int = 2000,
    layer: int = 0,
    unit: int = 0,
    trained_steps: int = 300,
    seed: int = 0,
    data: DigitsSplit | None = None,
) -> dict[str, np.ndarray]:
    r"""The sampling distribution of one real unit's batch mean and batch variance.

    The unit is pre-activation ``unit`` (the Linear output, before the ReLU) of hidden layer
    ``layer`` of the reference network (:data:`CH4_NETWORK`) trained ``trained_steps`` steps
    without normalization (batch 32, lr 0.05, ``seed``), evaluated on the whole training set:
    its ``N`` values are the population. Batches are drawn exactly as training draws them
    (:func:`bn_core.train.batch_schedule`: random permutations each epoch, without
    replacement), ``n_batches`` per batch size ``m``.

    Closed forms for comparison, with :math:`\sigma^2` the population variance (divisor N):

    * mean: :math:`\mathrm{sd}(\bar x_B) = \sigma / \sqrt m` for independent draws;
      without replacement from ``N`` values it is smaller by
      :math:`\sqrt{(N - m)/(N - 1)}` (``"se_mean_fpc"``, exact for the mean);
    * variance: for **Gaussian** data the batch variance has relative spread
      :math:`\mathrm{sd}(s^2_B) / E[s^2_B] = \sqrt{2 / (m - 1)}` (``"var_rel_sd_gaussian"``:
      this is where the Gaussian approximation is used). For any distribution with
      kurtosis :math:`\kappa` (independent draws) it is
      :math:`\sqrt{2/(m-1) + (\kappa - 3)/m}` (``"var_rel_sd_kurtosis"``); a heavy-tailed unit
      (:math:`\kappa > 3`) has noisier batch variances than the Gaussian rule says. The
      biased batch variance BN uses has mean :math:`(m-1)/m\,\sigma^2` (``"expected_var"``).

    The bands a chart draws are exact central intervals for **Gaussian** data (independent
    draws), from :func:`gaussian_bands`: ``"mean_band_lo"``/``"mean_band_hi"``
    :math:`\mu \mp \sigma/\sqrt m`, and ``"var_band_lo"``/``"var_band_hi"``
    :math:`\sigma^2\,\chi^2_{m-1}(q)/m` at :math:`q = \Phi(\mp 1)`, both holding
    :data:`BAND_LEVEL` (68.27 %) of the values. Unlike :math:`E \pm E\sqrt{2/(m-1)}`, the
    variance band never goes below zero and follows the chi-square's skew at small ``m``.

    Returns
    -------
    dict of str to ndarray
        ``"batch_sizes"`` int (S,); ``"batch_means"``, ``"batch_vars"`` (S, n_batches), the
        batch mean and biased batch variance of every drawn batch; ``"values"`` (N,), the
        population; ``"pop_mean"``, ``"pop_var"``, ``"pop_kurtosis"`` float (),
        ``"n_population"`` int (); ``"se_mean"``, ``"se_mean_fpc"``, ``"sd_mean_measured"``,
        ``"expected_var"``, ``"var_rel_sd_gaussian"``, ``"var_rel_sd_kurtosis"``,
        ``"var_rel_sd_measured"`` (S,) (measured: ``std(batch_vars) / mean(batch_vars)``);
        ``"mean_band_lo"``, ``"mean_band_hi"``, ``"var_band_lo"``, ``"var_band_hi"`` (S,), the
        Gaussian central :data:`BAND_LEVEL` intervals above; ``"band_level"`` float ();
        ``"layer"``, ``"unit"`` int ().
    """
    batch_sizes = _check_ints("batch_sizes", batch_sizes, low=2)
    if not (isinstance(n_batches, int | np.integer) and 10 <= n_batches <= 100_000):
        raise ValueError(f"n_batches must be a whole number from 10 to 100000, got {n_batches!r}")
    base = _ch4_base(batch_size=32, lr=0.05, steps=max(int(trained_steps), 1),
                     eval_every=max(int(trained_steps), 1), seed=seed, dtype="float64")
    if not (isinstance(layer, int | np.integer) and 0 <= layer < base.depth):
        raise ValueError(f"layer must be in [0, {base.depth}), got {layer!r}")
    if not (isinstance(unit, int | np.integer) and 0 <= unit < base.width):
        raise ValueError(f"unit must be in [0, {base.width}), got {unit!r}")
    data = _data(data, "float64")
    n = int(data.X_train.shape[0])
    if max(batch_sizes) > n:
        raise ValueError(f"batch sizes must be at most the {n} training samples")
    model = make_model(base)
    if trained_steps > 0:
        model = train(base, data=data).model
    _, act_inputs = model.forward_with_act_inputs(np.asarray(data.X_train, dtype=np.float64))
    values = np.array(act_inputs[layer][:, unit], dtype=np.float64)
    mu, var = float(values.mean()), float(values.var())
    if not var > 0:
        raise ValueError(f"unit {unit} of layer {layer} is constant on the training set")
    kurt = float(np.mean((values - mu) ** 4) / var**2)
    S = len(batch_sizes)
    means, vars_ = np.zeros((S, n_batches)), np.zeros((S, n_batches))
    labels = np.asarray(data.y_train)
    for i, m in enumerate(batch_sizes):
        schedule = batch_schedule(dataclasses.replace(base, batch_size=m), labels)
        idx = np.stack([next(schedule) for _ in range(n_batches)])
        v = values[idx]
        means[i] = v.mean(axis=1)
        vars_[i] = v.var(axis=1)
    m = np.array(batch_sizes, dtype=float)
    sigma = np.sqrt(var)
    return {
        "batch_sizes": np.array(batch_sizes, dtype=np.int64),
        "batch_means": means,
        "batch_vars": vars_,
        "values": values,
        "pop_mean": np.array(mu),
        "pop_var": np.array(var),
        "pop_kurtosis": np.array(kurt),
        "n_population": np.array(n),
        "se_mean": sigma / np.sqrt(m),
        "se_mean_fpc": sigma / np.sqrt(m) * np.sqrt((n - m) / (n - 1)),
        "sd_mean_measured": means.std(axis=1),
        "expected_var": (m - 1) / m * var,
        "var_rel_sd_gaussian": np.sqrt(2.0 / (m - 1)),
        "var_rel_sd_kurtosis": np.sqrt(np.maximum(2.0 / (m - 1) + (kurt - 3.0) / m, 0.0)),
        "var_rel_sd_measured": vars_.std(axis=1) / vars_.mean(axis=1),
        **gaussian_bands(mu, var, batch_sizes),
        "layer": np.array(int(layer)),
        "unit": np.array(int(unit)),
    }


#: The probability inside a Gaussian's one-sigma interval, Phi(1) - Phi(-1) = 0.6827: the level
#: of every band :func:`gaussian_bands` returns.
BAND_LEVEL = 0.6826894921370859


def gaussian_bands(pop_mean: float, pop_var: float, batch_sizes: Sequence[int]) -> dict[str, np.ndarray]:
    r"""Exact central 68.27 % intervals of the batch mean and biased batch variance, Gaussian data.

    For ``m`` independent draws from :math:`N(\mu, \sigma^2)`, :math:`\mu_B \sim N(\mu, \sigma^2/m)`
    and :math:`m\,\sigma^2_B/\sigma^2 \sim \chi^2_{m-1}` (:math:`\sigma^2_B` with divisor ``m``,
    as BatchNorm computes it). The intervals run from the quantile :math:`q_- = \Phi(-1)` to
    :math:`q_+ = \Phi(1)` (15.87 % and 84.13 %), so they hold :data:`BAND_LEVEL` of the values:

    .. math::
        \mu \mp \frac{\sigma}{\sqrt m},\qquad
        \frac{\sigma^2}{m}\,\chi^2_{m-1}(q_\mp)

    The variance interval is positive for every ``m >= 2`` and asymmetric (the chi-square is
    skewed to the right); it is not centred on :math:`E[\sigma^2_B] = (m-1)/m\,\sigma^2`.

    Parameters
    ----------
    pop_mean, pop_var : float
        :math:`\mu` and :math:`\sigma^2 > 0`.
    batch_sizes : sequence of int of shape (S,)
        Batch sizes ``m >= 2``.

    Returns
    -------
    dict of str to ndarray
        ``"mean_band_lo"``, ``"mean_band_hi"``, ``"var_band_lo"``, ``"var_band_hi"`` (S,);
        ``"band_level"`` float ().
    """
    from scipy.stats import chi2, norm  # lazy: scipy.stats costs a fraction of a second to import

    m = np.asarray(_check_ints("batch_sizes", batch_sizes, low=2), dtype=float)
    if not (np.isfinite(pop_var) and pop_var > 0 and np.isfinite(pop_mean)):
        raise ValueError(f"need a finite mean and a positive variance, got {pop_mean!r}, {pop_var!r}")
    q_lo, q_hi = norm.cdf([-1.0, 1.0])
    half = np.sqrt(pop_var / m)
    return {
        "mean_band_lo": pop_mean - half,
        "mean_band_hi": pop_mean + half,
        "var_band_lo": pop_var * chi2.ppf(q_lo, m - 1) / m,
        "var_band_hi": pop_var * chi2.ppf(q_hi, m - 1) / m,
        "band_level": np.array(float(q_hi - q_lo)),
    }


def _eval_every(steps: int, n_points: int) -> int:
    return max(1, -(-steps // max(int(n_points), 1)))


def momentum_effect(
    batch_size: int = 8,
    momenta: Sequence[float] = (0.01, 0.1, 0.5),
    seeds: Sequence[int] = (0,),
    epochs: int = 4,
    n_points: int = 12,
    base_lr: float = 0.05,
    base_batch: int = 32,
    dtype: str = "float32",
    data: DigitsSplit | None = None,
    progress: Callable[[float], None] | None = None,
    **network,
) -> dict[str, np.ndarray]:
    """BatchNorm trained with several running-statistics momenta: evaluation-mode accuracy
    (running statistics, what a deployed model uses) against training-mode accuracy (batch
    statistics) over training.

    Parameters
    ----------
    batch_size : int
        Mini-batch size (>= 2); the learning rate is :func:`scaled_lr`.
    momenta : sequence of float
        ``M`` values of ``bn_momentum`` in (0, 1].
    seeds, epochs, base_lr, base_batch, dtype, data, progress, **network
        As :func:`batch_size_sweep`; ``n_points`` evaluations (plus step 0) along training.

    Returns
    -------
    dict of str to ndarray
        ``"momenta"`` (M,); ``"seeds"`` (R,); ``"step"`` int (n_rec,); ``"test_acc"``
        (M, R, n_rec) evaluation mode; ``"test_acc_batch_stats"`` (M, R, n_rec) training
        mode on test batches of ``batch_size``. NaN only where a run diverged (then
        ``"diverged_at"`` (M, R) is >= 0; -1 otherwise).
    """
    seeds = _check_ints("seeds", seeds, low=0)
    momenta = tuple(float(m) for m in momenta)
    if not momenta:
        raise ValueError("momenta must not be empty")
    data = _data(data, dtype)
    steps = int(epochs) * steps_per_epoch(batch_size, "shuffled", data)
    base = _ch4_base(**network, norm="bn_before", batch_size=batch_size, steps=steps,
                     eval_every=_eval_every(steps, n_points), dtype=dtype,
                     lr=scaled_lr(batch_size, base_lr, base_batch))
    cfgs = [dataclasses.replace(base, bn_momentum=m, seed=s) for m in momenta for s in seeds]
    from bn_core.stacked import train_many

    results = train_many(cfgs, data=data, progress=progress)
    steps_rec = np.array(evaluation_steps(steps, base.eval_every))
    n_rec = len(steps_rec)
    M, R = len(momenta), len(seeds)
    acc = np.full((M, R, n_rec), np.nan)
    acc_bs = np.full((M, R, n_rec), np.nan)
    div = np.full((M, R), -1, dtype=np.int64)
    for k, res in enumerate(results):
        i, j = divmod(k, R)
        h = res.history
        acc[i, j, : len(h["test_acc"])] = h["test_acc"]
        acc_bs[i, j, : len(h["test_acc"])] = h["test_acc_batch_stats"]
        if res.diverged_at is not None:
            div[i, j] = res.diverged_at
    return {"momenta": np.array(momenta), "seeds": np.array(seeds, dtype=np.int64),
            "step": steps_rec, "test_acc": acc, "test_acc_batch_stats": acc_bs,
            "diverged_at": div, "batch_size": np.array(int(batch_size))}


def non_iid(
    norms: Sequence[str] = CH4_NORMS,
    batch_size: int = 32,
    epochs: int = 6,
    seeds: Sequence[int] = (0, 1),
    orders: Sequence[str] = ("shuffled", "by_class"),
    n_points: int = 12,
    base_lr: float = 0.005,
    base_batch: int = 32,
    groups: int = 4,
    r_max: float = 3.0,
    d_max: float = 5.0,
    dtype: str = "float32",
    data: DigitsSplit | None = None,
    progress: Callable[[float], None] | None = None,
    **network,
) -> dict[str, np.ndarray]:
    """Class-sorted mini-batches (every batch one class) against shuffled ones, per norm.

    The default learning rate is a tenth of the sweep's (``base_lr=0.005``, i.e. 0.005 at
    batch 32): measured on digits (seeds 0 and 1, 6 epochs), with ``base_lr=0.05`` and
    momentum 0.9 class-pure batches kill every ReLU network, with or without normalization
    (LayerNorm and GroupNorm end at chance, 0.10, with all hidden units dead; PyTorch gives
    the same numbers from the same weights and batches, see
    ``benchmarks/torch_curse_parity.py``), which hides what is specific to batch norm. At
    0.005 LayerNorm and GroupNorm reach 0.90-0.94 while BatchNorm stays at 0.07-0.14.

    Returns
    -------
    dict of str to ndarray
        ``"orders"``, ``"norms"`` str arrays; ``"seeds"`` (R,); for each order ``o``:
        ``f"{o}/step"`` int (n_rec,), ``f"{o}/steps"`` int (); and for each norm ``n``:
        ``f"{o}/{n}/test_acc"`` (R,) evaluation mode at the end (last finite value),
        ``f"{o}/{n}/test_acc_batch_stats"`` (R,), ``f"{o}/{n}/batch_loss"`` (R, steps) the
        training-mode mini-batch loss (NaN after a divergence), ``f"{o}/{n}/test_acc_curve"``
        (R, n_rec) (NaN after a divergence), ``f"{o}/{n}/diverged_at"`` int (R,), -1 if not.
    """
    norms = _check_norms(norms)
    seeds = _check_ints("seeds", seeds, low=0)
    data = _data(data, dtype)
    chance = chance_accuracy(data)
    out: dict[str, np.ndarray] = {"orders": np.array(orders), "norms": np.array(norms),
                                  "seeds": np.array(seeds, dtype=np.int64),
                                  "batch_size": np.array(int(batch_size))}
    plans = []
    for o in orders:
        steps = int(epochs) * steps_per_epoch(batch_size, o, data)
        base = _ch4_base(**network, batch_size=batch_size, steps=steps, batch_order=o,
                         eval_every=_eval_every(steps, n_points), dtype=dtype, groups=groups,
                         r_max=r_max, d_max=d_max, lr=scaled_lr(batch_size, base_lr, base_batch))
        plans.append((o, base, [dataclasses.replace(base, norm=n, seed=s)
                                for n in norms for s in seeds]))
    from bn_core.stacked import train_many

    for p, (o, base, cfgs) in enumerate(plans):
        sub = None if progress is None else _scaled(progress, p / len(plans), 1 / len(plans))
        results = train_many(cfgs, data=data, progress=sub)
        rec = np.array(evaluation_steps(base.steps, base.eval_every))
        out[f"{o}/step"] = rec
        out[f"{o}/steps"] = np.array(base.steps)
        R = len(seeds)
        for i, n in enumerate(norms):
            acc, acc_bs = np.zeros(R), np.zeros(R)
            loss = np.full((R, base.steps), np.nan)
            curve = np.full((R, len(rec)), np.nan)
            div = np.full(R, -1, dtype=np.int64)
            for j in range(R):
                res = results[i * R + j]
                h = res.history
                acc[j] = _last_finite(h["test_acc"], chance)
                acc_bs[j] = _last_finite(h["test_acc_batch_stats"], chance)
                loss[j, : len(h["batch_loss"])] = h["batch_loss"]
                curve[j, : len(h["test_acc"])] = h["test_acc"]
                if res.diverged_at is not None:
                    div[j] = res.diverged_at
            out[f"{o}/{n}/test_acc"] = acc
            out[f"{o}/{n}/test_acc_batch_stats"] = acc_bs
            out[f"{o}/{n}/batch_loss"] = loss
            out[f"{o}/{n}/test_acc_curve"] = curve
            out[f"{o}/{n}/diverged_at"] = div
    if progress is not None:
        progress(1.0)
    return out


def online_learning(
    norms: Sequence[str] = CH4_NORMS,
    seeds: Sequence[int] = (0, 1),
    lr: float = 0.05 / 32,
    eval_every: int = 25,
    groups: int = 4,
    dtype: str = "float32",
    data: DigitsSplit | None = None,
    progress: Callable[[float], None] | None = None,
    **network,
) -> dict[str, np.ndarray]:
    """Online learning: batch size 1, one pass over the training set (each sample once).

    The norms with batch statistics (BatchNorm, Batch Renorm) cannot take a step: their
    layer's own ``ValueError`` message is returned instead of a curve.

    Returns
    -------
    dict of str to ndarray
        ``"samples_seen"`` int (n_rec,) (= steps, batch 1); ``"trained"`` str (T,) the norms
        that trained, ``"refused"`` str (F,) the others; ``"seeds"`` (R,); for a trained
        norm ``n``: ``f"{n}/test_acc"`` (R, n_rec) evaluation mode (NaN after a divergence);
        for a refused one: ``f"{n}/message"`` str (), the layer's message.
    """
    from bn_core.stacked import train_many

    norms = _check_norms(norms)
    seeds = _check_ints("seeds", seeds, low=0)
    data = _data(data, dtype)
    steps = int(data.X_train.shape[0])
    base = _ch4_base(**network, batch_size=1, steps=steps, eval_every=int(eval_every), lr=lr,
                     groups=groups, dtype=dtype)
    out: dict[str, np.ndarray] = {"seeds": np.array(seeds, dtype=np.int64)}
    trained, refused = [], []
    for n in norms:
        cfg = dataclasses.replace(base, norm=n)
        if n in BATCH_STAT_NORMS:
            refused.append(n)
            out[f"{n}/message"] = np.array(_layer_refusal(cfg, data))
        else:
            validate_config(cfg, steps)
            trained.append(n)
    rec = np.array(evaluation_steps(steps, base.eval_every))
    out["samples_seen"] = rec
    out["trained"], out["refused"] = np.array(trained, dtype=str), np.array(refused, dtype=str)
    if trained:
        cfgs = [dataclasses.replace(base, norm=n, seed=s) for n in trained for s in seeds]
        results = train_many(cfgs, data=data, progress=progress)
        R = len(seeds)
        for i, n in enumerate(trained):
            acc = np.full((R, len(rec)), np.nan)
            for j in range(R):
                h = results[i * R + j].history
                acc[j, : len(h["test_acc"])] = h["test_acc"]
            out[f"{n}/test_acc"] = acc
    elif progress is not None:
        progress(1.0)
    return out


def _layer_refusal(cfg: TrainConfig, data: DigitsSplit) -> str:
    """The ValueError the network's own first normalization layer raises on one sample."""
    model = make_model(cfg)
    try:
        model.forward(np.asarray(data.X_train[:1], dtype=model.dtype), training=True)
    except ValueError as err:
        return str(err)
    raise AssertionError(f"{cfg.norm} trained on a single sample")  # pragma: no cover


def renorm_dynamics(
    batch_size: int = 4,
    r_max: float = 3.0,
    d_max: float = 5.0,
    epochs: int = 8,
    seed: int = 0,
    batch_order: str = "shuffled",
    base_lr: float = 0.05,
    base_batch: int = 32,
    dtype: str = "float32",
    data: DigitsSplit | None = None,
    progress: Callable[[float], None] | None = None,
    **network,
) -> dict[str, np.ndarray]:
    """BatchNorm and Batch Renorm side by side (same seed, batches, learning rate); r and d.

    Returns
    -------
    dict of str to ndarray
        ``"step"`` int (steps,), 1 .. steps; ``"r"``, ``"d"`` (steps, depth, 3): minimum, mean
        and maximum over the units of hidden layer ``l`` of Batch Renorm's r and d at each
        step (NaN after a divergence); ``"r_max"``, ``"d_max"`` (); for ``a`` in
        ``("bn", "brn")``: ``f"{a}/test_acc"``, ``f"{a}/test_acc_batch_stats"`` () at the end
        (last finite), ``f"{a}/batch_loss"`` (steps,) (NaN after a divergence),
        ``f"{a}/diverged_at"`` int () (-1 if not); ``"clipped_r"``, ``"clipped_d"`` (steps,
        depth): whether any unit's r (d) sat at its bound at that step.
    """
    from bn_core.stacked import train_many

    data = _data(data, dtype)
    chance = chance_accuracy(data)
    steps = int(epochs) * steps_per_epoch(batch_size, batch_order, data)
    base = _ch4_base(**network, batch_size=batch_size, steps=steps, eval_every=steps,
                     batch_order=batch_order, seed=seed, dtype=dtype, r_max=r_max, d_max=d_max,
                     lr=scaled_lr(batch_size, base_lr, base_batch))
    bn, brn = train_many([dataclasses.replace(base, norm="bn_before"),
                          dataclasses.replace(base, norm="brn")], data=data, progress=progress)
    depth = base.depth
    r = np.full((steps, depth, 3), np.nan)
    d = np.full((steps, depth, 3), np.nan)
    done = len(brn.history["batch_loss"])
    r[:done], d[:done] = brn.history["brn_r"], brn.history["brn_d"]
    with np.errstate(invalid="ignore"):
        clipped_r = (np.isclose(r[..., 2], r_max) | np.isclose(r[..., 0], 1.0 / r_max)) \
            if r_max > 1 else np.ones((steps, depth), dtype=bool)
        clipped_d = np.isclose(np.maximum(-d[..., 0], d[..., 2]), d_max)
    out = {"step": np.arange(1, steps + 1), "r": r, "d": d, "r_max": np.array(float(r_max)),
           "d_max": np.array(float(d_max)), "clipped_r": clipped_r & (np.arange(steps) < done)[:, None],
           "clipped_d": clipped_d & (np.arange(steps) < done)[:, None],
           "batch_size": np.array(int(batch_size))}
    for name, res in (("bn", bn), ("brn", brn)):
        h = res.history
        loss = np.full(steps, np.nan)
        loss[: len(h["batch_loss"])] = h["batch_loss"]
        out[f"{name}/test_acc"] = np.array(_last_finite(h["test_acc"], chance))
        out[f"{name}/test_acc_batch_stats"] = np.array(
            _last_finite(h["test_acc_batch_stats"], chance))
        out[f"{name}/batch_loss"] = loss
        out[f"{name}/diverged_at"] = np.array(-1 if res.diverged_at is None else res.diverged_at)
    return out


#: What each normalization layer keeps from its forward pass for the backward pass
#: (attribute names on the bn_core layer, and a description for people).
CACHED_FOR_BACKWARD = {
    "BatchNorm1d": (("_xc", "inv_std", "_scale"),
                    "x - batch mean (n, C), 1/std (C,), gamma/std (C,)"),
    "BatchRenorm1d": (("_xc", "inv_std", "_scale", "_r", "last_d"),
                      "x - batch mean (n, C), 1/std (C,), gamma r/std (C,), r (C,), d (C,)"),
    "LayerNorm": (("x_hat", "inv_std"), "x_hat (n, C), 1/std per sample (n, 1)"),
    "GroupNorm": (("x_hat", "inv_std"), "x_hat (n, C), 1/std per sample and group (n, G)"),
}


def step_cost(
    norms: Sequence[str] = CH4_NORMS,
    width: int = 64,
    batch_size: int = 32,
    depth: int = 2,
    groups: int = 4,
    repeats: int = 30,
    seed: int = 0,
    dtype: str = "float32",
    data: DigitsSplit | None = None,
) -> dict[str, np.ndarray]:
    """Measured time of one training step per norm, split into forward, backward and update,
    and the bytes each normalization keeps for the backward pass.

    One model per norm (:func:`bn_core.train.make_model`, one BLAS thread) does ``repeats``
    steps on mini-batches of the digits (after two warm-up steps); the medians are reported.
    The forward includes the loss, the backward the softmax gradient and every layer's
    backward, the update one momentum step over the flat parameter vector. Wall time on a
    shared machine: compare norms measured in one call, not across calls.

    Returns
    -------
    dict of str to ndarray
        ``"norms"`` str (T,); ``"width"``, ``"batch_size"``, ``"depth"`` int (); for each norm
        ``n``: ``f"{n}/forward_s"``, ``f"{n}/backward_s"``, ``f"{n}/update_s"`` float (),
        median seconds; ``f"{n}/step_s_q25"``, ``f"{n}/step_s_q75"`` float (), quartiles of the
        whole step's time over the repeats; ``f"{n}/cache_bytes"`` int (), bytes the normalization layers hold
        for backward after a forward (0 for "none"); ``f"{n}/network_cache_bytes"`` int (),
        all layers' forward caches (Linear inputs and activation outputs included);
        ``f"{n}/cache_arrays"`` str (), what one normalization layer keeps.
    """
    import time

    norms = _check_norms(norms)
    data = _data(data, dtype)
    if not (isinstance(repeats, int | np.integer) and 3 <= repeats <= 1000):
        raise ValueError(f"repeats must be a whole number from 3 to 1000, got {repeats!r}")
    out: dict[str, np.ndarray] = {"norms": np.array(norms), "width": np.array(int(width)),
                                  "batch_size": np.array(int(batch_size)),
                                  "depth": np.array(int(depth))}
    n_train = int(data.X_train.shape[0])
    y_all = np.asarray(data.y_train, dtype=np.intp)
    from bn_core.layers import softmax_cross_entropy
    from bn_core.network import OPTIMIZERS
    from bn_core.train import single_blas_thread

    for n in norms:
        cfg = _ch4_base(norm=n, width=width, depth=depth, batch_size=batch_size, groups=groups,
                        seed=seed, dtype=dtype, lr=0.01)
        validate_config(cfg, n_train)
        model = make_model(cfg)
        opt = OPTIMIZERS[cfg.optimizer](cfg.lr, momentum=cfg.momentum)
        X = np.asarray(data.X_train, dtype=model.dtype)
        schedule = batch_schedule(cfg, y_all)
        times = np.zeros((repeats + 2, 3))
        perf = time.perf_counter
        with np.errstate(all="ignore"), single_blas_thread():
            for r in range(repeats + 2):
                idx = next(schedule)
                xb, yb = X[idx], y_all[idx]
                t0 = perf()
                logits = model.forward(xb, training=True)
                _, g = softmax_cross_entropy(logits, yb)
                t1 = perf()
                model.backward(g, need_input_grad=False)
                t2 = perf()
                opt.step(model.flat_layers())
                t3 = perf()
                times[r] = t1 - t0, t2 - t1, t3 - t2
        model.forward(X[next(schedule)], training=True)
        med = np.median(times[2:], axis=0)
        out[f"{n}/forward_s"], out[f"{n}/backward_s"], out[f"{n}/update_s"] = (
            np.array(float(v)) for v in med)
        q25, q75 = np.percentile(times[2:].sum(axis=1), [25.0, 75.0])
        out[f"{n}/step_s_q25"], out[f"{n}/step_s_q75"] = np.array(float(q25)), np.array(float(q75))
        norm_bytes = 0
        for layer in model.norm_layers():
            names = CACHED_FOR_BACKWARD[type(layer).__name__][0]
            norm_bytes += sum(getattr(layer, a).nbytes for a in names
                              if isinstance(getattr(layer, a, None), np.ndarray))
        net_bytes = 0
        for layer in model.layers:
            for a in ("_x", "_y", "_xc", "x_hat", "inv_std", "_scale", "_r", "last_d"):
                v = layer.__dict__.get(a)
                if isinstance(v, np.ndarray):
                    net_bytes += v.nbytes
        out[f"{n}/cache_bytes"] = np.array(int(norm_bytes))
        out[f"{n}/network_cache_bytes"] = np.array(int(net_bytes))
        kinds = {type(la).__name__ for la in model.norm_layers()}
        out[f"{n}/cache_arrays"] = np.array(
            CACHED_FOR_BACKWARD[kinds.pop()][1] if kinds else "nothing (no normalization)")
    return out
