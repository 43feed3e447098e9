r"""Train several configurations at once, as stacked arrays: :func:`train_many`.

A sweep of tiny mini-batches (batch 2: thousands of steps of a few microseconds of arithmetic
each) is dominated by Python and NumPy call overhead, not by arithmetic. :func:`train_many`
trains ``K`` configurations in one loop: every array carries a leading axis of length ``K``
(activations ``(K, batch, features)``, weights ``(K, fan_in, fan_out)``), so each layer is one
batched matrix product for all ``K`` networks, and the call overhead is paid once per step
instead of ``K`` times. The networks stay independent: nothing is ever reduced over the
leading axis, and each configuration draws its own initial weights (:func:`bn_core.train.
make_model`) and its own mini-batches (:func:`bn_core.train.batch_schedule`).

Result ``k`` equals ``bn_core.train.train(configs[k])`` up to floating-point round-off (the
same initial weights, batches, equations and records; only the order of some sums differs),
which the tests check in float64.

Stacked configurations share the *shapes* of the computation -- ``depth``, ``width``,
``activation``, ``batch_size``, ``steps``, ``eval_every``, ``batch_order``, ``dtype`` -- and
may differ in everything else: ``norm`` (the normalization layers act on contiguous runs of
the leading axis, one run per kind), ``seed``, ``lr``, ``optimizer``, ``momentum``,
``init_scale``, ``groups``, ``r_max``, ``d_max``, ``bn_momentum``, ``probe_unit``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bn_core.data import DigitsSplit
from bn_core.network import NORM_PLACEMENT
from bn_core.train import (
    DIVERGENCE_LOSS,
    PERCENTILES,
    TrainConfig,
    TrainResult,
    batch_schedule,
    digits,
    eval_batches,
    make_model,
    single_blas_thread,
    validate_config,
)

__all__ = ["SHARED_FIELDS", "train_many"]

#: Fields every configuration of one :func:`train_many` call must share.
SHARED_FIELDS = ("depth", "width", "activation", "batch_size", "steps", "eval_every",
                 "batch_order", "dtype")

_DTYPES = {"float64": np.float64, "float32": np.float32}
_EPS = 1e-5  # the eps of every normalization layer of bn_core.network.MLP
_MAX_PROGRESS_CALLS = 100


# --------------------------------------------------------------------------------------
# activations on stacked arrays (same formulas as bn_core.layers)
# --------------------------------------------------------------------------------------


def _relu(a):
    return np.maximum(a, 0.0)


def _relu_back(g, y):
    return g * (y > 0)


def _sigmoid(a):
    y = a * 0.5
    np.tanh(y, out=y)
    y *= 0.5
    y += 0.5
    return y


def _sigmoid_back(g, y):
    return g * ((1.0 - y) * y)


def _tanh(a):
    return np.tanh(a)


def _tanh_back(g, y):
    return g * (1.0 - y * y)


_ACT = {"relu": (_relu, _relu_back), "sigmoid": (_sigmoid, _sigmoid_back),
        "tanh": (_tanh, _tanh_back)}


# --------------------------------------------------------------------------------------
# normalization of a run of configurations, arrays (k, n_batches, batch, C)
# --------------------------------------------------------------------------------------


#: How each norm is computed on a stack: "batch" (BatchNorm as Batch Renorm with r_max = 1,
#: d_max = 0, which is BatchNorm exactly) or "group" (LayerNorm as GroupNorm with one group),
#: so one run of the leading axis serves both norms of a family.
_FAMILY = {"bn_before": "batch", "bn_after": "batch", "brn": "batch", "ln": "group",
           "gn": "group"}


@dataclass
class _Run:
    """A contiguous run ``sl`` of the leading axis computed by one normalization family.

    ``family`` is "batch" (statistics over the batch axis, Batch Renorm's r and d from
    per-configuration bounds; BatchNorm has r_max = 1, d_max = 0) or "group" (statistics over
    each sample's group of units through a block-averaging matrix ``avg`` (k, C, C): all
    ones / C for LayerNorm, one block per group for GroupNorm).
    """

    family: str
    placement: str
    sl: slice
    momentum: np.ndarray | None = None  # (k, 1, 1, 1), batch family
    r_max: np.ndarray | None = None
    d_max: np.ndarray | None = None
    avg: np.ndarray | None = None  # (k, C, C), group family


def _group_averager(width: int, groups: int, dtype) -> np.ndarray:
    """(C, C) matrix whose product with a row gives every unit its group's mean."""
    k = width // groups
    avg = np.zeros((width, width), dtype=dtype)
    for g in range(groups):
        avg[g * k : (g + 1) * k, g * k : (g + 1) * k] = 1.0 / k
    return avg


