"""Train an :class:`~bn_core.network.MLP` on digits and record an instrumented history.

One call, one seed, one :class:`TrainResult`::

    result = train(TrainConfig(norm="bn_before"))
    result.history["test_acc"][-1], result.diverged_at, result.message

The loop is plain mini-batch training (shuffle without replacement every epoch, drop the
incomplete last batch so batch normalization never sees a tiny batch; or class-sorted batches,
see :func:`batch_schedule`) with evaluation of the whole train and test sets every
``eval_every`` steps in evaluation mode (and of the test set in training mode, with batch
statistics, for ``history["test_acc_batch_stats"]``). It never raises on
divergence and never emits floating-point warnings: it stops at the first non-finite or
exploding **training-mode mini-batch loss** and says at which step.

Divergence is judged on the loss that training actually minimizes, never on an evaluation:
in evaluation mode batch norm normalizes with its running statistics, which start at mean 0
and variance 1. Before the first update they do not describe the layer's inputs at all, so a
batch-norm network with large initial weights can look exploded there and train well
(measured: ReLU, weight std 3, 3 x 100 units, learning rate 0.3: evaluation loss 1.7e5 at
step 0, first mini-batch loss 27, test accuracy 0.91 at step 150). An evaluation that is not
finite is recorded as NaN and training goes on.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bn_core.data import DigitsSplit, load_digits_split
from bn_core.layers import ACTIVATIONS, one_sample_message, softmax_cross_entropy
from bn_core.network import BATCH_STAT_NORMS, MLP, NORMS, OPTIMIZERS

__all__ = [
    "BATCH_ORDERS",
    "DIVERGENCE_LOSS",
    "PERCENTILES",
    "TrainConfig",
    "TrainResult",
    "batch_schedule",
    "digits",
    "eval_batches",
    "evaluation_steps",
    "initial_grad_norms",
    "make_model",
    "single_blas_thread",
    "steps_per_epoch",
    "train",
    "validate_config",
]

#: How mini-batches are drawn, see :func:`batch_schedule`.
BATCH_ORDERS = ("shuffled", "by_class")

#: The layer class whose ValueError a batch of one meets, per batch-statistics norm.
_BATCH_STAT_LAYER = {"bn_before": "BatchNorm1d", "bn_after": "BatchNorm1d",
                     "brn": "BatchRenorm1d"}

#: A training-mode mini-batch loss above this counts as exploding. Chance level on
#: 10 classes is ln 10 = 2.3; a loss of 1e4 means logits tens of thousands apart.
DIVERGENCE_LOSS = 1e4

#: Percentiles of the probed unit's input recorded in ``history["act_pct"]``.
PERCENTILES = (15.0, 50.0, 85.0)

_DTYPES = {"float64": np.float64, "float32": np.float32}
_MAX_PROGRESS_CALLS = 100


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (hashable, so it can key a cache).

    Attributes
    ----------
    depth, width : int
        Hidden layers and units per hidden layer.
    activation : {"sigmoid", "relu", "tanh"}
    norm : {"none", "bn_before", "bn_after", "ln", "gn", "brn"}
        Normalization and its placement, see :data:`bn_core.network.NORMS`: batch norm before
        or after the activation, LayerNorm, GroupNorm or Batch Renormalization (the last three
        where ``"bn_before"`` puts batch norm: after the linear transform, before the
        activation).
    init_scale : float
        Standard deviation of the Gaussian initial weights.
    lr : float
        Learning rate.
    batch_size : int
        Mini-batch size (>= 2 with batch statistics, i.e. ``"bn_before"``, ``"bn_after"``,
        ``"brn"``; 1 trains ``"none"``, ``"ln"`` and ``"gn"`` sample by sample; <= number of
        training samples, and <= the smallest class with ``batch_order="by_class"``).
    steps : int
        Number of parameter updates.
    optimizer : {"sgd", "momentum"}
    momentum : float
        Momentum coefficient (used by ``optimizer="momentum"`` only).
    seed : int
        Seeds the initial weights and the shuffling.
    eval_every : int
        Steps between evaluations on the full train and test sets (plus step 0 and the last).
    probe_unit : int
        Which unit of each hidden layer ``act_pct`` tracks (0 <= probe_unit < width).
    dtype : {"float32", "float64"}
        Floating type of the network and data. The default is float32: its matrix products
        take about half the time of float64 ones, and on the default run the recorded curves
        and final accuracies agree with float64 (0.789 without, 0.982 with batch norm). Use
        float64 for exact checks (the gradient checks do).
    groups : int
        Number of groups of GroupNorm (``norm="gn"``, default 4); must divide ``width``.
    r_max, d_max : float
        Bounds of Batch Renormalization's corrections (``norm="brn"``): ``r`` in
        ``[1/r_max, r_max]`` (``r_max >= 1``), ``d`` in ``[-d_max, d_max]`` (``d_max >= 0``);
        ``r_max=1, d_max=0`` is batch norm exactly.
    bn_momentum : float
        Running-statistics momentum of BatchNorm1d / BatchRenorm1d, in (0, 1] (default 0.1,
        PyTorch's).
    batch_order : {"shuffled", "by_class"}
        How mini-batches are drawn (:func:`batch_schedule`): ``"shuffled"`` (i.i.d.-like, the
        default) or ``"by_class"`` (every batch holds one class only: the non-i.i.d. case).
    """

    depth: int = 3
    width: int = 100
    activation: str = "sigmoid"
    norm: str = "none"
    init_scale: float = 0.1
    lr: float = 0.1
    batch_size: int = 60
    steps: int = 3000
    optimizer: str = "sgd"
    momentum: float = 0.9
    seed: int = 0
    eval_every: int = 50
    probe_unit: int = 0
    dtype: str = "float32"
    groups: int = 4
    r_max: float = 3.0
    d_max: float = 5.0
    bn_momentum: float = 0.1
    batch_order: str = "shuffled"


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    config : TrainConfig
    history : dict of str to ndarray
        Records stop at divergence. ``n_rec`` is the number of evaluations, ``n_done`` the
        number of training steps with a finite loss. ``batch_loss``, ``step_time`` and
        ``step`` are always finite; an evaluation or gradient-norm entry that is not finite
        (e.g. the exploding evaluation loss of a batch-norm network at step 0, before its
        running statistics describe anything) is stored as NaN -- drop NaN before plotting.

        ``"step"`` (n_rec,) int
            Steps at which the model was evaluated: 0 (initialization), every ``eval_every``
            steps, and the last step.
        ``"train_loss"`` (n_rec,)
            Mean cross-entropy on the whole training set, evaluation mode.
        ``"train_acc"``, ``"test_acc"`` (n_rec,)
            Accuracy on the training / test set, evaluation mode.
        ``"test_acc_batch_stats"`` (n_rec,), unless ``train(..., test_batch_stats=False)``
            Test accuracy in **training mode**: the test set (in its stored order) goes
            through the network in consecutive mini-batches of ``batch_size``
            (:func:`eval_batches`: a last batch of a single sample joins the previous one),
            each normalized by its own batch statistics (Batch Renorm: with r and d from the
            current running statistics); the running statistics are left as they were. For
            ``"none"``, ``"ln"`` and ``"gn"``, whose outputs do not depend on the batch, it
            equals ``test_acc``.
        ``"act_pct"`` (n_rec, depth, 3)
            15th, 50th and 85th percentiles over the test set (evaluation mode) of the probe
            unit's **input to the nonlinearity** in each hidden layer: the BatchNorm1d output
            (``gamma * x_hat + beta``, with running statistics) for ``norm="bn_before"``, the
            Linear output ``x W + b`` for ``"none"`` and ``"bn_after"``.
        ``"grad_norm"`` (n_rec, depth + 1)
            L2 (Frobenius) norm of the gradient of the mini-batch loss with respect to each
            Linear layer's weight (hidden layers, then the output layer), for the mini-batch
            of training step ``step[r]`` (computed before that step's update); at step 0 it is
            the gradient of the first mini-batch at initialization, i.e. the one the first
            update uses: :func:`initial_grad_norms` (as in
            :func:`bn_core.experiments.gradient_norms_at_init`).
        ``"batch_loss"`` (n_done,)
            Mini-batch loss (training mode) of every completed step.
        ``"step_time"`` (n_done,)
            Wall-clock seconds of every step: forward, backward and update (evaluation,
            recording and progress reporting excluded).
        ``"brn_r"``, ``"brn_d"`` (n_done, depth, 3), only for ``norm="brn"``
            Minimum, mean and maximum over the units of hidden layer ``l`` of the ``r``
            (``d``) that Batch Renormalization used at each completed step.
    diverged_at : int or None
        First step whose **training-mode mini-batch loss** was non-finite or above
        :data:`DIVERGENCE_LOSS` (step ``k``'s loss is computed after ``k - 1`` updates, before
        the ``k``-th); ``0`` if the initial network's first mini-batch loss already was (then
        every history array is empty); ``None`` if training completed. Every recorded step is
        smaller than ``diverged_at``. Evaluation losses never decide divergence.
    message : str
        A sentence for people, e.g. ``"diverged at step 412: the mini-batch loss became inf"``.
    model : MLP or None
        The trained network, with its forward caches cleared so that it pickles small (not
        part of equality; handy in notebooks).
    """

    config: TrainConfig
    history: dict[str, np.ndarray]
    diverged_at: int | None
    message: str
    model: MLP | None = field(default=None, repr=False, compare=False)


@functools.lru_cache(maxsize=4)
def digits(dtype: str = "float64", seed: int = 0) -> DigitsSplit:
    """The default data set: :func:`bn_core.data.load_digits_split` (read-only, cached).

    The arrays are marked read-only because they are shared between calls.
    """
    data = load_digits_split(seed=seed, dtype=_DTYPES[dtype])
    for arr in (data.X_train, data.X_test, data.y_train, data.y_test):
        arr.setflags(write=False)
    return data


def evaluation_steps(steps: int, every: int) -> list[int]:
    """The steps a run of ``steps`` steps is evaluated at: 0, every ``every``-th, and the last.

    ``[0, every, 2 every, ..., steps]`` (``steps`` appended when ``every`` does not divide it);
    the ``history["step"]`` of :func:`train` (and of :func:`bn_core.stacked.train_many` and
    :func:`bn_core.recurrent.train`) for a run that does not diverge.
    """
    out = list(range(0, int(steps) + 1, int(every)))
    if out[-1] != steps:
        out.append(int(steps))
    return out


def validate_config(
    config: TrainConfig, n_train: int | None = None, min_class_count: int | None = None
) -> None:
    """Raise ``ValueError`` with a sentence for people if ``config`` cannot train.

    Parameters
    ----------
    config : TrainConfig
    n_train : int, optional
        Number of training samples, to check ``batch_size <= n_train``.
    min_class_count : int, optional
        Training samples of the smallest class, to check that ``batch_order="by_class"``
        batches fit in every class.

    Notes
    -----
    A batch of one with a batch-statistics norm (``"bn_before"``, ``"bn_after"``,
    ``"brn"``) is refused with the layer's own message
    (:func:`bn_core.layers.one_sample_message`), the one its forward pass would raise.
    """
    c = config
    problems = []
    if c.activation not in ACTIVATIONS:
        problems.append(
            f"unknown activation {c.activation!r} (choose one of {sorted(ACTIVATIONS)})"
        )
    if c.norm not in NORMS:
        problems.append(f"unknown normalization {c.norm!r} (choose one of {list(NORMS)})")
    if c.optimizer not in OPTIMIZERS:
        problems.append(f"unknown optimizer {c.optimizer!r} (choose one of {sorted(OPTIMIZERS)})")
    if c.dtype not in _DTYPES:
        problems.append(f"unknown dtype {c.dtype!r} (choose one of {sorted(_DTYPES)})")
    for name in ("lr", "init_scale"):
        value = getattr(c, name)
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            problems.append(f"{name} must be a finite number > 0, got {value!r}")
    for name in ("depth", "width", "steps", "eval_every"):
        value = getattr(c, name)
        if not (isinstance(value, int | np.integer) and value >= 1):
            problems.append(f"{name} must be a whole number >= 1, got {value!r}")
    if not (isinstance(c.momentum, int | float) and 0 <= c.momentum < 1):
        problems.append(f"momentum must be in [0, 1), got {c.momentum!r}")
    if not (isinstance(c.batch_size, int | np.integer) and c.batch_size >= 1):
        problems.append(f"batch_size must be a whole number >= 1, got {c.batch_size!r}")
    else:
        if c.batch_size < 2 and c.norm in BATCH_STAT_NORMS:
            # the layer's own message, the one its forward pass raises
            problems.append(one_sample_message(_BATCH_STAT_LAYER[c.norm], 1))
        if n_train is not None and c.batch_size > n_train:
            problems.append(
                f"batch_size {c.batch_size} is larger than the {n_train} training samples"
            )
        if (c.batch_order == "by_class" and min_class_count is not None
                and c.batch_size > min_class_count):
            problems.append(
                f"class-sorted batches of {c.batch_size} do not fit in the smallest class "
                f"({min_class_count} training samples): that class would never be trained on"
            )
    if c.batch_order not in BATCH_ORDERS:
        problems.append(f"unknown batch_order {c.batch_order!r} (choose one of {list(BATCH_ORDERS)})")
    if c.norm == "gn" and isinstance(c.width, int | np.integer) and c.width >= 1:
        if not (isinstance(c.groups, int | np.integer) and c.groups >= 1 and c.width % c.groups == 0):
            divisors = [g for g in range(1, int(c.width) + 1) if c.width % g == 0]
            problems.append(
                f"GroupNorm's groups ({c.groups!r}) must divide the width ({c.width} units); "
                f"choose one of {divisors}"
            )
    if not (isinstance(c.r_max, int | float) and math.isfinite(c.r_max) and c.r_max >= 1):
        problems.append(f"r_max must be a finite number >= 1, got {c.r_max!r}")
    if not (isinstance(c.d_max, int | float) and math.isfinite(c.d_max) and c.d_max >= 0):
        problems.append(f"d_max must be a finite number >= 0, got {c.d_max!r}")
    if not (isinstance(c.bn_momentum, int | float) and 0 < c.bn_momentum <= 1):
        problems.append(f"bn_momentum must be in (0, 1], got {c.bn_momentum!r}")
    if isinstance(c.width, int) and not (
        isinstance(c.probe_unit, int | np.integer) and 0 <= c.probe_unit < max(c.width, 1)
    ):
        problems.append(f"probe_unit must be in [0, width={c.width}), got {c.probe_unit!r}")
    if problems:
        raise ValueError("This configuration cannot train: " + "; ".join(problems) + ".")


def make_model(config: TrainConfig, n_in: int = 64, n_out: int = 10) -> MLP:
    """The MLP that :func:`train` builds for ``config`` (same seed, same initial weights)."""
    return MLP(
        n_in,
        n_out,
        depth=config.depth,
        width=config.width,
        activation=config.activation,
        norm=config.norm,
        init_scale=config.init_scale,
        seed=config.seed,
        dtype=_DTYPES[config.dtype],
        groups=config.groups,
        r_max=config.r_max,
        d_max=config.d_max,
        bn_momentum=config.bn_momentum,
    )


def single_blas_thread():
    """Context manager limiting BLAS to one thread (a no-op if threadpoolctl is missing).

    The products in this network are small (tens of rows by a hundred columns): a second
    BLAS thread costs more in synchronization than it saves, and on a busy two-core server it
    can stall a product for milliseconds while it waits for a core.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _shuffle_rng(seed: int) -> np.random.Generator:
    # a stream independent of the weight initialization (which uses default_rng(seed))
    return np.random.default_rng([seed, 1])


