"""Linear regression by gradient descent on four input variants: the valley and the bowl.

Loss, gradient and Hessian (mean squared error, design matrix ``D`` of shape (n, p)):

.. math::
    L(\\theta) = \\frac1n \\lVert D\\theta - y \\rVert^2
              = \\frac1n\\left(\\theta^\\top D^\\top D\\,\\theta - 2\\,\\theta^\\top D^\\top y + y^\\top y\\right),
    \\qquad \\nabla L = \\frac2n D^\\top (D\\theta - y), \\qquad H = \\frac2n D^\\top D.

The middle form shows that ``D^T D``, ``D^T y`` and ``y^T y`` (the *sufficient statistics*)
determine the loss everywhere: :func:`loss_grid` evaluates a whole grid of weights from them,
without touching the data again.

The four variants (``VARIANTS``) differ only in the design matrix ``D``:

``raw``
    ``D = [A, B]``, no intercept (the data has none: ``y = 2A + 3B + noise``), ``p = 2``.
    The (w1, w2) contour is exactly the loss the optimizer descends.
``minmax``
    ``D = [x', 1]`` with ``x' = (x - min)/(max - min)`` and an intercept trained by the same
    optimizer, ``p = 3``. Min-max does not center, so the intercept couples with the weights:
    a (w1, w2) contour is only the slice at ``b = b_LS`` and the drawn path is the projection
    of a 3-D path onto it (approximate).
``standardized``
    ``D = [z, 1]`` with z-scores from the data set's mean and biased std, ``p = 3``. The
    columns of ``z`` have mean 0, so ``D^T D`` is block diagonal: the w-gradient does not
    depend on ``b`` and the w-path is *exactly* gradient descent on the slice ``b = mean(y)``.
``batchnorm``
    ``D = [x_hat, 1]`` where each mini-batch is standardized by its *own* mean and biased
    variance (+ eps), as batch normalization does in training, ``p = 3``. The full-batch
    landscape equals the standardized one up to eps; with smaller batches every step descends
    its own batch's landscape. Running statistics (momentum 0.1, unbiased variance, PyTorch's
    convention) give the evaluation-mode model.

Every step of every variant is "a quadratic": a mini-batch ``S`` of size ``m`` defines
``G_S = D_S^T D_S / m`` and ``c_S = D_S^T y_S / m`` and the step's gradient is
``2 (G_S theta - c_S)``. :func:`batch_quadratics` builds these for the whole run at once, and
:func:`descend` runs any optimizer of ``OPTIMIZERS`` on a *stack* of parameter vectors,
which is how :func:`stability_map` runs a whole grid of learning rates in one loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bn_core.scaling import BN_EPS, batch_standardize, fit_minmax, fit_standard, to_original_units

VARIANTS = ("raw", "minmax", "standardized", "batchnorm")

#: A run is declared diverged at the first step whose full-batch loss is not finite or exceeds
#: ``EXPLODE_FACTOR`` times the initial loss ``L_0`` (the path is kept up to the step before).
EXPLODE_FACTOR = 1e6

#: Running-statistics momentum of batch normalization (PyTorch's default).
BN_MOMENTUM = 0.1

#: :func:`descend` checks every this many steps whether every run has turned into NaN.
NAN_CHECK_EVERY = 16


# --------------------------------------------------------------------------------------------
# Loss, gradient, Hessian, sufficient statistics, grids
# --------------------------------------------------------------------------------------------

def mse_loss(D: np.ndarray, y: np.ndarray, theta: np.ndarray) -> float:
    """Mean squared error ``mean((D theta - y)^2)``; ``D`` (n, p), ``y`` (n,), ``theta`` (p,)."""
    r = D @ theta - y
    return float(np.mean(r * r))


def mse_gradient(D: np.ndarray, y: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Gradient ``(2/n) D^T (D theta - y)``, shape (p,)."""
    return (2.0 / len(y)) * (D.T @ (D @ theta - y))