def _group_forward(run: _Run, z, gamma, beta):
    """LayerNorm / GroupNorm of z (k, M, C); gamma, beta (k, 1, C); returns (y, cache)."""
    avg = run.avg
    xc = z - z @ avg
    var = (xc * xc) @ avg
    var += _EPS
    inv = np.sqrt(var, out=var)
    np.divide(1.0, inv, out=inv)
    xhat = xc * inv
    y = xhat * gamma
    y += beta
    return y, (xhat, inv, gamma)


def _group_backward(run: _Run, g, cache):
    xhat, inv, gamma = cache
    avg = run.avg
    dgamma = np.einsum("kmc,kmc->kc", g, xhat)
    dbeta = np.add.reduce(g, axis=1)
    dxh = g * gamma
    dx = dxh - dxh @ avg
    dx -= xhat * ((dxh * xhat) @ avg)
    dx *= inv
    return dx, dgamma, dbeta


def _batch_forward(run: _Run, z4, gamma, beta, rm, rv, update: bool):
    """Batch Renorm (BatchNorm when r_max = 1, d_max = 0) in training mode.

    z4 (k, nb, B, C): ``nb`` separate batches of ``B`` rows; gamma, beta, rm, rv
    (k, 1, 1, C); the running statistics are updated in place when ``update`` (nb == 1).
    """
    b = z4.shape[2]
    mean = np.add.reduce(z4, axis=2, keepdims=True)
    mean *= 1.0 / b
    xc = z4 - mean
    ssq = np.einsum("knbc,knbc->knc", xc, xc)[:, :, None, :]
    inv = ssq * (1.0 / b)
    inv += _EPS
    np.sqrt(inv, out=inv)
    np.divide(1.0, inv, out=inv)  # 1 / sigma_B
    sigma = rv + _EPS
    np.sqrt(sigma, out=sigma)  # running sigma before this batch
    r = inv * sigma
    np.divide(1.0, r, out=r)
    np.clip(r, 1.0 / run.r_max, run.r_max, out=r)
    d = mean - rm
    d /= sigma
    np.clip(d, -run.d_max, run.d_max, out=d)
    zbn = xc * inv
    xhat = zbn * r
    xhat += d
    if update:
        m = run.momentum
        rm *= 1.0 - m
        rm += m * mean
        rv *= 1.0 - m
        rv += (m / (b - 1)) * ssq
    y = xhat * gamma
    y += beta
    return y, (xhat, inv, gamma, r, d, zbn)


def _batch_eval(z4, gamma, beta, rm, rv):
    """Evaluation mode of BatchNorm / Batch Renorm: the running statistics."""
    y = z4 - rm
    y *= gamma / np.sqrt(rv + _EPS)
    y += beta
    return y


def _batch_backward(g4, cache):
    """Backward with r and d constant: BatchNorm's with gamma r; g4 (k, 1, B, C)."""
    xhat, inv, gamma, r, _, zbn = cache
    dgamma = np.einsum("knbc,knbc->kc", g4, xhat)
    dbeta = np.add.reduce(g4, axis=(1, 2))
    dxh = g4 * (gamma * r)
    b = g4.shape[2]
    dx = dxh - np.add.reduce(dxh, axis=2, keepdims=True) * (1.0 / b)
    dx -= zbn * (np.einsum("knbc,knbc->knc", dxh, zbn)[:, :, None, :] * (1.0 / b))
    dx *= inv
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------------------
# the stacked network
# --------------------------------------------------------------------------------------