def _batches(n_train: int, batch_size: int, rng: np.random.Generator):
    """Yield index arrays: shuffle without replacement each epoch, drop the incomplete tail."""
    per_epoch = n_train // batch_size
    while True:
        perm = rng.permutation(n_train)
        for b in range(per_epoch):
            yield perm[b * batch_size : (b + 1) * batch_size]


def _class_batches(labels: np.ndarray, batch_size: int, rng: np.random.Generator):
    """Yield class-pure index arrays, see :func:`batch_schedule`."""
    labels = np.asarray(labels)
    members = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    if not any(len(m) >= batch_size for m in members):
        raise ValueError(f"no class has {batch_size} training samples for one batch")
    while True:
        epoch = []
        for idx in members:
            perm = idx[rng.permutation(len(idx))]
            per_class = len(idx) // batch_size
            epoch.extend(perm[b * batch_size : (b + 1) * batch_size] for b in range(per_class))
        for b in rng.permutation(len(epoch)):
            yield epoch[b]


def batch_schedule(config: TrainConfig, labels: np.ndarray):
    """The mini-batches :func:`train` uses for ``config``, in order (an endless iterator).

    Parameters
    ----------
    config : TrainConfig
        Its ``batch_size``, ``batch_order`` and ``seed`` (the shuffling stream is
        ``np.random.default_rng([seed, 1])``, independent of the weight initialization).
    labels : ndarray of shape (n_train,)
        Training labels (only their count matters for ``"shuffled"``).

    Yields
    ------
    ndarray of int, shape (batch_size,)
        Row indices into the training set.

    Notes
    -----
    ``"shuffled"``: every epoch is a new random permutation of the training set cut into
    ``n_train // batch_size`` batches; the incomplete tail is dropped (a different random
    subset each epoch, so no sample is left out for good).

    ``"by_class"``: every epoch, each class's samples are permuted and cut into
    ``n_c // batch_size`` batches of that class only; the ``n_c mod batch_size`` leftover
    samples of each class sit out that epoch (again a different random subset each epoch,
    so over epochs every sample is used; a batch never mixes classes to absorb them). All
    batches of the epoch are then visited in a new random order. An epoch has
    ``sum_c n_c // batch_size`` steps (:func:`steps_per_epoch`).
    """
    rng = _shuffle_rng(config.seed)
    if config.batch_order == "by_class":
        return _class_batches(labels, config.batch_size, rng)
    return _batches(len(labels), config.batch_size, rng)


