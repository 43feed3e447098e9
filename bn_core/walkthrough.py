r"""Chapter 2 helpers: a mini-batch travelling through the core's :class:`BatchNorm1d`.

Everything here is pure NumPy and seeded; the normalization itself is always done by
:class:`bn_core.layers.BatchNorm1d` (this module never re-implements it), so what the page
shows is what the core computes.

The incoming mini-batch comes from one of two *sources* (a table, :data:`SOURCES`):

``"synthetic"``
    Activations with known population statistics. Feature ``j`` is
    ``x_j = shift + OFFSETS[j] + scale * SCALES[j] * z_j`` where ``z_j`` has mean 0 and
    variance 1 and the shape named in ``SHAPES[j]`` (normal, skewed, bimodal, uniform),
    so the population mean is ``shift + OFFSETS[j]`` and the population variance
    ``(scale * SCALES[j])**2`` exactly.
``"digits"``
    Real pre-activations ``u = X W + b`` of a seeded :class:`bn_core.layers.Linear`
    layer (64 inputs, :data:`MAX_FEATURES` units) on scikit-learn's digits training set,
    then ``x = shift + scale * u``. The population is the whole training set.

Batch norm in training mode (Ioffe & Szegedy 2015, Algorithm 1), per feature:

.. math::

    \mu_B = \frac{1}{m}\sum_i x_i, \quad
    \sigma_B^2 = \frac{1}{m}\sum_i (x_i - \mu_B)^2, \quad
    \hat x_i = \frac{x_i - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}}, \quad
    y_i = \gamma \hat x_i + \beta,

and the running statistics (PyTorch's convention: the *unbiased* variance is stored)

.. math::

    \text{rm} \leftarrow (1 - m)\,\text{rm} + m\,\mu_B, \quad
    \text{rv} \leftarrow (1 - m)\,\text{rv} + m\,\tfrac{n}{n-1}\sigma_B^2 .

In evaluation mode ``rm`` and ``rv`` replace ``mu_B`` and ``sigma_B^2``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from bn_core.data import load_digits_split
from bn_core.layers import BatchNorm1d, Linear

#: Most features the chapter shows at once.
MAX_FEATURES = 4

#: Additive offset of each synthetic feature's mean (on top of ``shift``).
OFFSETS = (0.0, 4.0, -3.0, 8.0)
#: Multiplicative factor of each synthetic feature's standard deviation (times ``scale``).
SCALES = (1.0, 0.5, 2.0, 1.5)
#: Shape of each synthetic feature's distribution (a key of :data:`SHAPES_TABLE`).
SHAPES = ("normal", "skewed", "bimodal", "uniform")

_SQRT3 = float(np.sqrt(3.0))

#: Standardized draws (mean 0, variance 1 exactly in the population): ``f(rng, n) -> (n,)``.
SHAPES_TABLE: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "normal": lambda rng, n: rng.standard_normal(n),
    # Exp(1) has mean 1 and variance 1.
    "skewed": lambda rng, n: rng.exponential(1.0, n) - 1.0,
    # +-0.8 with equal odds plus N(0, 0.6^2): variance 0.64 + 0.36 = 1.
    "bimodal": lambda rng, n: 0.8 * rng.choice(np.array([-1.0, 1.0]), n) + 0.6 * rng.standard_normal(n),
    # U(-sqrt 3, sqrt 3) has variance 1.
    "uniform": lambda rng, n: rng.uniform(-_SQRT3, _SQRT3, n),
}

#: Seed of the Linear layer that produces the real pre-activations (fixed: the "network").
DIGITS_LAYER_SEED = 0


def _check_features(n_features: int) -> int:
    n_features = int(n_features)
    if not 1 <= n_features <= MAX_FEATURES:
        raise ValueError(f"n_features must be in 1..{MAX_FEATURES}, got {n_features}")
    return n_features


def _check_batch(batch_size: int) -> int:
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return batch_size


# --------------------------------------------------------------------------- synthetic source


def synthetic_population(n_features: int, shift: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact population mean and variance of the synthetic features.

    Returns
    -------
    mean, var : ndarray of shape (n_features,)
        ``mean[j] = shift + OFFSETS[j]``, ``var[j] = (scale * SCALES[j])**2``.
    """
    n_features = _check_features(n_features)
    mean = float(shift) + np.asarray(OFFSETS[:n_features])
    var = (float(scale) * np.asarray(SCALES[:n_features])) ** 2
    return mean, var