class _Stack:
    """K MLPs of one shape, parameters as views into one (K, P) array."""

    def __init__(self, configs: list[TrainConfig], runs: list[_Run], n_in: int, n_out: int):
        c0 = configs[0]
        self.k, self.depth, self.width = len(configs), c0.depth, c0.width
        self.dtype = _DTYPES[c0.dtype]
        self.runs = runs
        self.act, self.act_back = _ACT[c0.activation]
        k, w = self.k, self.width
        shapes = []
        fan_in = n_in
        for layer in range(self.depth):
            shapes += [(f"W{layer}", (fan_in, w)), (f"b{layer}", (1, w))]
            shapes += [(f"{p}{layer}", (1, w)) for p in ("gpre", "bpre", "gpost", "bpost")]
            fan_in = w
        shapes += [("Wo", (w, n_out)), ("bo", (1, n_out))]
        total = sum(math.prod(s) for _, s in shapes)
        self.theta = np.zeros((k, total), dtype=self.dtype)
        self.grad = np.zeros((k, total), dtype=self.dtype)
        self.velocity = np.zeros((k, total), dtype=self.dtype)
        self.p, self.g = {}, {}
        offset = 0
        for name, shape in shapes:
            size = math.prod(shape)
            self.p[name] = self.theta[:, offset : offset + size].reshape(k, *shape)
            self.g[name] = self.grad[:, offset : offset + size].reshape(k, *shape)
            offset += size
        for layer in range(self.depth):
            self.p[f"gpre{layer}"][...] = 1.0
            self.p[f"gpost{layer}"][...] = 1.0
        # running statistics (k, 1, 1, C) per hidden layer
        self.rm = [np.zeros((k, 1, 1, w), dtype=self.dtype) for _ in range(self.depth)]
        self.rv = [np.ones((k, 1, 1, w), dtype=self.dtype) for _ in range(self.depth)]
        self.tracked = np.zeros(k, dtype=np.int64)
        self.frozen_running: dict[int, list] = {}  # running statistics at divergence
        self.models = []
        for i, cfg in enumerate(configs):  # the very initial weights train() would draw
            model = make_model(cfg, n_in, n_out)
            lin = model.linear_layers()
            for layer in range(self.depth):
                self.p[f"W{layer}"][i] = lin[layer].params["weight"]
                if lin[layer].has_bias:
                    self.p[f"b{layer}"][i, 0] = lin[layer].params["bias"]
            self.p["Wo"][i] = lin[-1].params["weight"]
            self.p["bo"][i, 0] = lin[-1].params["bias"]
            self.models.append(model)
        # bias-free: the batch family placed before the activation (bn_before, brn)
        self.bias_free = [run.sl for run in runs
                          if run.family == "batch" and run.placement == "before"]
        self.by_place = {w: [(ri, run) for ri, run in enumerate(runs) if run.placement == w]
                         for w in ("before", "after")}

    def _norm_params(self, run: _Run, layer: int, where: str):
        sl = run.sl
        pre = "pre" if where == "before" else "post"
        gamma = self.p[f"g{pre}{layer}"][sl][:, None]
        beta = self.p[f"b{pre}{layer}"][sl][:, None]
        return gamma, beta, self.rm[layer][sl], self.rv[layer][sl], pre

    def _apply_norms(self, h, layer, where, mode, batch, caches):
        """Normalize the runs placed ``where`` in hidden layer ``layer``; h (K, M, C)."""
        runs = self.by_place[where]
        if not runs:
            return h
        out = h.copy()
        pre = "pre" if where == "before" else "post"
        gammas, betas = self.p[f"g{pre}{layer}"], self.p[f"b{pre}{layer}"]
        for ri, run in runs:
            sl = run.sl
            z = h[sl]
            gamma, beta = gammas[sl], betas[sl]
            if run.family == "group":
                y, cache = _group_forward(run, z, gamma, beta)
                out[sl] = y
            else:
                kk, m, c = z.shape
                rm, rv = self.rm[layer][sl], self.rv[layer][sl]
                if mode == "eval":
                    y = _batch_eval(z[:, None], gamma[:, None], beta[:, None], rm, rv)
                    cache = None
                else:
                    z4 = z.reshape(kk, m // batch, batch, c)
                    y, cache = _batch_forward(run, z4, gamma[:, None], beta[:, None], rm, rv,
                                              update=mode == "train")
                out[sl] = y.reshape(kk, m, c)
            if caches is not None:
                caches[(layer, where, ri)] = cache
        return out

    def forward(self, x, mode: str, batch: int | None = None, keep: bool = False):
        """Logits (K, M, n_out) and the act inputs per layer (K, M, C).

        ``mode``: "train" (batch statistics, running update, caches for backward),
        "batch_stats" (batch statistics over consecutive groups of ``batch`` rows, no
        update) or "eval" (running statistics).
        """
        p = self.p
        caches = {} if keep else None
        self._inputs, self._acts = [], []
        act_inputs = []
        h = x
        for layer in range(self.depth):
            if keep:
                self._inputs.append(h)
            z = h @ p[f"W{layer}"]
            z += p[f"b{layer}"]
            a = self._apply_norms(z, layer, "before", mode, batch, caches)
            act_inputs.append(a)
            y = self.act(a)
            if keep:
                self._acts.append(y)
            h = self._apply_norms(y, layer, "after", mode, batch, caches)
        if keep:
            self._inputs.append(h)
            self._caches = caches
        logits = h @ p["Wo"]
        logits += p["bo"]
        return logits, act_inputs

    def backward(self, g) -> None:
        """Fill ``self.grad`` from dL/dlogits (K, B, n_out) of the last training forward."""
        p, gr = self.p, self.g
        h = self._inputs[-1]
        np.matmul(h.transpose(0, 2, 1), g, out=gr["Wo"])
        np.sum(g, axis=1, keepdims=True, out=gr["bo"])
        gh = g @ p["Wo"].transpose(0, 2, 1)
        for layer in range(self.depth - 1, -1, -1):
            gh = self._back_norms(gh, layer, "after")
            ga = self.act_back(gh, self._acts[layer])
            gz = self._back_norms(ga, layer, "before")
            h = self._inputs[layer]
            np.matmul(h.transpose(0, 2, 1), gz, out=gr[f"W{layer}"])
            db = gr[f"b{layer}"]
            np.sum(gz, axis=1, keepdims=True, out=db)
            for sl in self.bias_free:
                db[sl] = 0.0
            if layer:
                gh = gz @ p[f"W{layer}"].transpose(0, 2, 1)

    def _back_norms(self, g, layer, where):
        runs = self.by_place[where]
        if not runs:
            return g
        out = g.copy()
        pre = "pre" if where == "before" else "post"
        dgammas, dbetas = self.g[f"g{pre}{layer}"], self.g[f"b{pre}{layer}"]
        for ri, run in runs:
            sl = run.sl
            cache = self._caches[(layer, where, ri)]
            if run.family == "group":
                dx, dgamma, dbeta = _group_backward(run, g[sl], cache)
                out[sl] = dx
            else:
                kk, m, c = g[sl].shape
                dx, dgamma, dbeta = _batch_backward(g[sl][:, None], cache)
                out[sl] = dx.reshape(kk, m, c)
            dgammas[sl, 0] = dgamma
            dbetas[sl, 0] = dbeta
        return out

    def export(self, i: int):
        """Model ``i`` as a :class:`bn_core.network.MLP` with the stacked parameters."""
        model = self.models[i]
        lin = model.linear_layers()
        p = self.p
        for layer in range(self.depth):
            lin[layer].params["weight"][...] = p[f"W{layer}"][i]
            if lin[layer].has_bias:
                lin[layer].params["bias"][...] = p[f"b{layer}"][i, 0]
        lin[-1].params["weight"][...] = p["Wo"][i]
        lin[-1].params["bias"][...] = p["bo"][i, 0]
        norms = model.norm_layers()
        where = NORM_PLACEMENT.get(model.norm)
        pre = "pre" if where == "before" else "post"
        for layer, nl in enumerate(norms):
            nl.params["gamma"][...] = p[f"g{pre}{layer}"][i, 0]
            nl.params["beta"][...] = p[f"b{pre}{layer}"][i, 0]
            if hasattr(nl, "running_mean"):
                rm, rv = self.frozen_running.get(i, (self.rm, self.rv))
                nl.running_mean[...] = rm[layer][i, 0, 0]
                nl.running_var[...] = rv[layer][i, 0, 0]
                nl.num_batches_tracked = int(self.tracked[i])
        model.clear_cache()
        return model


def _check_shared(configs: Sequence[TrainConfig]) -> None:
    for f in SHARED_FIELDS:
        values = {getattr(c, f) for c in configs}
        if len(values) > 1:
            raise ValueError(
                f"train_many stacks configurations of one shape: they must share {f!r}, got "
                f"{sorted(map(str, values))}"
            )


def _softmax_ce(logits, labels):
    """Per-configuration mean cross-entropy (K,) and its gradient (K, B, n_out)."""
    k, b, _ = logits.shape
    rows = np.arange(b)
    shifted = logits - logits.max(axis=2, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=2, keepdims=True)
    picked = np.take_along_axis(shifted, labels[:, :, None], axis=2)[:, :, 0]
    loss = (np.log(sum_exp)[:, :, 0].sum(axis=1) - picked.sum(axis=1)) / b
    exp *= 1.0 / b / sum_exp
    kk = np.arange(k)[:, None]
    exp[kk, rows[None, :], labels] -= 1.0 / b
    return loss, exp


def _accuracies(logits, y):
    """Accuracy per configuration (K,); NaN where a logit is non-finite."""
    acc = np.mean(logits.argmax(axis=2) == y, axis=1)
    acc[~np.all(np.isfinite(logits), axis=(1, 2))] = np.nan
    return acc


def _mean_ce(logits, y):
    shifted = logits - logits.max(axis=2, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=2))
    picked = np.take_along_axis(shifted, y[None, :, None], axis=2)[:, :, 0]
    return np.mean(lse - picked, axis=1)