def steps_per_epoch(batch_size: int, batch_order: str = "shuffled",
                    data: DigitsSplit | None = None) -> int:
    """Training steps in one pass over the training set, as :func:`batch_schedule` cuts it.

    ``n_train // batch_size`` for ``"shuffled"``, ``sum_c n_c // batch_size`` over the
    classes for ``"by_class"``; ``data`` defaults to :func:`digits`.
    """
    if data is None:
        data = digits()
    y = np.asarray(data.y_train)
    if batch_order == "by_class":
        return int(sum(int(n) // batch_size for n in np.bincount(y) if n))
    if batch_order != "shuffled":
        raise ValueError(f"unknown batch_order {batch_order!r} (choose one of {list(BATCH_ORDERS)})")
    return int(len(y) // batch_size)


def eval_batches(n: int, batch_size: int) -> list[slice]:
    """Consecutive slices of ``batch_size`` rows covering ``range(n)``, for training-mode tests.

    The last slice holds the remainder; for ``batch_size >= 2`` a remainder of a single row
    (which batch statistics cannot normalize) joins the previous slice instead. With
    ``batch_size == 1`` (only per-sample norms train so) every slice is one row.
    """
    bounds = list(range(0, n, batch_size)) + [n]
    if batch_size > 1 and len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _min_class_count(labels: np.ndarray) -> int:
    counts = np.bincount(np.asarray(labels))
    return int(counts[counts > 0].min())


def _weight_grad_norms(linears, out: np.ndarray) -> None:
    for j, layer in enumerate(linears):
        g = layer.grads["weight"].ravel()
        out[j] = math.sqrt(float(g @ g))


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose argmax is ``y``; NaN if any logit is non-finite."""
    if not np.all(np.isfinite(logits)):
        return math.nan
    return float(np.mean(logits.argmax(axis=1) == y))


def initial_grad_norms(config: TrainConfig, data: DigitsSplit | None = None) -> np.ndarray:
    """Gradient norms of the first mini-batch :func:`train` uses, at initialization.

    The model is the one :func:`train` builds (:func:`make_model`, same seed, same initial
    weights), the batch the first one its shuffling draws, the forward pass in training mode;
    nothing is updated. :func:`train` stores this as ``history["grad_norm"][0]``.

    Parameters
    ----------
    config : TrainConfig
    data : DigitsSplit, optional
        Default :func:`digits`, converted to ``config.dtype``.

    Returns
    -------
    ndarray of shape (depth + 1,)
        ``||dL/dW_l||_2`` (Frobenius norm) for each Linear layer ``l``, hidden layers first,
        then the output layer, where ``L`` is the mean cross-entropy of the mini-batch.
        Non-finite if the initial network already overflows; never warns.

    Raises
    ------
    ValueError
        If the configuration cannot train (see :func:`validate_config`).
    """
    if data is None:
        data = digits(config.dtype if config.dtype in _DTYPES else "float64")
    n_train = int(data.X_train.shape[0])
    validate_config(config, n_train, _min_class_count(data.y_train))
    dtype = _DTYPES[config.dtype]
    idx = next(batch_schedule(config, np.asarray(data.y_train)))
    xb = np.asarray(data.X_train[idx], dtype=dtype)
    yb = np.asarray(data.y_train[idx], dtype=np.intp)
    n_out = int(max(data.y_train.max(), data.y_test.max())) + 1
    model = make_model(config, xb.shape[1], n_out)
    norms = np.zeros(config.depth + 1)
    with np.errstate(all="ignore"), single_blas_thread():
        _, grad = softmax_cross_entropy(model.forward(xb, training=True), yb)
        model.backward(grad, need_input_grad=False)
        _weight_grad_norms(model.linear_layers(), norms)
    return norms


def _mean_ce(logits: np.ndarray, y: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=1))
    return float(np.mean(lse - shifted[np.arange(len(y)), y]))


def train(
    config: TrainConfig,
    data: DigitsSplit | None = None,
    progress: Callable[[float], None] | None = None,
    *,
    test_batch_stats: bool = True,
) -> TrainResult:
    """Train an MLP as described by ``config`` and record its history.

    Parameters
    ----------
    config : TrainConfig
    data : DigitsSplit, optional
        Train/test arrays; default :func:`digits` (scaled digits, stratified split, seed 0),
        converted to ``config.dtype`` if needed.
    progress : callable, optional
        Called with the completed fraction in [0, 1], at most about 100 times, last with 1.0.
    test_batch_stats : bool
        Record ``history["test_acc_batch_stats"]`` (default). ``False`` leaves that key out
        and skips its extra pass over the test set at every evaluation (for a caller that
        never shows it: chapter 3's pool; about 5 % of the default BN run's time). Nothing
        else changes: the same updates, the same other records.

    Returns
    -------
    TrainResult
        See :class:`TrainResult` for the history keys, shapes and definitions.

    Raises
    ------
    ValueError
        Before any training, if the configuration cannot train (batch size 1 with batch
        norm, batch larger than the training set, unknown names, non-positive lr, steps or
        init scale, ...). Divergence never raises: it is reported in the result.

    Notes
    -----
    Divergence is decided from the training-mode mini-batch loss only: training stops at the
    first step whose loss is non-finite or above :data:`DIVERGENCE_LOSS`. The evaluations
    (evaluation mode, running statistics) are only recorded: at step 0 a batch-norm network
    is evaluated with running mean 0 and variance 1, i.e. not normalized, so its evaluation
    loss says nothing about whether it trains. Non-finite evaluation values become NaN.
    """
    if data is None:
        data = digits(config.dtype if config.dtype in _DTYPES else "float64")
    n_train = int(data.X_train.shape[0])
    validate_config(config, n_train, _min_class_count(data.y_train))
    dtype = _DTYPES[config.dtype]
    X_train = np.ascontiguousarray(data.X_train, dtype=dtype)
    X_test = np.ascontiguousarray(data.X_test, dtype=dtype)
    y_train = np.asarray(data.y_train, dtype=np.intp)
    y_test = np.asarray(data.y_test, dtype=np.intp)
    n_out = int(max(y_train.max(), y_test.max())) + 1

    model = make_model(config, X_train.shape[1], n_out)
    optimizer = OPTIMIZERS[config.optimizer](config.lr, momentum=config.momentum)
    param_layers = model.flat_layers()  # one vector update instead of one per array
    linears = model.linear_layers()
    batches = batch_schedule(config, y_train)

    steps, every, depth = config.steps, config.eval_every, config.depth
    record_steps = evaluation_steps(steps, every)
    n_rec_max = len(record_steps)
    rec_step = np.zeros(n_rec_max, dtype=np.int64)
    rec_train_loss = np.zeros(n_rec_max)
    rec_train_acc = np.zeros(n_rec_max)
    rec_test_acc = np.zeros(n_rec_max)
    rec_test_acc_bs = np.zeros(n_rec_max)
    rec_pct = np.zeros((n_rec_max, depth, 3))
    rec_grad = np.zeros((n_rec_max, depth + 1))
    batch_loss = np.zeros(steps)
    step_time = np.zeros(steps)
    renorm = model.batchnorm_layers() if config.norm == "brn" else []
    rec_r = np.zeros((steps, depth, 3)) if renorm else None
    rec_d = np.zeros((steps, depth, 3)) if renorm else None
    test_slices = eval_batches(len(X_test), config.batch_size)
    running_layers = model.batchnorm_layers()
    probe = config.probe_unit
    q = np.array(PERCENTILES)

    n_rec = 0  # records completed
    diverged_at: int | None = None
    reason = ""
    progress_every = max(1, steps // _MAX_PROGRESS_CALLS)
    perf = time.perf_counter

    # train and test rows in one array: one evaluation forward pass instead of two
    X_eval = np.concatenate([X_train, X_test])
    n_tr = len(X_train)

    def evaluate(step: int) -> None:
        """Record the evaluation metrics at ``step``; whatever is non-finite is stored as NaN.

        An evaluation never stops training: in evaluation mode batch norm uses its running
        statistics, which at step 0 are the initial mean 0 and variance 1, so a batch-norm
        network with large initial weights can have an exploding evaluation loss although
        it trains well (divergence is decided from the training-mode mini-batch loss).
        """
        nonlocal n_rec
        logits_all, act_inputs = model.forward_with_act_inputs(X_eval, training=False)
        logits, train_logits = logits_all[n_tr:], logits_all[:n_tr]
        rec_step[n_rec] = step
        rec_train_loss[n_rec] = _mean_ce(train_logits, y_train)
        # an argmax over non-finite logits is meaningless: no accuracy rather than a wrong one
        rec_train_acc[n_rec] = _accuracy(train_logits, y_train)
        rec_test_acc[n_rec] = _accuracy(logits, y_test)
        probes = np.stack([a[n_tr:, probe] for a in act_inputs], axis=1)  # (n_test, depth)
        rec_pct[n_rec] = np.percentile(probes, q, axis=0).T  # a NaN input gives NaN
        if test_batch_stats:
            rec_test_acc_bs[n_rec] = _accuracy(batch_stats_logits(), y_test)
        n_rec += 1

    def batch_stats_logits() -> np.ndarray:
        """Test logits in training mode, mini-batch by mini-batch; running stats untouched."""
        if not model.uses_batch_statistics:  # per-sample norms: the batching cannot matter
            return model.forward(X_test, training=True)
        saved = [(la._running.copy(), la.num_batches_tracked) for la in running_layers]
        parts = []
        for sl in test_slices:
            for la, (buf, count) in zip(running_layers, saved, strict=True):
                la._running[...] = buf  # every batch sees the model as it is now
                la.num_batches_tracked = count
            parts.append(model.forward(X_test[sl], training=True))
        for la, (buf, count) in zip(running_layers, saved, strict=True):
            la._running[...] = buf
            la.num_batches_tracked = count
        return np.concatenate(parts)

    done = 0
    with np.errstate(all="ignore"), single_blas_thread():
        evaluate(0)
        next_rec = 1  # index into record_steps of the next evaluation
        for step in range(1, steps + 1):
            idx = next(batches)
            t0 = perf()
            logits = model.forward(X_train[idx], training=True)
            loss, grad = softmax_cross_entropy(logits, y_train[idx])
            if not (math.isfinite(loss) and loss <= DIVERGENCE_LOSS):
                if step == 1:  # the initial network, before any update
                    diverged_at = 0
                    reason = (
                        f"the initial network's mini-batch loss is already {loss:.3g} "
                        f"(non-finite or above {DIVERGENCE_LOSS:g}; try a smaller init scale)"
                    )
                else:
                    diverged_at = step
                    reason = f"the mini-batch loss became {loss:.3g}"
                break
            model.backward(grad, need_input_grad=False)
            t1 = perf()
            if renorm:
                for j, la in enumerate(renorm):
                    rd = np.stack((la.last_r, la.last_d))
                    rec_r[step - 1, j] = rd[0].min(), rd[0].mean(), rd[0].max()
                    rec_d[step - 1, j] = rd[1].min(), rd[1].mean(), rd[1].max()
            if step == 1:  # record 0: the first mini-batch's gradient at initialization, before any update
                _weight_grad_norms(linears, rec_grad[0])
            if step == record_steps[next_rec]:
                _weight_grad_norms(linears, rec_grad[next_rec])
            t2 = perf()
            optimizer.step(param_layers)
            step_time[step - 1] = (t1 - t0) + (perf() - t2)
            batch_loss[step - 1] = loss
            done = step
            if step == record_steps[next_rec]:
                evaluate(step)
                next_rec += 1
            if progress is not None and step % progress_every == 0 and step < steps:
                progress(step / steps)
    model.clear_cache()  # the last evaluation's activations: megabytes nobody needs
    if progress is not None:
        progress(1.0)
    if diverged_at == 0:
        n_rec = 0  # nothing the initial network produced is worth a record
    for arr in (rec_train_loss, rec_train_acc, rec_test_acc, rec_test_acc_bs, rec_pct, rec_grad):
        arr[~np.isfinite(arr)] = np.nan  # inf -> NaN: one marker for "not a number"

    history = {
        "step": rec_step[:n_rec],
        "train_loss": rec_train_loss[:n_rec],
        "train_acc": rec_train_acc[:n_rec],
        "test_acc": rec_test_acc[:n_rec],
        "act_pct": rec_pct[:n_rec],
        "grad_norm": rec_grad[:n_rec],
        "batch_loss": batch_loss[:done],
        "step_time": step_time[:done],
    }
    if test_batch_stats:
        history["test_acc_batch_stats"] = rec_test_acc_bs[:n_rec]
    if renorm:
        history["brn_r"] = rec_r[:done]
        history["brn_d"] = rec_d[:done]
    if diverged_at is None:
        message = f"trained {steps} steps"
    else:
        message = f"diverged at step {diverged_at}: {reason}"
    return TrainResult(config, history, diverged_at, message, model)