def mse_hessian(D: np.ndarray) -> np.ndarray:
    """Hessian ``(2/n) D^T D`` of the mean squared error, shape (p, p) (constant: the loss is quadratic).

    Entries are ``inf`` (without a numpy warning) when the data's squares overflow.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return (2.0 / D.shape[0]) * (D.T @ D)


@dataclass(frozen=True)
class SufficientStats:
    """``D^T D`` (p, p), ``D^T y`` (p,), ``y^T y`` and ``n``: all the loss needs.

    ``L(theta) = (theta^T DtD theta - 2 theta^T Dty + yty) / n``.
    """

    DtD: np.ndarray
    Dty: np.ndarray
    yty: float
    n: int

    @classmethod
    def from_data(cls, D: np.ndarray, y: np.ndarray) -> SufficientStats:
        D = np.asarray(D, dtype=float)
        y = np.asarray(y, dtype=float)
        with np.errstate(over="ignore", invalid="ignore"):  # inf when the data's squares overflow
            return cls(D.T @ D, D.T @ y, float(y @ y), len(y))


def loss_grid(stats: SufficientStats, w1: np.ndarray, w2: np.ndarray, fixed: np.ndarray | None = None) -> np.ndarray:
    """Closed-form loss over a (w1, w2) grid from the sufficient statistics (no data pass).

    With ``theta = (w1, w2, f)`` where ``f`` holds the remaining parameters held fixed
    (e.g. the intercept), the loss splits into a quadratic in (w1, w2)::

        n L = G00 w1^2 + 2 G01 w1 w2 + G11 w2^2 + 2 q0 w1 + 2 q1 w2 + r
        q = G[:2, 2:] f - Dty[:2],    r = f^T G[2:, 2:] f - 2 f^T Dty[2:] + yty

    Parameters
    ----------
    stats : SufficientStats
    w1 : ndarray of shape (n1,)
    w2 : ndarray of shape (n2,)
    fixed : ndarray of shape (p - 2,), optional
        Values of the parameters after the first two (required when p > 2).

    Returns
    -------
    ndarray of shape (n2, n1)
        ``Z[i, j] = L(w1[j], w2[i], fixed)`` (rows follow w2: Plotly's contour convention).
    """
    G, c = stats.DtD, stats.Dty
    f = np.zeros(0) if fixed is None else np.atleast_1d(np.asarray(fixed, dtype=float))
    if G.shape[0] != 2 + f.size:
        raise ValueError(f"expected {G.shape[0] - 2} fixed parameter(s), got {f.size}")
    q = G[:2, 2:] @ f - c[:2]
    r = f @ G[2:, 2:] @ f - 2.0 * f @ c[2:] + stats.yty
    a = np.asarray(w1, dtype=float)[None, :]
    b = np.asarray(w2, dtype=float)[:, None]
    Z = (G[0, 0] * a) * a + (2.0 * G[0, 1] * a) * b + (G[1, 1] * b) * b
    Z += 2.0 * q[0] * a + 2.0 * q[1] * b + r
    Z /= stats.n
    return Z


def loss_grid_direct(D: np.ndarray, y: np.ndarray, w1: np.ndarray, w2: np.ndarray,
                     fixed: np.ndarray | None = None, chunk: int = 2048) -> np.ndarray:
    """The same grid as :func:`loss_grid` by evaluating residuals on the data (the slow way).

    Used to test and benchmark the closed form; memory is bounded by ``chunk`` grid points.
    Returns an ndarray of shape (len(w2), len(w1)).
    """
    f = np.zeros(0) if fixed is None else np.atleast_1d(np.asarray(fixed, dtype=float))
    W1, W2 = np.meshgrid(np.asarray(w1, float), np.asarray(w2, float))
    thetas = np.column_stack([W1.ravel(), W2.ravel(), np.broadcast_to(f, (W1.size, f.size))])
    out = np.empty(W1.size)
    for s in range(0, W1.size, chunk):
        R = thetas[s:s + chunk] @ D.T - y  # (chunk, n)
        out[s:s + chunk] = np.mean(R * R, axis=1)
    return out.reshape(W1.shape)


def least_squares(D: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Minimizer of the MSE (minimum-norm when ``D`` is rank deficient), shape (p,)."""
    return np.linalg.lstsq(np.asarray(D, float), np.asarray(y, float), rcond=None)[0]


# --------------------------------------------------------------------------------------------
# The four variants
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    """One input variant of the regression: the design the optimizer sees, and the way back.

    Attributes
    ----------
    variant : str
        One of ``VARIANTS``.
    X : ndarray of shape (n, 2)
        Original features.
    y : ndarray of shape (n,)
    design : ndarray of shape (n, p)
        Full-batch design: ``[A, B]`` (raw, p = 2) or ``[x', 1]`` (p = 3). For ``batchnorm``
        it is the full batch normalized by its own statistics (+ eps).
    shift, scale : ndarray of shape (2,)
        ``x' = (x - shift) / scale`` (raw: 0 and 1), used to map weights back.
    constant : ndarray of bool, shape (2,)
        Features with zero variance (their scale was set to 1; the design column is 0).
    eps : float
        Batch-norm epsilon (only used by ``batchnorm``).
    """

    variant: str
    X: np.ndarray
    y: np.ndarray
    design: np.ndarray
    shift: np.ndarray
    scale: np.ndarray
    constant: np.ndarray
    eps: float = BN_EPS

    @property
    def has_bias(self) -> bool:
        return self.design.shape[1] == 3

    @property
    def param_names(self) -> tuple[str, ...]:
        return ("w1", "w2", "b") if self.has_bias else ("w1", "w2")

    @property
    def stats(self) -> SufficientStats:
        return SufficientStats.from_data(self.design, self.y)

    @property
    def hessian(self) -> np.ndarray:
        """``(2/n) D^T D`` of the full-batch loss, shape (p, p)."""
        return mse_hessian(self.design)


def make_problem(X: np.ndarray, y: np.ndarray, variant: str, eps: float = BN_EPS) -> Problem:
    """Build the design matrix of ``variant`` for features ``X`` (n, 2) and target ``y`` (n,)."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or X.shape[1] != 2 or X.shape[0] != y.shape[0] or X.shape[0] < 2:
        raise ValueError(f"expected X of shape (n, 2) and y of shape (n,) with n >= 2, got {X.shape}, {y.shape}")
    ones = np.ones((X.shape[0], 1))
    if variant == "raw":
        return Problem("raw", X, y, X.copy(), np.zeros(2), np.ones(2), fit_standard(X).constant)
    if variant in ("minmax", "standardized"):
        sc = fit_minmax(X) if variant == "minmax" else fit_standard(X)
        return Problem(variant, X, y, np.hstack([sc.transform(X), ones]), sc.shift, sc.scale, sc.constant)
    if variant == "batchnorm":
        x_hat, mean, var = batch_standardize(X, eps)
        constant = fit_standard(X).constant
        return Problem("batchnorm", X, y, np.hstack([x_hat, ones]), mean, np.sqrt(var + eps), constant, eps)
    raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")


def slice_value(problem: Problem) -> np.ndarray:
    """Parameters beyond (w1, w2) at which the (w1, w2) landscape is drawn: ``b = b_LS``.

    For ``standardized`` and ``batchnorm`` ``b_LS = mean(y)`` and the slice is exact for the
    w-path (centered features decouple ``b``); for ``minmax`` it is an approximation. Empty
    for ``raw``.
    """
    if not problem.has_bias:
        return np.zeros(0)
    return least_squares(problem.design, problem.y)[2:]


# --------------------------------------------------------------------------------------------
# Mini-batches
# --------------------------------------------------------------------------------------------

def steps_per_epoch(n: int, batch_size: int) -> int:
    """``ceil(n / batch_size)``: the number of parameter updates in one pass over the data."""
    return math.ceil(n / batch_size)


def batch_plan(n: int, batch_size: int, epochs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled mini-batches: a fresh permutation each epoch (sampling without replacement).

    Epoch ``e`` uses ``rng.permutation(n)`` and cuts it into consecutive batches of
    ``batch_size`` (the last one smaller when ``batch_size`` does not divide ``n``), the
    seed article's step 1. Every variant uses the same plan, so they see the same batches.

    Returns
    -------
    order : ndarray of int, shape (epochs * n,)
        Sample indices, epoch after epoch.
    offsets : ndarray of int, shape (K + 1,)
        Batch ``k`` is ``order[offsets[k]:offsets[k + 1]]``; ``K = epochs * ceil(n / batch_size)``.
    """
    if n < 1 or epochs < 1 or not 1 <= batch_size:
        raise ValueError(f"need n >= 1, epochs >= 1, batch_size >= 1; got {n}, {epochs}, {batch_size}")
    batch_size = min(batch_size, n)
    if batch_size == n:  # full batch: the order inside the batch does not change the gradient
        order = np.tile(np.arange(n), epochs)
    else:
        rng = np.random.default_rng(seed)
        order = np.concatenate([rng.permutation(n) for _ in range(epochs)])
    starts = (np.arange(epochs)[:, None] * n + np.arange(0, n, batch_size)[None, :]).ravel()
    return order, np.append(starts, epochs * n)


@dataclass(frozen=True)
class BatchQuadratics:
    """Per-step quadratic ``L_k(theta) = theta^T G_k theta - 2 c_k^T theta + const``.

    Attributes
    ----------
    G : ndarray of shape (K, p, p)
        ``D_S^T D_S / m`` of step k's batch.
    c : ndarray of shape (K, p)
        ``D_S^T y_S / m``.
    sizes : ndarray of int, shape (K,)
        Batch sizes ``m``.
    batch_mean, batch_var : ndarray of shape (K, 2) or None
        Batch-norm only: each batch's mean and biased variance.
    """

    G: np.ndarray
    c: np.ndarray
    sizes: np.ndarray
    batch_mean: np.ndarray | None = None
    batch_var: np.ndarray | None = None


def batch_quadratics(problem: Problem, order: np.ndarray, offsets: np.ndarray) -> BatchQuadratics:
    """Build every step's ``G_k`` and ``c_k`` for a batch plan, vectorized with ``np.add.reduceat``.

    For ``batchnorm`` each batch is first standardized by its own mean and biased variance
    (+ eps); a batch of one sample has variance 0, so its ``x_hat`` is exactly 0 and the step
    only moves the intercept.
    """
    starts = offsets[:-1]
    sizes = np.diff(offsets)
    n = len(problem.y)
    if len(sizes) > 1 and np.all(sizes == n):
        # Full-batch gradient descent: every step sees the whole data set (only its order is
        # reshuffled), so every step's quadratic is the first one's. Build it once and repeat
        # it as a read-only view instead of K identical sums.
        one = batch_quadratics(problem, order[:n], offsets[:2])
        K = len(sizes)

        def rep(a):
            return None if a is None else np.broadcast_to(a, (K,) + a.shape[1:])

        return BatchQuadratics(rep(one.G), rep(one.c), sizes, rep(one.batch_mean), rep(one.batch_var))
    y = problem.y[order]
    with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN, not warnings, when squares overflow
        bmean = bvar = None
        if problem.variant == "batchnorm":
            Xo = problem.X[order]
            bmean = np.add.reduceat(Xo, starts, axis=0) / sizes[:, None]
            centered = Xo - np.repeat(bmean, sizes, axis=0)
            bvar = np.add.reduceat(centered * centered, starts, axis=0) / sizes[:, None]
            x_hat = centered / np.sqrt(np.repeat(bvar, sizes, axis=0) + problem.eps)
            Do = np.hstack([x_hat, np.ones((len(order), 1))])
        else:
            Do = problem.design[order]
        outer = Do[:, :, None] * Do[:, None, :]
        G = np.add.reduceat(outer, starts, axis=0) / sizes[:, None, None]
        c = np.add.reduceat(Do * y[:, None], starts, axis=0) / sizes[:, None]
    return BatchQuadratics(G, c, sizes, bmean, bvar)


def running_statistics(bq: BatchQuadratics, momentum: float = BN_MOMENTUM) -> tuple[np.ndarray, np.ndarray]:
    """Batch norm's running mean and variance after all steps (PyTorch's convention).

    ``running = (1 - momentum) * running + momentum * batch_stat``, starting from mean 0 and
    variance 1; the variance fed in is the *unbiased* batch variance ``var * m / (m - 1)``.
    Batches of a single sample have no unbiased variance and are skipped.

    Returns
    -------
    running_mean, running_var : ndarray of shape (2,)
    """
    if bq.batch_mean is None:
        raise ValueError("running statistics exist only for the batchnorm variant")
    ok = bq.sizes > 1
    m = bq.sizes[ok][:, None].astype(float)
    means, vars_unbiased = bq.batch_mean[ok], bq.batch_var[ok] * m / (m - 1)
    k = int(ok.sum())
    with np.errstate(under="ignore"):
        weights = momentum * (1 - momentum) ** np.arange(k - 1, -1, -1)  # newest batch last
        decay = (1 - momentum) ** k
    return decay * 0.0 + weights @ means, decay * 1.0 + weights @ vars_unbiased


# --------------------------------------------------------------------------------------------
# Optimizers (a table, like scikit-learn's MLP) and the core loop
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hyper:
    """Optimizer hyper-parameters: heavy-ball ``momentum``; Adam's ``beta1``, ``beta2``, ``adam_eps``."""

    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8


def _gd_step(theta, grad, lr, state, t, hp):
    return theta - lr * grad


def _momentum_step(theta, grad, lr, state, t, hp):
    # PyTorch's SGD momentum: v <- mu v + g ; theta <- theta - lr v
    state["v"] = hp.momentum * state.get("v", 0.0) + grad
    return theta - lr * state["v"]


def _adam_step(theta, grad, lr, state, t, hp):
    # m <- b1 m + (1 - b1) g ; v <- b2 v + (1 - b2) g^2 ; theta <- theta - lr m_hat / (sqrt(v_hat) + eps)
    # with m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t). In place on preallocated buffers: the
    # stability map runs ~20 000 of these steps on small stacks, where allocation dominates.
    if "m" not in state:
        state["m"], state["v"], state["tmp"] = np.zeros_like(grad), np.zeros_like(grad), np.empty_like(grad)
    m, v, tmp = state["m"], state["v"], state["tmp"]
    m *= hp.beta1
    m += (1 - hp.beta1) * grad
    np.multiply(grad, grad, out=tmp)
    tmp *= 1 - hp.beta2
    v *= hp.beta2
    v += tmp
    np.sqrt(v, out=tmp)
    tmp *= 1.0 / math.sqrt(1 - hp.beta2 ** t)  # sqrt(v_hat)
    tmp += hp.adam_eps
    np.divide(m, tmp, out=tmp)
    tmp *= 1.0 / (1 - hp.beta1 ** t)           # m_hat / (sqrt(v_hat) + eps)
    return theta - lr * tmp


#: ``name -> step(theta, grad, lr, state, t, hyper) -> new theta`` (t counts from 1).
OPTIMIZERS: dict[str, Callable] = {"gd": _gd_step, "momentum": _momentum_step, "adam": _adam_step}
OPTIMIZER_LABELS = {"gd": "Gradient descent / SGD", "momentum": "Momentum (heavy ball)", "adam": "Adam"}


def descend(G: np.ndarray, c: np.ndarray, theta0: np.ndarray, lr: np.ndarray | float,
            optimizer: str = "gd", hyper: Hyper | None = None,
            progress: Callable[[float], None] | None = None, record_every: int = 1) -> np.ndarray:
    """Run ``K`` optimizer steps on per-step quadratics; return every iterate.

    Step ``k`` uses the gradient of its batch's loss, ``g = 2 (G_k theta - c_k)``, and the
    update rule ``OPTIMIZERS[optimizer]``. ``theta`` may be a *stack* of parameter vectors
    (any leading axes), so one loop runs a whole grid of learning rates or variants.

    Parameters
    ----------
    G : ndarray of shape (K, ..., p, p)
        Per-step ``D_S^T D_S / m`` (symmetric), broadcastable against ``theta``'s stack axes.
    c : ndarray of shape (K, ..., p)
        Per-step ``D_S^T y_S / m``.
    theta0 : ndarray of shape (..., p)
        Start.
    lr : float or ndarray broadcastable to ``theta0``
        Step size(s), e.g. shape (n_lr, 1) for a column of learning rates.
    optimizer : {"gd", "momentum", "adam"}
    hyper : Hyper, optional
    progress : callable, optional
        Called with the completed fraction now and then.
    record_every : int
        Keep every ``record_every``-th iterate (and always the last); 1 keeps them all.

    Returns
    -------
    ndarray of shape (K + 1, ..., p) (fewer rows when ``record_every > 1``)
        Iterates ``theta_0 .. theta_K``. Non-finite values are allowed (the caller detects
        divergence); numpy's overflow warnings are silenced.

    Notes
    -----
    A NaN stays NaN under every update rule (any arithmetic with NaN gives NaN, and the
    gradient ``theta @ G`` mixes every coordinate), so once *every* entry of the stack is NaN
    (every run has diverged) the loop stops and fills the remaining iterates with NaN: the
    same result as running on, without up to ``K`` wasted Python steps. Checked every
    ``NAN_CHECK_EVERY`` steps.
    """
    step = OPTIMIZERS[optimizer]
    hp = hyper or Hyper()
    K = G.shape[0]
    theta = np.array(theta0, dtype=float)
    r = max(int(record_every), 1)
    path = np.empty((K // r + 1 + (K % r != 0),) + theta.shape)
    path[0] = theta
    state: dict = {}
    every = max(K // 20, 1)
    G2, c2 = 2.0 * G, 2.0 * c
    with np.errstate(all="ignore"):
        for k in range(K):
            grad = theta @ G2[k] - c2[k]  # = 2 (G_k theta - c_k); G_k is symmetric
            theta = step(theta, grad, lr, state, k + 1, hp)
            if (k + 1) % r == 0:
                path[(k + 1) // r] = theta
            if progress is not None and (k + 1) % every == 0:
                progress((k + 1) / K)
            if (k + 1) % NAN_CHECK_EVERY == 0 and np.isnan(theta).all():
                path[(k + 1) // r + 1:] = np.nan  # every run diverged: NaN from here on, as the loop would give
                if progress is not None:
                    progress(1.0)
                return path
    path[-1] = theta
    return path


def suboptimality(problem: Problem, theta_star: np.ndarray, thetas: np.ndarray) -> np.ndarray:
    """``L(theta) - L*`` of the full-batch loss for iterates ``thetas`` of shape (..., p).

    ``e^T (D^T D / n) e`` with ``e = theta - theta*``: exact for a quadratic and free of the
    cancellation of ``L(theta) - L*`` computed as a difference; clipped at 0 against round-off.
    Call under ``np.errstate`` when the iterates may overflow.
    """
    D = problem.design
    e = thetas - theta_star
    return np.maximum(np.einsum("...i,ij,...j->...", e, D.T @ D / len(problem.y), e), 0.0)


def first_divergence(loss: np.ndarray, axis: int = 0) -> np.ndarray:
    """Index of the first step whose loss is non-finite or above ``EXPLODE_FACTOR * L_0``.

    Parameters
    ----------
    loss : ndarray of shape (K + 1, ...)
        Full-batch loss per step along ``axis`` 0.

    Returns
    -------
    ndarray of int, shape (...)
        The step index, or -1 where the run never diverged.
    """
    with np.errstate(all="ignore"):
        limit = EXPLODE_FACTOR * np.maximum(loss[0], np.finfo(float).tiny)
        bad = ~np.isfinite(loss) | (loss > limit)
    any_bad = bad.any(axis=axis)
    return np.where(any_bad, bad.argmax(axis=axis), -1)


# --------------------------------------------------------------------------------------------
# One run, with its history
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunResult:
    """One optimizer run on one variant.

    Attributes
    ----------
    variant, optimizer : str
    lr : float
    batch_size, epochs, n_steps : int
        ``n_steps = epochs * ceil(n / batch_size)`` planned updates.
    history : dict of str to ndarray
        ``"step"`` (k,), one array per parameter (``"w1"``, ``"w2"``, ``"b"``), ``"loss"``
        (full-batch loss of this variant's landscape) and ``"suboptimality"`` (``L - L*`` >= 0),
        all recorded up to (not including) the divergence step, and always at least step 0
        (``theta_0``; its loss is not finite when ``diverged_at == 0``, i.e. when the data's
        sums of squares overflow).
    diverged_at : int or None
        The first step whose loss was non-finite or exploded (see ``EXPLODE_FACTOR``).
    theta_star : ndarray of shape (p,)
        Least-squares optimum of the variant's full-batch loss; ``loss_star`` its loss.
    coef_original : tuple (ndarray of shape (2,), float)
        Final weights and intercept in original units (batchnorm: evaluation mode, i.e.
        running statistics).
    star_original : tuple (ndarray of shape (2,), float)
        ``theta_star`` in original units.
    running_mean, running_var : ndarray of shape (2,) or None
        Batch norm's running statistics at the end.
    eval_loss : float or None
        Batch norm's loss on the whole data set in evaluation mode.
    notes : tuple of str
        Anything the learner should know about this run (degenerate batches, ...).
    """

    variant: str
    optimizer: str
    lr: float
    batch_size: int
    epochs: int
    n_steps: int
    history: dict = field(repr=False)
    diverged_at: int | None
    theta_star: np.ndarray
    loss_star: float
    coef_original: tuple
    star_original: tuple
    running_mean: np.ndarray | None = None
    running_var: np.ndarray | None = None
    eval_loss: float | None = None
    notes: tuple = ()

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @property
    def final_theta(self) -> np.ndarray:
        return np.array([self.history[k][-1] for k in ("w1", "w2", "b") if k in self.history])


def run(problem: Problem, lr: float, batch_size: int, epochs: int, optimizer: str = "gd",
        seed: int = 0, hyper: Hyper | None = None, theta0: np.ndarray | None = None,
        progress: Callable[[float], None] | None = None) -> RunResult:
    """Train ``problem`` from ``theta0`` (default 0) and record the path and loss.

    ``K = epochs * ceil(n / batch_size)`` steps; mini-batches reshuffled every epoch from
    ``seed`` (same plan for every variant). The recorded loss is the full-batch loss of the
    variant's landscape, ``L(theta_k)``, computed as ``L* + e^T (D^T D / n) e`` with
    ``e = theta_k - theta*`` (exact for a quadratic and free of cancellation).

    Raises
    ------
    ValueError
        ``batchnorm`` with ``batch_size == 1``: a single sample has no batch variance, so batch
        normalization is undefined (the page explains this instead of running it).
    """
    n = len(problem.y)
    batch_size = int(min(max(batch_size, 1), n))
    if problem.variant == "batchnorm" and batch_size < 2:
        raise ValueError("batch normalization needs at least 2 samples per batch: one sample has no batch variance")
    order, offsets = batch_plan(n, batch_size, int(epochs), seed)
    bq = batch_quadratics(problem, order, offsets)
    p = problem.design.shape[1]
    start = np.zeros(p) if theta0 is None else np.asarray(theta0, dtype=float)
    path = descend(bq.G, bq.c, start, float(lr), optimizer, hyper, progress)

    theta_star = least_squares(problem.design, problem.y)
    with np.errstate(all="ignore"):  # data whose squares overflow give inf/NaN here, not warnings
        loss_star = mse_loss(problem.design, problem.y, theta_star)
        sub = suboptimality(problem, theta_star, path)
        loss = loss_star + sub
    k_div = int(first_divergence(loss))
    # Keep at least theta_0: when even L(theta_0) is not finite (k_div == 0) the history is the
    # one-point path at the start, so no consumer ever indexes an empty history.
    stop = len(loss) if k_div < 0 else max(k_div, 1)
    hist = {"step": np.arange(stop)}
    for i, name in enumerate(problem.param_names):
        hist[name] = path[:stop, i]
    hist["loss"], hist["suboptimality"] = loss[:stop], sub[:stop]
    final = path[stop - 1]

    notes: list[str] = []
    rmean = rvar = eval_loss = None
    shift, scale = problem.shift, problem.scale
    if problem.variant == "batchnorm":
        rmean, rvar = running_statistics(bq)
        shift, scale = rmean, np.sqrt(rvar + problem.eps)
        if np.any(bq.sizes == 1):
            notes.append(f"{int(np.sum(bq.sizes == 1))} batch(es) held a single sample (n mod batch size = 1): "
                         "their normalized inputs are exactly 0, so those steps only moved the intercept.")
    w, b = final[:2], (final[2] if problem.has_bias else 0.0)
    coef_orig = to_original_units(w, b, shift, scale)
    star_orig = to_original_units(theta_star[:2], theta_star[2] if problem.has_bias else 0.0,
                                  problem.shift, problem.scale)
    if problem.variant == "batchnorm":
        with np.errstate(all="ignore"):
            pred = problem.X @ coef_orig[0] + coef_orig[1]
            eval_loss = float(np.mean((pred - problem.y) ** 2))
    return RunResult(problem.variant, optimizer, float(lr), batch_size, int(epochs), len(offsets) - 1, hist,
                     None if k_div < 0 else k_div, theta_star, loss_star, coef_orig, star_orig,
                     rmean, rvar, eval_loss, tuple(notes))


def steps_to_tolerance(loss: np.ndarray, loss_star: float, tol: float) -> int | None:
    """First step k with relative suboptimality ``(L_k - L*) / (L_0 - L*) <= tol`` (None if never).

    Returns 0 when the start is already optimal.
    """
    loss = np.asarray(loss, dtype=float)
    gap0 = loss[0] - loss_star
    if gap0 <= 0:
        return 0
    hit = np.nonzero((loss - loss_star) <= tol * gap0)[0]
    return int(hit[0]) if hit.size else None


# --------------------------------------------------------------------------------------------
# Stability map: final loss over learning rate x batch size, vectorized over learning rates
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StabilityMap:
    """Final full-batch loss on a learning-rate x batch-size grid for several variants.

    Attributes
    ----------
    variants : tuple of str
    x_values : ndarray of shape (L,)
        The swept values: absolute learning rates (``x_kind="lr"``) or fractions of each
        variant's ``2 / lambda_max`` (``x_kind="fraction"``).
    x_kind : str
    lrs : ndarray of shape (V, L)
        The absolute learning rate of every cell.
    batch_sizes : ndarray of int, shape (B,)
    final_loss : ndarray of shape (V, B, L)
        NaN where the run diverged or is undefined.
    diverged : ndarray of bool, shape (V, B, L)
    undefined : ndarray of bool, shape (V, B, L)
        Batch norm with batch size 1.
    loss_star : ndarray of shape (V,)
    """

    variants: tuple
    x_values: np.ndarray
    x_kind: str
    lrs: np.ndarray
    batch_sizes: np.ndarray
    final_loss: np.ndarray
    diverged: np.ndarray
    undefined: np.ndarray
    loss_star: np.ndarray


def default_batch_sizes(n: int, count: int = 8) -> np.ndarray:
    """Up to ``count`` distinct, roughly log-spaced batch sizes from 1 to n (both included)."""
    return np.unique(np.round(np.geomspace(1, n, count)).astype(int))


def stability_map(X: np.ndarray, y: np.ndarray, variants: tuple, x_values: np.ndarray, x_kind: str,
                  batch_sizes: np.ndarray, epochs: int, optimizer: str = "gd", seed: int = 0,
                  hyper: Hyper | None = None, progress: Callable[[float], None] | None = None) -> StabilityMap:
    """Final loss after ``epochs`` epochs for every (variant, batch size, learning rate).

    For each batch size, all variants and all learning rates run in ONE loop of
    :func:`descend`: the parameters form a stack of shape (V, L, 3) (raw is padded with an
    intercept column of zeros, which its gradient never moves).

    A cell is "diverged" when its full-batch loss is non-finite or above
    ``EXPLODE_FACTOR * L_0`` at any of ~500 evenly spaced snapshots or at the end (a
    diverging run overflows to inf/NaN and stays there, so the end catches it even between
    snapshots); its final loss is then NaN. Batch norm with batch size 1 is ``undefined``.
    """
    x_values = np.asarray(x_values, dtype=float)
    problems = [make_problem(X, y, v) for v in variants]
    V, L, n = len(problems), len(x_values), len(y)
    hessians = [p.hessian for p in problems]
    # A Hessian that overflowed (data too large) has no eigenvalues: NaN steps, every cell diverged.
    lam_max = np.array([np.linalg.eigvalsh(H)[-1] if np.all(np.isfinite(H)) else np.nan for H in hessians])
    if x_kind == "fraction":
        lrs = x_values[None, :] * (2.0 / np.maximum(lam_max, np.finfo(float).tiny))[:, None]
    elif x_kind == "lr":
        lrs = np.broadcast_to(x_values, (V, L)).copy()
    else:
        raise ValueError(f"x_kind must be 'lr' or 'fraction', got {x_kind!r}")
    stars = [least_squares(p.design, p.y) for p in problems]
    with np.errstate(all="ignore"):  # inf, not a warning, when the data's squares overflow
        loss_star = np.array([mse_loss(p.design, p.y, s) for p, s in zip(problems, stars, strict=True)])
    batch_sizes = np.asarray(batch_sizes, dtype=int)
    final = np.full((V, len(batch_sizes), L), np.nan)
    diverged = np.zeros_like(final, dtype=bool)
    undefined = np.zeros_like(final, dtype=bool)
    total = sum(epochs * steps_per_epoch(n, int(b)) for b in batch_sizes)
    done = 0
    for j, bs in enumerate(batch_sizes):
        order, offsets = batch_plan(n, int(bs), epochs, seed)
        Gs, cs = [], []
        for p in problems:
            bq = batch_quadratics(p, order, offsets)
            pad = 3 - p.design.shape[1]
            Gs.append(np.pad(bq.G, ((0, 0), (0, pad), (0, pad))))
            cs.append(np.pad(bq.c, ((0, 0), (0, pad))))
        G = np.stack(Gs, axis=1)               # (K, V, 3, 3)
        c = np.stack(cs, axis=1)[:, :, None]   # (K, V, 1, 3)
        K = G.shape[0]

        def sub_progress(f, done=done, K=K):
            if progress is not None:
                progress((done + f * K) / total)

        # Keep ~500 snapshots: a diverging run overflows to inf/NaN and stays there, so the
        # final iterate and the snapshots catch it without storing every step.
        path = descend(G, c, np.zeros((V, L, 3)), lrs[:, :, None], optimizer, hyper, sub_progress,
                       record_every=max(K // 500, 1))
        done += K
        with np.errstate(all="ignore"):
            for v, p in enumerate(problems):
                loss = loss_star[v] + suboptimality(p, stars[v], path[:, v, :, :p.design.shape[1]])
                div = first_divergence(loss) >= 0
                diverged[v, j] = div
                final[v, j] = np.where(div, np.nan, loss[-1])
                if p.variant == "batchnorm" and bs < 2:
                    undefined[v, j] = True
                    final[v, j] = np.nan
                    diverged[v, j] = False
    if progress is not None:
        progress(1.0)
    return StabilityMap(tuple(variants), x_values, x_kind, lrs, batch_sizes, final, diverged, undefined, loss_star)


def concat_stability_maps(maps: list[StabilityMap]) -> StabilityMap:
    """Join maps computed for different batch sizes (same variants and step sizes) into one.

    Lets a caller compute the map one batch size at a time (e.g. to show progress between
    rows) and still hand one :class:`StabilityMap` to the figure.
    """
    first = maps[0]
    return StabilityMap(first.variants, first.x_values, first.x_kind, first.lrs,
                        np.concatenate([m.batch_sizes for m in maps]),
                        np.concatenate([m.final_loss for m in maps], axis=1),
                        np.concatenate([m.diverged for m in maps], axis=1),
                        np.concatenate([m.undefined for m in maps], axis=1), first.loss_star)