def train_many(
    configs: Sequence[TrainConfig],
    data: DigitsSplit | None = None,
    progress: Callable[[float], None] | None = None,
) -> list[TrainResult]:
    """Train every configuration of ``configs`` at once; result ``k`` equals ``train(configs[k])``.

    Parameters
    ----------
    configs : sequence of TrainConfig, length K >= 1
        Must share :data:`SHARED_FIELDS` (``depth``, ``width``, ``activation``,
        ``batch_size``, ``steps``, ``eval_every``, ``batch_order``, ``dtype``); may differ in
        ``norm``, ``seed``, ``lr``, ``optimizer``, ``momentum``, ``init_scale``, ``groups``,
        ``r_max``, ``d_max``, ``bn_momentum``, ``probe_unit``.
    data : DigitsSplit, optional
        Default :func:`bn_core.train.digits` for the configurations' dtype.
    progress : callable, optional
        Called with the completed fraction in [0, 1], at most about 100 times, last with 1.0.

    Returns
    -------
    list of TrainResult, length K, in the order of ``configs``
        Each with the same history keys, shapes and meanings as :func:`bn_core.train.train`
        (``"step"``, ``"train_loss"``, ``"train_acc"``, ``"test_acc"``,
        ``"test_acc_batch_stats"``, ``"act_pct"``, ``"grad_norm"``, ``"batch_loss"``,
        ``"step_time"``, and ``"brn_r"``/``"brn_d"`` for ``norm="brn"``), the same
        ``diverged_at`` and ``message``, and ``model``, the trained :class:`~bn_core.network.MLP`.
        Exception: ``"step_time"`` is the wall time of the stacked step divided by ``K`` (the
        configurations share one step). A configuration that diverges stops being updated
        (its records end there, as in ``train``) while the others go on.

    Raises
    ------
    ValueError
        Before any training: if a configuration cannot train (:func:`bn_core.train.
        validate_config`; the message names its index) or the configurations do not share
        :data:`SHARED_FIELDS`.
    """
    configs = list(configs)
    if not configs:
        raise ValueError("train_many needs at least one configuration")
    c0 = configs[0]
    if data is None:
        data = digits(c0.dtype if c0.dtype in _DTYPES else "float64")
    n_train = int(data.X_train.shape[0])
    counts = np.bincount(np.asarray(data.y_train))
    for i, cfg in enumerate(configs):
        try:
            validate_config(cfg, n_train, int(counts[counts > 0].min()))
        except ValueError as err:
            raise ValueError(f"configuration {i} ({cfg.norm}, seed {cfg.seed}): {err}") from None
    _check_shared(configs)

    # contiguous runs of one family and placement: sort (stably) by them
    def run_key(c):
        return (NORM_PLACEMENT.get(c.norm, ""), _FAMILY.get(c.norm, ""))

    order = sorted(range(len(configs)), key=lambda i: run_key(configs[i]))
    cfgs = [configs[i] for i in order]
    dtype = _DTYPES[c0.dtype]
    k_total = len(cfgs)
    runs = []
    start = 0
    while start < k_total:
        stop = start
        while stop < k_total and run_key(cfgs[stop]) == run_key(cfgs[start]):
            stop += 1
        sub = cfgs[start:stop]
        placement, family = run_key(sub[0])
        if family == "batch":

            def col(values):
                return np.array(values, dtype=dtype).reshape(-1, 1, 1, 1)

            renorm = [c.norm == "brn" for c in sub]  # BatchNorm: r_max = 1, d_max = 0
            runs.append(_Run(family, placement, slice(start, stop),
                             momentum=col([c.bn_momentum for c in sub]),
                             r_max=col([c.r_max if b else 1.0 for c, b in zip(sub, renorm, strict=True)]),
                             d_max=col([c.d_max if b else 0.0 for c, b in zip(sub, renorm, strict=True)])))
        elif family == "group":
            avg = np.stack([_group_averager(c.width, 1 if c.norm == "ln" else c.groups, dtype)
                            for c in sub])
            runs.append(_Run(family, placement, slice(start, stop), avg=avg))
        start = stop

    X_train = np.ascontiguousarray(data.X_train, dtype=dtype)
    X_test = np.ascontiguousarray(data.X_test, dtype=dtype)
    y_train = np.asarray(data.y_train, dtype=np.intp)
    y_test = np.asarray(data.y_test, dtype=np.intp)
    n_out = int(max(y_train.max(), y_test.max())) + 1
    net = _Stack(cfgs, runs, X_train.shape[1], n_out)

    steps, every, depth, batch = c0.steps, c0.eval_every, c0.depth, c0.batch_size
    schedules = [batch_schedule(c, y_train) for c in cfgs]
    lr = np.array([c.lr for c in cfgs], dtype=dtype)[:, None]
    mu = np.array([c.momentum if c.optimizer == "momentum" else 0.0 for c in cfgs],
                  dtype=dtype)[:, None]
    neg_lr = -lr
    record_steps = list(range(0, steps + 1, every))
    if record_steps[-1] != steps:
        record_steps.append(steps)
    n_rec_max = len(record_steps)
    K = k_total
    rec_train_loss = np.zeros((K, n_rec_max))
    rec_train_acc = np.zeros((K, n_rec_max))
    rec_test_acc = np.zeros((K, n_rec_max))
    rec_test_bs = np.zeros((K, n_rec_max))
    rec_pct = np.zeros((K, n_rec_max, depth, 3))
    rec_grad = np.zeros((K, n_rec_max, depth + 1))
    n_rec = np.zeros(K, dtype=np.int64)
    batch_loss = np.zeros((K, steps))
    step_time = np.zeros(steps)
    done = np.zeros(K, dtype=np.int64)
    active = np.ones(K, dtype=bool)
    diverged_at: list[int | None] = [None] * K
    reasons = [""] * K
    probes = np.array([c.probe_unit for c in cfgs])
    # Batch Renorm configurations: (index of their run, positions inside the run, indices)
    brn_where = []
    for ri, run in enumerate(runs):
        inside = [j for j in range(run.sl.start, run.sl.stop) if cfgs[j].norm == "brn"]
        if inside:
            brn_where.append((ri, np.array(inside) - run.sl.start, np.array(inside)))
    brn_index = [j for _, _, idx in brn_where for j in idx]
    rec_r = np.zeros((K, steps, depth, 3)) if brn_index else None
    rec_d = np.zeros((K, steps, depth, 3)) if brn_index else None
    X_eval = np.concatenate([X_train, X_test])
    n_tr = len(X_train)
    slices = eval_batches(len(X_test), batch)
    full = [s for s in slices if s.stop - s.start == batch]
    rest = [s for s in slices if s.stop - s.start != batch]
    n_full = len(full) * batch
    q = np.array(PERCENTILES)
    kk = np.arange(K)

    def grad_norms(out_index):
        g = net.g
        names = [f"W{layer}" for layer in range(depth)] + ["Wo"]
        return np.stack([np.sqrt(np.einsum("kij,kij->k", g[n], g[n])) for n in names], axis=1)

    def evaluate(step):
        logits_all, act_inputs = net.forward(X_eval, "eval")
        logits, train_logits = logits_all[:, n_tr:], logits_all[:, :n_tr]
        which = np.flatnonzero(active)
        r = n_rec[which]
        rec_train_loss[which, r] = _mean_ce(train_logits, y_train)[which]
        rec_train_acc[which, r] = _accuracies(train_logits, y_train)[which]
        rec_test_acc[which, r] = _accuracies(logits, y_test)[which]
        pr = np.stack([a[kk, n_tr:, probes] for a in act_inputs], axis=2)  # (K, n_test, depth)
        pct = np.percentile(pr, q, axis=1)  # (3, K, depth)
        rec_pct[which, r] = np.moveaxis(pct, 0, -1)[which]
        parts = []
        if full:
            parts.append(net.forward(X_test[:n_full], "batch_stats", batch)[0])
        for s in rest:
            parts.append(net.forward(X_test[s], "batch_stats", s.stop - s.start)[0])
        rec_test_bs[which, r] = _accuracies(np.concatenate(parts, axis=1), y_test)[which]
        n_rec[which] += 1

    progress_every = max(1, steps // _MAX_PROGRESS_CALLS)
    perf = time.perf_counter
    with np.errstate(all="ignore"), single_blas_thread():
        evaluate(0)
        next_rec = 1
        for step in range(1, steps + 1):
            idx = np.stack([next(s) for s in schedules])  # (K, B)
            t0 = perf()
            logits, _ = net.forward(X_train[idx], "train", batch, keep=True)
            net.tracked[active] += 1
            loss, grad = _softmax_ce(logits, y_train[idx])
            bad = active & ~((loss <= DIVERGENCE_LOSS) & np.isfinite(loss))
            for i in np.flatnonzero(bad):
                active[i] = False
                # as train() leaves it: this step's forward has updated the running statistics
                net.frozen_running[i] = ([a.copy() for a in net.rm], [a.copy() for a in net.rv])
                if step == 1:
                    diverged_at[i] = 0
                    reasons[i] = (
                        f"the initial network's mini-batch loss is already {loss[i]:.3g} "
                        f"(non-finite or above {DIVERGENCE_LOSS:g}; try a smaller init scale)"
                    )
                else:
                    diverged_at[i] = step
                    reasons[i] = f"the mini-batch loss became {loss[i]:.3g}"
            if not active.any():
                break
            net.backward(grad)
            t1 = perf()
            for ri, pos, idx in brn_where:
                for layer in range(depth):
                    _, _, _, r, d, _ = net._caches[(layer, "before", ri)]
                    for rec, val in ((rec_r, r), (rec_d, d)):
                        v = val[pos, 0, 0, :]
                        rec[idx, step - 1, layer, 0] = v.min(axis=1)
                        rec[idx, step - 1, layer, 1] = v.mean(axis=1)
                        rec[idx, step - 1, layer, 2] = v.max(axis=1)
            if step == 1:
                rec_grad[active, 0] = grad_norms(0)[active]
            if step == record_steps[next_rec]:
                rec_grad[active, n_rec[active]] = grad_norms(None)[active]
            t2 = perf()
            if not active.all():  # frozen: no update, no velocity (their values may be inf)
                net.grad[~active] = 0.0
                net.velocity[~active] = 0.0
            v = net.velocity
            v *= mu
            v += net.grad
            net.theta += neg_lr * v
            step_time[step - 1] = (t1 - t0) + (perf() - t2)
            batch_loss[active, step - 1] = loss[active]
            done[active] = step
            if step == record_steps[next_rec]:
                evaluate(step)
                next_rec += 1
            if progress is not None and step % progress_every == 0 and step < steps:
                progress(step / steps)
    if progress is not None:
        progress(1.0)

    results: list[TrainResult | None] = [None] * K
    for i, cfg in enumerate(cfgs):
        nr = 0 if diverged_at[i] == 0 else int(n_rec[i])
        nd = int(done[i])
        h = {
            "step": np.array(record_steps[:nr], dtype=np.int64),
            "train_loss": rec_train_loss[i, :nr],
            "train_acc": rec_train_acc[i, :nr],
            "test_acc": rec_test_acc[i, :nr],
            "test_acc_batch_stats": rec_test_bs[i, :nr],
            "act_pct": rec_pct[i, :nr],
            "grad_norm": rec_grad[i, :nr],
            "batch_loss": batch_loss[i, :nd],
            "step_time": step_time[:nd] / K,
        }
        for arr in (h["train_loss"], h["train_acc"], h["test_acc"], h["test_acc_batch_stats"],
                    h["act_pct"], h["grad_norm"]):
            arr[~np.isfinite(arr)] = np.nan
        if cfg.norm == "brn":
            h["brn_r"] = rec_r[i, :nd]
            h["brn_d"] = rec_d[i, :nd]
        if diverged_at[i] is None:
            message = f"trained {steps} steps"
        else:
            message = f"diverged at step {diverged_at[i]}: {reasons[i]}"
        results[order[i]] = TrainResult(cfg, h, diverged_at[i], message, net.export(i))
    return results  # type: ignore[return-value]
