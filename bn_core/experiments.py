"""Experiments built on :func:`bn_core.train.train`: sweeps and gradient norms at initialization.

Each function runs the same configuration with and without batch normalization (the
``norms``), with the same seed, hence the same initial Linear weights and the same
mini-batches, so the arms differ only by the normalization.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from bn_core.data import DigitsSplit
from bn_core.train import TrainConfig, digits, initial_grad_norms, train, validate_config

__all__ = ["SWEEPABLE", "chance_accuracy", "gradient_norms_at_init", "sweep"]

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