def _synthetic_draw(rng: np.random.Generator, batch_size: int, n_features: int,
                    shift: float, scale: float) -> np.ndarray:
    z = np.column_stack([SHAPES_TABLE[SHAPES[j]](rng, batch_size) for j in range(n_features)])
    mean, var = synthetic_population(n_features, shift, scale)
    return mean + np.sqrt(var) * z


# --------------------------------------------------------------------------- digits source


@lru_cache(maxsize=1)
def _digits_preactivations_unit() -> np.ndarray:
    """Pre-activations ``X_train W + b`` of the seeded Linear(64, MAX_FEATURES); read-only."""
    split = load_digits_split(seed=0)
    layer = Linear(split.X_train.shape[1], MAX_FEATURES, seed=DIGITS_LAYER_SEED, dtype=np.float64)
    with np.errstate(all="ignore"):
        u = layer.forward(split.X_train, training=False)
    u = np.ascontiguousarray(u, dtype=np.float64)
    u.setflags(write=False)
    return u


def digits_preactivations(n_features: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Real pre-activations on the whole digits training set, shifted and scaled.

    Parameters
    ----------
    n_features : int
        Number of hidden units to keep (the first ``n_features`` of the seeded layer).
    shift, scale : float
        ``x = shift + scale * u``, applied to the real pre-activations ``u``.

    Returns
    -------
    ndarray of shape (n_train, n_features)
    """
    n_features = _check_features(n_features)
    return float(shift) + float(scale) * _digits_preactivations_unit()[:, :n_features]


def digits_population(n_features: int, shift: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population, ``ddof=0``) variance of :func:`digits_preactivations`."""
    x = digits_preactivations(n_features, shift, scale)
    return x.mean(axis=0), x.var(axis=0)


def _digits_draw(rng: np.random.Generator, batch_size: int, n_features: int,
                 shift: float, scale: float) -> np.ndarray:
    x = digits_preactivations(n_features, shift, scale)
    # Without replacement inside a batch (a real mini-batch), as long as the set is big enough.
    replace = batch_size > x.shape[0]
    rows = rng.choice(x.shape[0], size=batch_size, replace=replace)
    return x[rows]


@dataclass(frozen=True)
class Source:
    """A way to make mini-batches: ``draw(rng, batch_size, n_features, shift, scale)`` and
    ``population(n_features, shift, scale) -> (mean, var)``.

    ``iid_rows``: rows are independent draws, so one big draw can be cut into many batches
    (the digits are sampled without replacement *within* a batch, so they cannot).
    """

    label: str
    draw: Callable[[np.random.Generator, int, int, float, float], np.ndarray]
    population: Callable[[int, float, float], tuple[np.ndarray, np.ndarray]]
    iid_rows: bool = False


SOURCES: dict[str, Source] = {
    "synthetic": Source("synthetic activations", _synthetic_draw, synthetic_population, iid_rows=True),
    "digits": Source("real pre-activations (Linear layer on digits)", _digits_draw, digits_population),
}

#: Rows drawn at once when a stream of i.i.d. batches is cut from one big draw.
_STREAM_BLOCK_ROWS = 2**16


def make_batch(source: str, batch_size: int, n_features: int, shift: float = 0.0,
               scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """One incoming mini-batch.

    Parameters
    ----------
    source : {"synthetic", "digits"}
        Where the activations come from (see the module docstring).
    batch_size : int
        Number of samples ``m`` (>= 1).
    n_features : int
        Number of features (1..MAX_FEATURES).
    shift, scale : float
        Shift and scale of the incoming activations.
    seed : int
        Seed of the generator that draws the batch.

    Returns
    -------
    ndarray of shape (batch_size, n_features)
    """
    src = SOURCES[source]
    rng = np.random.default_rng(seed)
    return src.draw(rng, _check_batch(batch_size), _check_features(n_features), float(shift), float(scale))


def batch_stream(source: str, batch_size: int, n_features: int, shift: float, scale: float,
                 n_steps: int, seed: int) -> Iterator[np.ndarray]:
    """``n_steps`` fresh mini-batches of shape (batch_size, n_features), one generator."""
    src = SOURCES[source]
    rng = np.random.default_rng([int(seed), 1])  # a stream independent of make_batch(seed)
    batch_size, n_features = _check_batch(batch_size), _check_features(n_features)
    n_steps, shift, scale = int(n_steps), float(shift), float(scale)
    if not src.iid_rows:
        for _ in range(n_steps):
            yield src.draw(rng, batch_size, n_features, shift, scale)
        return
    per_block = max(1, _STREAM_BLOCK_ROWS // batch_size)  # batches per draw: far fewer calls
    done = 0
    while done < n_steps:
        k = min(per_block, n_steps - done)
        block = src.draw(rng, k * batch_size, n_features, shift, scale)
        for i in range(k):
            yield block[i * batch_size:(i + 1) * batch_size]
        done += k


def population_stats(source: str, n_features: int, shift: float = 0.0,
                     scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Population mean and variance (each of shape (n_features,)) of ``source``."""
    return SOURCES[source].population(_check_features(n_features), float(shift), float(scale))


# --------------------------------------------------------------------------- one pass through the layer


def make_layer(n_features: int, gamma: float = 1.0, beta: float = 0.0, eps: float = 1e-5,
               momentum: float = 0.1, running_mean: np.ndarray | None = None,
               running_var: np.ndarray | None = None) -> BatchNorm1d:
    """The core's BatchNorm1d with every gamma/beta set to the given scalars.

    ``running_mean``/``running_var`` (shape (n_features,)) replace the initial 0 and 1.
    """
    # float64 on purpose: the page prints these numbers to four digits and compares them.
    layer = BatchNorm1d(int(n_features), eps=float(eps), momentum=float(momentum), dtype=np.float64)
    layer.params["gamma"][...] = float(gamma)
    layer.params["beta"][...] = float(beta)
    if running_mean is not None:
        layer.running_mean[...] = running_mean
    if running_var is not None:
        layer.running_var[...] = running_var
    return layer


def pass_batch(x: np.ndarray, gamma: float = 1.0, beta: float = 0.0, eps: float = 1e-5,
               training: bool = True, running_mean: np.ndarray | None = None,
               running_var: np.ndarray | None = None) -> dict:
    r"""Send the batch ``x`` through the core's BatchNorm1d once and collect every stage.

    Parameters
    ----------
    x : ndarray of shape (batch_size, n_features)
    gamma, beta : float
        Scale and shift applied to every feature, :math:`y = \gamma \hat x + \beta`.
    eps : float
        Added to the variance before the square root.
    training : bool
        Training mode normalizes with the batch's own statistics; evaluation mode with
        ``running_mean``/``running_var`` (default: the fresh layer's 0 and 1).

    Returns
    -------
    dict
        ``x``, ``x_hat``, ``y`` (each (batch_size, n_features)); ``mean`` and ``var`` (the
        statistics used to normalize, (n_features,): batch mean and *biased* batch variance
        in training mode, running statistics in evaluation mode); ``var_unbiased`` (the
        batch's unbiased variance, NaN for one sample); ``error`` (None, or the core's
        ValueError message when the layer refuses the batch). On error the arrays other
        than ``x`` are None.
    """
    x = np.asarray(x, dtype=np.float64)
    n, f = x.shape
    out = {"x": x, "x_hat": None, "y": None, "mean": None, "var": None, "var_unbiased": None,
           "error": None, "training": bool(training)}
    layer = make_layer(f, gamma, beta, eps, running_mean=running_mean, running_var=running_var)
    with np.errstate(all="ignore"):
        try:
            y = layer.forward(x, training=bool(training))
        except ValueError as exc:  # the core refuses one sample in training mode, and says why
            out["error"] = str(exc)
            return out
        # The core records what it used: batch mean and *biased* batch variance in training
        # mode, copies of the running statistics in evaluation mode; x_hat in both.
        mean = np.array(layer.last_mean, dtype=np.float64)
        var = np.array(layer.last_var, dtype=np.float64)
        x_hat = np.array(layer.x_hat, dtype=np.float64)
        var_unbiased = x.var(axis=0, ddof=1) if n > 1 else np.full(f, np.nan)
    out.update(x_hat=np.asarray(x_hat, dtype=np.float64), y=np.asarray(y, dtype=np.float64),
               mean=mean, var=var, var_unbiased=var_unbiased)
    return out


# --------------------------------------------------------------------------- running statistics


def running_stats_from_batches(batches: Iterable[np.ndarray], n_features: int, momentum: float = 0.1,
                               eps: float = 1e-5, gamma: float = 1.0, beta: float = 0.0,
                               probe: np.ndarray | None = None) -> dict:
    r"""Feed ``batches`` to one core BatchNorm1d in training mode and record its running stats.

    Parameters
    ----------
    batches : iterable of ndarray of shape (batch_size >= 2, n_features)
    n_features : int
    momentum, eps, gamma, beta : float
        The layer's settings.
    probe : ndarray of shape (p, n_features), optional
        A fixed batch whose train-mode and eval-mode outputs are compared after every step.

    Returns
    -------
    dict of arrays, with ``k`` the number of batches
        ``step`` (k + 1,) 0..k; ``running_mean``, ``running_var`` (k + 1, n_features), row 0
        the initial 0 and 1. With a probe: ``y_train`` (p, n_features), the probe's output in
        training mode (its own batch statistics, independent of the step); ``eval_gap``
        (k + 1, n_features), the mean over the probe of ``|y_train - y_eval(step)|`` (needs
        p >= 2); ``y_eval_first`` and ``y_eval_last`` (p, n_features), the probe's
        evaluation-mode output after step 1 and after step k.

    Notes
    -----
    After ``k`` identical batches with mean ``mu`` and unbiased variance ``s2``:
    ``rm_k = (1 - (1 - m)**k) * mu`` and ``rv_k = (1 - m)**k + (1 - (1 - m)**k) * s2``.
    """
    layer = make_layer(n_features, gamma, beta, eps, momentum)
    means = [np.array(layer.running_mean, dtype=np.float64)]
    varis = [np.array(layer.running_var, dtype=np.float64)]
    y_train = None
    gaps: list[np.ndarray] = []
    evals: list[np.ndarray] = []  # the probe's eval output after step 0, 1 and the latest step

    def look_at_probe() -> None:
        y_eval = np.asarray(layer.forward(probe, training=False), dtype=np.float64)
        if y_train is not None:
            gaps.append(np.abs(y_eval - y_train).mean(axis=0))
        if len(evals) < 3:
            evals.append(y_eval)
        else:
            evals[2] = y_eval

    with np.errstate(all="ignore"):
        if probe is not None:
            probe = np.asarray(probe, dtype=np.float64)
            if probe.shape[0] >= 2:
                # Train-mode output of the probe from a separate layer, so the run's stats stay
                # untouched; it does not depend on the step (gamma and beta are not trained here).
                y_train = np.asarray(make_layer(n_features, gamma, beta, eps, momentum).forward(probe, training=True))
            look_at_probe()
        for batch in batches:
            layer.forward(np.asarray(batch, dtype=np.float64), training=True)
            means.append(np.array(layer.running_mean, dtype=np.float64))
            varis.append(np.array(layer.running_var, dtype=np.float64))
            if probe is not None:
                look_at_probe()
    hist = {"step": np.arange(len(means)), "running_mean": np.array(means), "running_var": np.array(varis)}
    if probe is not None:
        if y_train is not None:
            hist["y_train"] = y_train
            hist["eval_gap"] = np.array(gaps)
        hist["y_eval_first"] = evals[min(1, len(evals) - 1)]
        hist["y_eval_last"] = evals[-1]
    return hist


def running_stats_demo(source: str, batch_size: int, n_features: int, shift: float, scale: float,
                       momentum: float, n_steps: int, seed: int, eps: float = 1e-5,
                       gamma: float = 1.0, beta: float = 0.0, probe: np.ndarray | None = None) -> dict:
    """Train one BatchNorm1d on ``n_steps`` fresh batches from ``source`` (see
    :func:`running_stats_from_batches`) and add the population reference.

    Returns the history of :func:`running_stats_from_batches` plus ``pop_mean`` and
    ``pop_var`` (n_features,), the population's mean and variance that the running
    statistics estimate. ``batch_size`` must be at least 2 (training mode).
    """
    batches = batch_stream(source, batch_size, n_features, shift, scale, n_steps, seed)
    hist = running_stats_from_batches(batches, n_features, momentum, eps, gamma, beta, probe)
    hist["pop_mean"], hist["pop_var"] = population_stats(source, n_features, shift, scale)
    return hist


def steps_to_forget(momentum: float, fraction: float = 0.05) -> int:
    """Smallest ``k`` with ``(1 - momentum)**k <= fraction``: steps until the initial 0/1 weigh
    at most ``fraction`` in the running statistics (about ``3 / momentum`` for 5 %)."""
    m = float(momentum)
    if not 0.0 < m <= 1.0:
        raise ValueError(f"momentum must be in (0, 1], got {momentum}")
    if m == 1.0:
        return 1
    return int(np.ceil(np.log(fraction) / np.log1p(-m)))
