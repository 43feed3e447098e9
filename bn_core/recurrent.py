r"""A recurrent (Elman) classifier with batch norm per time step or layer norm, trained through time.

.. code-block:: python

    from bn_core.recurrent import RNNClassifier
    model = RNNClassifier(n_in, hidden, n_out, norm="bn", seed=0)   # norm: "none", "bn", "ln"
    logits = model.forward(x, training=True)    # x: (n_samples, T, n_in), any T >= 1
    dx = model.backward(grad_logits)            # backpropagation through time; fills model.grads
    model.params, model.grads                   # dicts name -> ndarray with the same keys

The network, for ``t = 1 .. T`` with :math:`h_0 = 0`:

.. math::

    a_t = x_t W_x + h_{t-1} W_h, \qquad h_t = \tanh\bigl(N_t(a_t) + b\bigr), \qquad
    \text{logits} = h_T W_o + b_o

``N_t`` is, by ``norm`` (the table :data:`NORMS`):

* ``"none"``: the identity;
* ``"bn"``: a separate :class:`~bn_core.layers.BatchNorm1d` for every time step ``t``, with its
  own batch statistics in training and its own running statistics for evaluation (recurrent
  batch normalization, Laurent et al. 2015; Cooijmans et al. 2016). The scale ``gamma`` and
  shift ``beta`` are shared by all steps (one pair of ``(hidden,)`` vectors, so the number of
  parameters does not grow with the length); only the statistics are per step;
* ``"ln"``: one :class:`~bn_core.layers.LayerNorm` shared by all steps: each sample is
  normalized over its own ``hidden`` units at every step (Ba, Kiros & Hinton 2016), the same
  computation in training and evaluation, at any batch size and any length.

**Evaluation beyond the trained length (batch norm).** A training forward of length ``T``
creates (on first use) one set of statistics for each step ``1 .. T``. In evaluation mode, a
step ``t`` beyond the longest trained length ``T_max`` has no statistics of its own. What it
uses is :attr:`RNNClassifier.eval_policy` (the table :data:`EVAL_POLICIES`); it never raises:

* ``"last"`` (the default): the running statistics of step ``T_max``, the last trained step
  (the policy of Cooijmans et al. 2016, who estimate statistics per step up to ``T_max`` and
  use those of ``T_max`` for all later steps);
* ``"fresh"``: the statistics of a batch norm that has never trained (mean 0, variance 1), i.e.
  what a new ``BatchNorm1d`` for that step would do: shown for contrast, not recommended;
* ``"batch"``: the evaluated batch's own statistics at those steps (as in training; the
  output of one sequence then depends on the others in its batch; a batch of one falls back to
  ``"last"``).

:attr:`RNNClassifier.stat_step` says, after each forward, which step's statistics every step
used (``-1`` for the evaluated batch's own, ``0`` for fresh ones). An untrained batch-norm
model evaluated before any training forward uses fresh statistics at every step.

**Variable lengths.** ``forward(x, lengths=...)`` runs sequences of different lengths padded to
a common ``T``: at step ``t`` only the sequences with ``length > t`` are *active*; the others
keep their state (``h_t = h_{t-1}``), so the logits come from each sequence's own last state.
Batch norm at step ``t`` averages over the active sequences only (:attr:`RNNClassifier.n_active`
records how many). A training step at which fewer than 2 sequences are active cannot have
batch statistics (one sample has no variance); such a step is normalized with its running
statistics instead (evaluation mode for that step only, recorded in
:attr:`RNNClassifier.fallback_steps`). A whole batch of one sample in training mode is refused
by the layer itself (:class:`~bn_core.layers.BatchNorm1d`'s message).

Backward is vectorized over the batch with one loop over time (BPTT); the products with
``W_x`` and the gradient of ``W_h`` are single matrix products over all steps.

The model does not silence floating-point warnings; callers that may overflow wrap their loop
in ``np.errstate`` (as :func:`train` does).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bn_core.layers import BatchNorm1d, LayerNorm, softmax_cross_entropy
from bn_core.network import OPTIMIZERS
from bn_core.train import DIVERGENCE_LOSS, digits, single_blas_thread

__all__ = [
    "EVAL_POLICIES",
    "NORMS",
    "TASKS",
    "RNNClassifier",
    "RNNConfig",
    "RNNResult",
    "SequenceTask",
    "length_task",
    "make_task",
    "batch_sweep",
    "sequential_digits",
    "train",
    "validate_config",
]

#: The normalizations ``N_t`` and what each one is.
NORMS = {
    "none": "no normalization (N_t is the identity)",
    "bn": "batch norm with separate statistics per time step (gamma, beta shared)",
    "ln": "one layer norm shared by all time steps (per sample, per step statistics)",
}

#: Evaluation policies of batch norm at steps beyond the longest trained length.
EVAL_POLICIES = {
    "last": "reuse the running statistics of the last trained step (Cooijmans et al. 2016)",
    "fresh": "fresh statistics (mean 0, variance 1), like a new BatchNorm1d for that step",
    "batch": "the evaluated batch's own statistics at those steps",
}

#: What each normalization layer caches in a forward for its backward (snapshotted per step,
#: because one layer object can serve several steps: LN always, BN beyond the trained length).
_CACHE = {
    BatchNorm1d: ("_xc", "inv_std", "_scale", "_trained_forward", "_x_hat", "_mean", "_var",
                  "_ssq", "_n"),
    LayerNorm: ("x_hat", "inv_std"),
}


class RNNClassifier:
    r"""Elman network ``h_t = tanh(N_t(x_t W_x + h_{t-1} W_h) + b)``, logits ``h_T W_o + b_o``.

    Parameters
    ----------
    n_in : int
        Input features per time step.
    hidden : int
        Hidden units ``H``.
    n_out : int
        Classes (logits per sequence).
    norm : {"none", "bn", "ln"}
        The normalization ``N_t`` (see :data:`NORMS` and the module notes).
    seed : int or numpy.random.Generator
        Source of the initial weights: every weight and bias is uniform on
        :math:`[-1/\sqrt H, 1/\sqrt H]`, PyTorch's ``nn.RNN`` / ``nn.Linear`` rule (the output
        layer uses ``1/sqrt(H)`` too, its fan-in). The weights do not depend on ``norm``: one
        seed gives the three variants identical ``W_x, W_h, b, W_o, b_o``.
    dtype : numpy dtype
        float64 (default) or float32; inputs should have the same dtype.

    Attributes
    ----------
    params : dict of str to ndarray
        ``"W_x"`` (n_in, H), ``"W_h"`` (H, H), ``"b"`` (H,), ``"W_o"`` (H, n_out),
        ``"b_o"`` (n_out,); with ``norm="bn"`` or ``"ln"`` also ``"gamma"`` (H,, ones) and
        ``"beta"`` (H,, zeros), shared by all time steps.
    grads : dict of str to ndarray
        Same keys and shapes, filled by :meth:`backward` (for a mean loss: the sum over steps).
    bn_steps : list of BatchNorm1d
        ``norm="bn"``: the per-step layers created so far (step ``t`` is ``bn_steps[t - 1]``);
        ``len(bn_steps)`` is the longest trained length ``T_max``.
    ln : LayerNorm or None
        ``norm="ln"``: the one layer shared by all steps.
    pre_norm : list of ndarray
        After a forward: ``a_t`` of shape (n_active_t, H) for each step (the input of ``N_t``).
    eval_policy : {"last", "fresh", "batch"}
        What evaluation uses at steps beyond ``T_max`` (see :data:`EVAL_POLICIES`); default
        ``"last"``. May be changed at any time.
    stat_step : ndarray of int, shape (T,)
        ``norm="bn"``, after a forward: the (1-based) step whose running statistics step ``t``
        used: ``t`` itself in training and up to ``T_max`` in evaluation; beyond ``T_max``
        ``T_max`` (policy ``"last"``), ``0`` (``"fresh"``) or ``-1`` (``"batch"``: the batch's
        own). For ``"none"``/``"ln"`` all zeros (no stored statistics).
    n_active : ndarray of int, shape (T,)
        Sequences still running at each step of the last forward (all ``n`` without lengths).
    fallback_steps : list of int
        1-based training steps of the last forward that had fewer than 2 active sequences and
        so used running statistics (only with ``lengths``).
    """

    def __init__(self, n_in: int, hidden: int, n_out: int, norm: str = "none", seed=0,
                 dtype=np.float64) -> None:
        if norm not in NORMS:
            raise ValueError(f"unknown normalization {norm!r} (choose one of {list(NORMS)})")
        for name, v in (("n_in", n_in), ("hidden", hidden), ("n_out", n_out)):
            if not (isinstance(v, int | np.integer) and v >= 1):
                raise ValueError(f"{name} must be a whole number >= 1, got {v!r}")
        self.n_in, self.hidden, self.n_out = int(n_in), int(hidden), int(n_out)
        self.norm = norm
        self.dtype = np.dtype(dtype)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        k = 1.0 / math.sqrt(self.hidden)
        H = self.hidden

        def u(*shape):
            return rng.uniform(-k, k, size=shape).astype(self.dtype)

        self.params: dict[str, np.ndarray] = {
            "W_x": u(self.n_in, H), "W_h": u(H, H), "b": u(H),
            "W_o": u(H, self.n_out), "b_o": u(self.n_out),
        }
        self.bn_steps: list[BatchNorm1d] = []
        self.ln: LayerNorm | None = None
        self._untrained_bn: BatchNorm1d | None = None
        self._scratch_bn: BatchNorm1d | None = None
        self.eval_policy = "last"
        if norm != "none":
            self.params["gamma"] = np.ones(H, dtype=self.dtype)
            self.params["beta"] = np.zeros(H, dtype=self.dtype)
        if norm == "ln":
            self.ln = self._share(LayerNorm(H, dtype=self.dtype))
        self.grads = {key: np.zeros_like(v) for key, v in self.params.items()}
        self.pre_norm: list[np.ndarray] = []
        self.stat_step = np.zeros(0, dtype=np.int64)
        self.n_active = np.zeros(0, dtype=np.int64)
        self.fallback_steps: list[int] = []
        self._cache: dict | None = None

    # ------------------------------------------------------------------ normalization layers

    def _share(self, layer):
        """Point ``layer``'s gamma and beta at the model's shared arrays (its grads stay its own)."""
        layer.params["gamma"] = self.params["gamma"]
        layer.params["beta"] = self.params["beta"]
        return layer

    def _new_bn(self) -> BatchNorm1d:
        return self._share(BatchNorm1d(self.hidden, dtype=self.dtype))

    @property
    def trained_length(self) -> int:
        """``T_max``: the number of steps that have batch-norm statistics (0 unless ``"bn"``)."""
        return len(self.bn_steps)

    def _bn_for_step(self, t: int, training: bool, n: int) -> tuple[BatchNorm1d, int, bool]:
        """The layer for 0-based step ``t``, the 1-based step whose statistics it holds, and
        whether to normalize in training mode (batch statistics), for a batch of ``n`` rows."""
        if training:
            while len(self.bn_steps) <= t:
                self.bn_steps.append(self._new_bn())
            return self.bn_steps[t], t + 1, n >= 2
        if t < len(self.bn_steps):
            return self.bn_steps[t], t + 1, False
        policy = self.eval_policy
        if policy not in EVAL_POLICIES:
            raise ValueError(f"unknown eval_policy {policy!r} (choose one of {list(EVAL_POLICIES)})")
        if policy == "batch" and n >= 2:
            if self._scratch_bn is None:  # its running statistics are never read
                self._scratch_bn = self._new_bn()
            return self._scratch_bn, -1, True
        if policy == "fresh" or not self.bn_steps:
            if self._untrained_bn is None:
                self._untrained_bn = self._new_bn()
            return self._untrained_bn, 0, False
        return self.bn_steps[-1], len(self.bn_steps), False  # "last": step T_max

    def running_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Running means and variances of the per-step batch norms, each (T_max, H) (copies).

        Empty (0, H) arrays unless ``norm="bn"`` and the model has trained.
        """
        if not self.bn_steps:
            empty = np.zeros((0, self.hidden))
            return empty, empty.copy()
        return (np.stack([bn.running_mean for bn in self.bn_steps]).astype(float),
                np.stack([bn.running_var for bn in self.bn_steps]).astype(float))

    # ------------------------------------------------------------------ forward / backward

    def forward(self, x: np.ndarray, training: bool = True, lengths: np.ndarray | None = None
                ) -> np.ndarray:
        """Run the network over ``x`` and return the logits.

        Parameters
        ----------
        x : ndarray of shape (n_samples, T, n_in)
            ``T >= 1`` steps; any ``T`` (also longer than in training, see the module notes).
        training : bool
            Training mode (batch norm uses and updates batch statistics) or evaluation mode.
        lengths : ndarray of int, shape (n_samples,), optional
            True length of each sequence (1..T); the rest of its row in ``x`` is padding and is
            never read. Default: every sequence has length ``T``.

        Returns
        -------
        ndarray of shape (n_samples, n_out)
            ``h_last W_o + b_o``, with ``h_last`` each sequence's state after its last step.

        Raises
        ------
        ValueError
            For a wrongly shaped ``x`` or ``lengths``; with ``norm="bn"`` in training mode on a
            batch of one sample (the layer's own message).
        """
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != self.n_in or x.shape[1] < 1 or x.shape[0] < 1:
            raise ValueError(f"x must have shape (n_samples >= 1, T >= 1, {self.n_in}), "
                             f"got {x.shape}")
        n, T, _ = x.shape
        if self.norm == "bn" and training and n < 2:
            # the layer's own refusal, before any state changes
            BatchNorm1d(self.hidden).forward(np.zeros((n, self.hidden)), training=True)
        active_rows: list[np.ndarray | None] = [None] * T
        n_active = np.full(T, n, dtype=np.int64)
        if lengths is not None:
            lengths = np.asarray(lengths)
            if (lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer)
                    or lengths.min() < 1 or lengths.max() > T):
                raise ValueError(f"lengths must be {n} whole numbers in [1, {T}]")
            for t in range(T):
                rows = np.flatnonzero(lengths > t)
                n_active[t] = rows.size
                if rows.size < n:
                    active_rows[t] = rows
            if n_active[-1] == 0:  # padding after every sequence: drop those steps
                T = int(lengths.max())
                active_rows, n_active, x = active_rows[:T], n_active[:T], x[:, :T]
        p = self.params
        H = self.hidden
        xw = (x.reshape(n * T, self.n_in) @ p["W_x"]).reshape(n, T, H)
        h = np.zeros((n, H), dtype=self.dtype)
        hs = [h]  # h_0 .. h_T (full batch)
        outs: list[np.ndarray] = []  # tanh outputs of the active rows per step
        snaps: list[tuple] = []  # (layer, cached attrs) per step
        pre: list[np.ndarray] = []
        stat_step = np.zeros(T, dtype=np.int64)
        fallback: list[int] = []
        W_h, b = p["W_h"], p["b"]
        for t in range(T):
            rows = active_rows[t]
            a = xw[:, t] + h @ W_h
            if rows is not None:
                a = a[rows]
            pre.append(a)
            if self.norm == "none":
                z = a
                snaps.append((None, None))
            else:
                if self.norm == "bn":
                    layer, stat_step[t], mode = self._bn_for_step(t, training, a.shape[0])
                    if training and not mode:
                        fallback.append(t + 1)
                    z = layer.forward(a, training=mode)
                else:
                    layer = self.ln
                    z = layer.forward(a, training=training)
                snaps.append((layer, tuple(layer.__dict__[k] for k in _CACHE[type(layer)])))
            out = np.tanh(z + b)
            outs.append(out)
            if rows is None:
                h = out
            else:
                h = h.copy()
                h[rows] = out
            hs.append(h)
        logits = h @ p["W_o"] + p["b_o"]
        self.pre_norm, self.stat_step, self.n_active = pre, stat_step, n_active
        self.fallback_steps = fallback
        self._cache = {"x": x, "hs": hs, "outs": outs, "snaps": snaps, "rows": active_rows}
        return logits

    def backward(self, grad_logits: np.ndarray) -> np.ndarray:
        """Backpropagation through time from ``dL/dlogits``; fills :attr:`grads`.

        Parameters
        ----------
        grad_logits : ndarray of shape (n_samples, n_out)

        Returns
        -------
        ndarray of shape (n_samples, T, n_in)
            ``dL/dx`` (zero at padded positions).

        Notes
        -----
        With ``dh_T = g W_o^T`` and, going back in time,
        ``dz_t = dh_t \\odot (1 - h_t^2)``, ``da_t = N_t'(dz_t)`` (the layer's backward),
        ``dh_{t-1} = da_t W_h^T`` (plus ``dh_t`` itself for sequences that were not active):

        ``dW_o = h_T^T g``, ``db_o = sum g``, ``db = sum_t sum dz_t``,
        ``dW_h = sum_t h_{t-1}^T da_t``, ``dW_x = sum_t x_t^T da_t``, ``dx_t = da_t W_x^T``,
        and ``dgamma``, ``dbeta`` the sums of the step layers' gradients.
        """
        c = self._cache
        if c is None:
            raise RuntimeError("RNNClassifier.backward called before forward")
        p, g = self.params, self.grads
        x, hs, outs, snaps, rows_t = c["x"], c["hs"], c["outs"], c["snaps"], c["rows"]
        n, T, _ = x.shape
        H = self.hidden
        np.matmul(hs[-1].T, grad_logits, out=g["W_o"])
        np.add.reduce(grad_logits, axis=0, out=g["b_o"])
        dh = grad_logits @ p["W_o"].T
        da_all = np.zeros((n, T, H), dtype=dh.dtype)
        db = np.zeros(H, dtype=dh.dtype)
        if self.norm != "none":
            dgamma = np.zeros(H, dtype=dh.dtype)
            dbeta = np.zeros(H, dtype=dh.dtype)
        W_hT = p["W_h"].T
        for t in range(T - 1, -1, -1):
            rows = rows_t[t]
            out = outs[t]
            dz = (dh if rows is None else dh[rows]) * (1.0 - out * out)
            db += dz.sum(axis=0)
            layer, cached = snaps[t]
            if layer is None:
                da = dz
            else:
                for k, v in zip(_CACHE[type(layer)], cached, strict=True):
                    layer.__dict__[k] = v
                da = layer.backward(dz)
                dgamma += layer.grads["gamma"]
                dbeta += layer.grads["beta"]
            if rows is None:
                da_all[:, t] = da
                dh = da @ W_hT
            else:
                da_all[rows, t] = da
                keep = np.ones(n, dtype=bool)
                keep[rows] = False
                dh_prev = da_all[:, t] @ W_hT
                dh_prev[keep] += dh[keep]
                dh = dh_prev
        h_prev = np.stack(hs[:-1], axis=1)  # (n, T, H): h_0 .. h_{T-1}
        flat_da = da_all.reshape(n * T, H)
        np.matmul(h_prev.reshape(n * T, H).T, flat_da, out=g["W_h"])
        np.matmul(x.reshape(n * T, self.n_in).T, flat_da, out=g["W_x"])
        g["b"][...] = db
        if self.norm != "none":
            g["gamma"][...] = dgamma
            g["beta"][...] = dbeta
        return (flat_da @ p["W_x"].T).reshape(n, T, self.n_in)

    def clear_cache(self) -> None:
        """Drop what the last forward kept for backward (keeps pickled copies small)."""
        self._cache = None
        self.pre_norm = []
        for layer in [*self.bn_steps, self.ln, self._untrained_bn, self._scratch_bn]:
            if layer is not None:
                layer.clear_cache()
                for k in _CACHE[type(layer)]:
                    if k.startswith("_") and k not in ("_trained_forward", "_n"):
                        layer.__dict__[k] = None

    def __repr__(self) -> str:
        return f"RNNClassifier({self.n_in}, {self.hidden}, {self.n_out}, norm={self.norm!r})"


# ------------------------------------------------------------------------------ tasks


@dataclass(frozen=True)
class SequenceTask:
    """A sequence classification data set.

    Attributes
    ----------
    X_train : ndarray of shape (n_train, T, n_in)
    y_train : ndarray of shape (n_train,), int
    X_test : ndarray of shape (n_test, T_test, n_in)
        The test sequences at the longest test length (shorter test lengths are prefixes, when
        the task allows, see :attr:`prefix_ok`).
    y_test : ndarray of shape (n_test,), int
    n_classes : int
    prefix_ok : bool
        True if a prefix of a test sequence is a valid sequence of that length with the same
        label (the length task), so accuracy against length is measured on prefixes.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    prefix_ok: bool = False


def sequential_digits(dtype=np.float64, seed: int = 0) -> SequenceTask:
    """scikit-learn's 8x8 digits read row by row: ``T = 8`` steps of 8 pixels (in [0, 1]).

    The same stratified split as chapters 3 and 4 (:func:`bn_core.train.digits`): 1347 training
    and 450 test images; ``X[:, t]`` is pixel row ``t`` of the image.
    """
    d = digits("float64", seed)
    return SequenceTask(
        X_train=np.ascontiguousarray(d.X_train.reshape(-1, 8, 8), dtype=dtype),
        y_train=np.asarray(d.y_train, dtype=np.intp),
        X_test=np.ascontiguousarray(d.X_test.reshape(-1, 8, 8), dtype=dtype),
        y_test=np.asarray(d.y_test, dtype=np.intp), n_classes=10)


#: The length task's number of channels (= classes) and its signal and noise levels.
LENGTH_CHANNELS = 4
LENGTH_SIGNAL = 1.0
LENGTH_NOISE = 1.0


def length_task(train_length: int, test_length: int, n_train: int = 1024, n_test: int = 512,
                seed: int = 0, dtype=np.float64) -> SequenceTask:
    r"""*Which channel is loudest?*: a classification defined for any length.

    Each sequence has a class ``c`` in ``0 .. 3``; at every step the 4 input channels are
    independent Gaussian noise, :math:`x_{t,j} = [j = c] + \varepsilon_{t,j}`,
    :math:`\varepsilon \sim \mathcal N(0, 1)`. The answer is ``c`` at every length (the rule
    never mentions the length), and a longer sequence holds more evidence: the Bayes-optimal
    rule (the channel with the largest sum) gets *more* accurate with length. A network that
    learned the rule rather than the length should not get worse on longer sequences.

    Parameters
    ----------
    train_length, test_length : int
        Length of the training and the (longest) test sequences (>= 1).
    n_train, n_test : int
        Number of sequences (classes balanced up to one).
    seed : int

    Returns
    -------
    SequenceTask
        With ``prefix_ok=True``: the first ``L`` steps of a test sequence are a test sequence of
        length ``L`` with the same class.
    """
    rng = np.random.default_rng([seed, 5])

    def draw(n, T):
        y = rng.permutation(np.arange(n) % LENGTH_CHANNELS).astype(np.intp)
        X = rng.normal(0.0, LENGTH_NOISE, size=(n, T, LENGTH_CHANNELS))
        X[np.arange(n), :, y] += LENGTH_SIGNAL
        return np.ascontiguousarray(X, dtype=dtype), y

    X_tr, y_tr = draw(n_train, train_length)
    X_te, y_te = draw(n_test, test_length)
    return SequenceTask(X_tr, y_tr, X_te, y_te, LENGTH_CHANNELS, prefix_ok=True)


def optimal_length_accuracy(length: int, n_mc: int = 20000, seed: int = 0) -> float:
    """Accuracy of the Bayes rule (largest channel sum) on :func:`length_task` at ``length``.

    Estimated by Monte Carlo on ``n_mc`` sequences of the sums directly: each channel's sum is
    ``N(L [j = c], L)``.
    """
    rng = np.random.default_rng([seed, 9])
    s = rng.normal(0.0, math.sqrt(length), size=(n_mc, LENGTH_CHANNELS))
    s[:, 0] += LENGTH_SIGNAL * length
    return float(np.mean(s.argmax(axis=1) == 0))


#: Task name -> what it is (the trainer's ``task`` field).
TASKS = {
    "digits": "sequential digits: 8x8 images read row by row (T = 8 steps of 8 pixels)",
    "length": "which channel is loudest: 4 noisy channels, any length, trained on one length",
}


def make_task(config: RNNConfig) -> SequenceTask:
    """The data set of ``config`` (its ``task``, lengths and ``data_seed``)."""
    dt = np.dtype(config.dtype)
    if config.task == "digits":
        return sequential_digits(dtype=dt)
    return length_task(config.train_length, config.max_test_length, seed=config.data_seed,
                       dtype=dt)


# ------------------------------------------------------------------------------ trainer


@dataclass(frozen=True)
class RNNConfig:
    """Everything that defines a recurrent training run (hashable: it can key a cache).

    Attributes
    ----------
    task : {"digits", "length"}
        See :data:`TASKS`.
    norm : {"none", "bn", "ln"}
    hidden : int
        Hidden units.
    batch_size : int
        Sequences per mini-batch (>= 2 with batch norm).
    steps : int
        Parameter updates.
    lr : float
        Learning rate of SGD with momentum 0.9 (PyTorch's form, :class:`bn_core.network.Momentum`).
    clip : float
        The whole gradient is rescaled to L2 norm ``clip`` when it is longer (the usual guard of
        recurrent networks against exploding gradients through time); ``0`` disables it.
    train_length : int
        Length of the training sequences of the length task (digits: always 8).
    max_test_length : int
        Longest test length of the length task (accuracy is measured at 1..max_test_length).
    min_length : int
        ``0`` (default): every training sequence has the full length. ``1 <= min_length <=
        train_length`` (length task only): each training sequence gets a length drawn uniformly
        from ``min_length .. train_length`` and a batch is padded and masked (the variable-length
        stretch).
    eval_policy : {"last", "fresh", "batch"}
        Batch norm's evaluation policy beyond the trained length (:data:`EVAL_POLICIES`).
    seed : int
        Initial weights and the shuffling.
    data_seed : int
        The length task's sequences.
    eval_every : int
        Steps between evaluations (plus step 0 and the last).
    dtype : {"float64", "float32"}
    """

    task: str = "digits"
    norm: str = "none"
    hidden: int = 64
    batch_size: int = 32
    steps: int = 400
    lr: float = 0.05
    clip: float = 1.0
    train_length: int = 8
    max_test_length: int = 24
    min_length: int = 0
    eval_policy: str = "last"
    seed: int = 0
    data_seed: int = 0
    eval_every: int = 20
    dtype: str = "float64"

    @property
    def length(self) -> int:
        """The training length ``T``: 8 for digits, ``train_length`` for the length task."""
        return 8 if self.task == "digits" else self.train_length


@dataclass
class RNNResult:
    """What :func:`train` returns.

    Attributes
    ----------
    config : RNNConfig
    history : dict of str to ndarray
        ``"step"`` (n_rec,) int: steps evaluated (0, every ``eval_every``, the last).
        ``"train_loss"`` (n_rec,): mean cross-entropy, evaluation mode, on the first
        :data:`TRAIN_EVAL_SIZE` training sequences (all of them when there are fewer; the
        splits are shuffled, so this is a fixed random subset: it halves the evaluation cost).
        ``"test_acc"`` (n_rec,): test accuracy at the training length, evaluation mode.
        ``"act_mean"``, ``"act_std"`` (n_rec, T): per-step statistics of ``a_t``, the input of
        ``N_t``, over the test set in evaluation mode: the mean over samples and units, and the
        standard deviation over samples averaged over units.
        ``"batch_loss"`` (n_done,): training-mode mini-batch loss of every completed step.
        ``"step_time"`` (n_done,): seconds of forward + backward + update per step.
        ``"length"`` (L,) int and ``"acc_by_length"`` (L,): test accuracy (evaluation mode) of
        the final model at each test length ``1 .. max_test_length`` (the length task; for
        digits the single length 8).
        ``"running_mean"``, ``"running_var"`` (T_max, H): the per-step batch-norm running
        statistics at the end (empty for ``"none"``/``"ln"``).
        ``"stat_step"`` (L,) int: for each test length's last step, the 1-based step whose
        batch-norm statistics evaluation used (0 without batch norm).
        ``"active_mean"``, ``"active_min"`` (T,): sequences per batch still running at each
        step, mean and minimum over the training steps (equal to ``batch_size`` without
        variable lengths).
        ``"fallback"`` (T,) int: training steps at which that time step had fewer than two
        active sequences and used running statistics.
        Non-finite evaluations are stored as NaN.
    diverged_at : int or None
        First step whose mini-batch loss was non-finite or above
        :data:`bn_core.train.DIVERGENCE_LOSS` (0: already the initial network), else None.
    message : str
    model : RNNClassifier or None
        The trained network (caches cleared); not part of equality.
    """

    config: RNNConfig
    history: dict[str, np.ndarray]
    diverged_at: int | None
    message: str
    model: RNNClassifier | None = field(default=None, repr=False, compare=False)


_DTYPES = ("float64", "float32")
#: Training sequences whose loss each evaluation records (a fixed subset, see RNNResult).
TRAIN_EVAL_SIZE = 512
#: Limits of the trainer (the page's sliders stay inside them).
MAX_LENGTH = 200
MAX_HIDDEN = 512


def validate_config(config: RNNConfig, n_train: int | None = None) -> None:
    """Raise ``ValueError`` with a sentence for people if ``config`` cannot train."""
    c = config
    problems = []
    if c.task not in TASKS:
        problems.append(f"unknown task {c.task!r} (choose one of {list(TASKS)})")
    if c.norm not in NORMS:
        problems.append(f"unknown normalization {c.norm!r} (choose one of {list(NORMS)})")
    if c.eval_policy not in EVAL_POLICIES:
        problems.append(f"unknown eval_policy {c.eval_policy!r} (choose one of "
                        f"{list(EVAL_POLICIES)})")
    if c.dtype not in _DTYPES:
        problems.append(f"unknown dtype {c.dtype!r} (choose one of {list(_DTYPES)})")
    if not (isinstance(c.lr, int | float) and math.isfinite(c.lr) and c.lr > 0):
        problems.append(f"lr must be a finite number > 0, got {c.lr!r}")
    if not (isinstance(c.clip, int | float) and math.isfinite(c.clip) and c.clip >= 0):
        problems.append(f"clip must be a finite number >= 0, got {c.clip!r}")
    for name, hi in (("hidden", MAX_HIDDEN), ("steps", None), ("eval_every", None),
                     ("train_length", MAX_LENGTH), ("max_test_length", 3 * MAX_LENGTH)):
        v = getattr(c, name)
        if not (isinstance(v, int | np.integer) and v >= 1 and (hi is None or v <= hi)):
            problems.append(f"{name} must be a whole number in [1, {hi or 'inf'}], got {v!r}")
    if not (isinstance(c.min_length, int | np.integer) and 0 <= c.min_length):
        problems.append(f"min_length must be a whole number >= 0, got {c.min_length!r}")
    elif c.min_length and (c.task != "length" or c.min_length > c.train_length):
        problems.append("variable lengths (min_length >= 1) need the length task and "
                        f"min_length <= train_length, got {c.min_length} and {c.train_length}")
    if not (isinstance(c.batch_size, int | np.integer) and c.batch_size >= 1):
        problems.append(f"batch_size must be a whole number >= 1, got {c.batch_size!r}")
    else:
        if c.batch_size < 2 and c.norm == "bn":
            try:  # the layer's own message
                BatchNorm1d(1).forward(np.zeros((int(c.batch_size), 1)), training=True)
            except ValueError as exc:
                problems.append(str(exc).rstrip("."))
        if n_train is not None and c.batch_size > n_train:
            problems.append(f"batch_size {c.batch_size} is larger than the {n_train} training "
                            "sequences")
    if problems:
        raise ValueError("This configuration cannot train: " + "; ".join(problems) + ".")


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    if not np.all(np.isfinite(logits)):
        return math.nan
    return float(np.mean(logits.argmax(axis=1) == y))


def _mean_ce(logits: np.ndarray, y: np.ndarray) -> float:
    if not np.all(np.isfinite(logits)):
        return math.nan
    shifted = logits - logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=1))
    return float(np.mean(lse - shifted[np.arange(len(y)), y]))


def _batches(n: int, batch_size: int, rng: np.random.Generator):
    """Index arrays: shuffle without replacement each epoch, drop the incomplete tail."""
    per_epoch = n // batch_size
    while True:
        perm = rng.permutation(n)
        for b in range(per_epoch):
            yield perm[b * batch_size:(b + 1) * batch_size]


class _Flat:
    """The model's parameters and gradients as one vector each (for one-call updates)."""

    def __init__(self, model: RNNClassifier) -> None:
        total = sum(p.size for p in model.params.values())
        self.params = {"all": np.empty(total, dtype=model.dtype)}
        self.grads = {"all": np.zeros(total, dtype=model.dtype)}
        off = 0
        for k in list(model.params):
            p = model.params[k]
            view = self.params["all"][off:off + p.size].reshape(p.shape)
            view[...] = p
            model.params[k] = view
            model.grads[k] = self.grads["all"][off:off + p.size].reshape(p.shape)
            off += p.size
        for layer in [*model.bn_steps, model.ln, model._untrained_bn, model._scratch_bn]:
            if layer is not None:
                model._share(layer)


def make_model(config: RNNConfig, n_in: int, n_out: int) -> RNNClassifier:
    """The network :func:`train` builds for ``config`` (same seed, same initial weights)."""
    return RNNClassifier(n_in, config.hidden, n_out, norm=config.norm, seed=config.seed,
                         dtype=np.dtype(config.dtype))


def train(config: RNNConfig, task: SequenceTask | None = None,
          progress: Callable[[float], None] | None = None) -> RNNResult:
    """Train an :class:`RNNClassifier` as ``config`` says and record its history.

    Mini-batch SGD with momentum 0.9 and gradient-norm clipping; evaluation (the whole train
    and test sets, evaluation mode) every ``eval_every`` steps. Divergence never raises: the
    first step whose training-mode mini-batch loss is non-finite or above
    :data:`bn_core.train.DIVERGENCE_LOSS` stops training and the message says which step
    (evaluations never decide it, as in :func:`bn_core.train.train`). No floating-point
    warning escapes.

    Parameters
    ----------
    config : RNNConfig
    task : SequenceTask, optional
        Default :func:`make_task` (``config``'s task).
    progress : callable, optional
        Called with the completed fraction, at most about 50 times, last with 1.0.

    Returns
    -------
    RNNResult
        See :class:`RNNResult` for the history keys and shapes.

    Raises
    ------
    ValueError
        Before training, if ``config`` cannot train (see :func:`validate_config`).
    """
    if task is None:
        validate_config(config)
        task = make_task(config)
    n_train = int(task.X_train.shape[0])
    validate_config(config, n_train)
    T = int(task.X_train.shape[1])
    model = make_model(config, task.X_train.shape[2], task.n_classes)
    model.eval_policy = config.eval_policy
    flat = _Flat(model)
    opt = OPTIMIZERS["momentum"](config.lr, momentum=0.9)
    rng = np.random.default_rng([config.seed, 1])
    batches = _batches(n_train, config.batch_size, rng)
    len_rng = np.random.default_rng([config.seed, 2])
    variable = config.min_length >= 1
    X_test_T = np.ascontiguousarray(task.X_test[:, :T])
    X_train_eval, y_train_eval = task.X_train[:TRAIN_EVAL_SIZE], task.y_train[:TRAIN_EVAL_SIZE]

    steps, every = config.steps, config.eval_every
    record_steps = list(range(0, steps + 1, every))
    if record_steps[-1] != steps:
        record_steps.append(steps)
    n_max = len(record_steps)
    rec = {k: np.full(n_max, np.nan) for k in ("train_loss", "test_acc")}
    rec_step = np.zeros(n_max, dtype=np.int64)
    act_mean = np.full((n_max, T), np.nan)
    act_std = np.full((n_max, T), np.nan)
    batch_loss = np.zeros(steps)
    step_time = np.zeros(steps)
    active_sum = np.zeros(T)
    active_min = np.full(T, config.batch_size, dtype=np.int64)
    fallback = np.zeros(T, dtype=np.int64)
    n_rec = 0
    done = 0
    diverged_at: int | None = None
    reason = ""
    perf = time.perf_counter
    progress_every = max(1, steps // 50)

    def evaluate(step: int) -> None:
        nonlocal n_rec
        train_logits = model.forward(X_train_eval, training=False)
        logits = model.forward(X_test_T, training=False)
        rec_step[n_rec] = step
        rec["train_loss"][n_rec] = _mean_ce(train_logits, y_train_eval)
        rec["test_acc"][n_rec] = _accuracy(logits, task.y_test)
        a = np.stack(model.pre_norm)  # (T, n_test, H)
        act_mean[n_rec] = a.mean(axis=(1, 2))
        act_std[n_rec] = a.std(axis=1).mean(axis=1)
        n_rec += 1

    with np.errstate(all="ignore"), single_blas_thread():
        evaluate(0)
        nxt = 1
        for step in range(1, steps + 1):
            idx = next(batches)
            xb, yb = task.X_train[idx], task.y_train[idx]
            lengths = len_rng.integers(config.min_length, T + 1, size=len(idx)) if variable else None
            t0 = perf()
            logits = model.forward(xb, training=True, lengths=lengths)
            loss, grad = softmax_cross_entropy(logits, yb)
            if not (math.isfinite(loss) and loss <= DIVERGENCE_LOSS):
                diverged_at = 0 if step == 1 else step
                reason = (f"the initial network's mini-batch loss is already {loss:.3g}" if step == 1
                          else f"the mini-batch loss became {loss:.3g}")
                break
            model.backward(grad)
            g = flat.grads["all"]
            if config.clip > 0:
                gn = math.sqrt(float(g @ g))
                if gn > config.clip:
                    g *= config.clip / gn
            opt.step([flat])
            step_time[step - 1] = perf() - t0
            batch_loss[step - 1] = loss
            na = model.n_active
            active_sum[:len(na)] += na
            active_min[:len(na)] = np.minimum(active_min[:len(na)], na)
            if len(na) < T:
                active_min[len(na):] = 0
            for s in model.fallback_steps:
                fallback[s - 1] += 1
            done = step
            if step == record_steps[nxt]:
                evaluate(step)
                nxt += 1
            if progress is not None and step % progress_every == 0 and step < steps:
                progress(step / steps)
        if diverged_at == 0:
            n_rec = 0
        lengths_eval, acc_len, stat_last = _accuracy_by_length(model, task, config, diverged_at)
    model.clear_cache()
    if progress is not None:
        progress(1.0)
    rm, rv = model.running_stats()
    history = {
        "step": rec_step[:n_rec],
        "train_loss": rec["train_loss"][:n_rec],
        "test_acc": rec["test_acc"][:n_rec],
        "act_mean": act_mean[:n_rec],
        "act_std": act_std[:n_rec],
        "batch_loss": batch_loss[:done],
        "step_time": step_time[:done],
        "length": lengths_eval,
        "acc_by_length": acc_len,
        "stat_step": stat_last,
        "running_mean": rm,
        "running_var": rv,
        "active_mean": active_sum / max(done, 1),
        "active_min": active_min if done else np.zeros(T, dtype=np.int64),
        "fallback": fallback,
    }
    for k in ("train_loss", "test_acc", "act_mean", "act_std", "acc_by_length", "running_mean",
              "running_var"):
        history[k][~np.isfinite(history[k])] = np.nan
    message = (f"trained {steps} steps" if diverged_at is None
               else f"diverged at step {diverged_at}: {reason}")
    return RNNResult(config, history, diverged_at, message, model)


def _accuracy_by_length(model: RNNClassifier, task: SequenceTask, config: RNNConfig,
                        diverged_at: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Test accuracy at every test length 1..L (prefixes), one forward of the longest length.

    The state after step ``L`` of the longest forward is exactly the state of a forward of
    length ``L`` (the network is causal and evaluation mode has no batch coupling), so one
    pass gives every length: the logits at ``L`` are ``h_L W_o + b_o``.
    """
    if not task.prefix_ok:
        L = np.array([task.X_test.shape[1]])
        if diverged_at == 0:
            return L, np.full(1, np.nan), np.zeros(1, dtype=np.int64)
        acc = _accuracy(model.forward(task.X_test, training=False), task.y_test)
        stat = model.stat_step[-1:].copy()
        return L, np.array([acc]), stat
    Lmax = int(task.X_test.shape[1])
    lengths = np.arange(1, Lmax + 1)
    if diverged_at == 0:
        return lengths, np.full(Lmax, np.nan), np.zeros(Lmax, dtype=np.int64)
    model.forward(task.X_test, training=False)
    hs = model._cache["hs"]
    W_o, b_o = model.params["W_o"], model.params["b_o"]
    acc = np.array([_accuracy(hs[L] @ W_o + b_o, task.y_test) for L in lengths])
    return lengths, acc, model.stat_step.copy()


def batch_sweep(base: RNNConfig, batches, norms=tuple(NORMS),
                progress: Callable[[float], None] | None = None) -> dict[str, np.ndarray]:
    """Final test accuracy of ``base`` for every batch size and norm (same seed, same steps).

    Parameters
    ----------
    base : RNNConfig
        Everything but ``norm`` and ``batch_size``.
    batches : sequence of int
    norms : sequence of str
    progress : callable, optional
        Called with the completed fraction after every run.

    Returns
    -------
    dict
        ``"batch"``: (B,) the batch sizes; per norm (B,): the last evaluation's test accuracy,
        NaN where that run could not train (batch norm on a batch of one) or diverged.
    """
    from dataclasses import replace

    batches = [int(b) for b in batches]
    out: dict[str, np.ndarray] = {"batch": np.array(batches)}
    task = make_task(base)
    total, done = len(batches) * len(norms), 0
    for norm in norms:
        acc = np.full(len(batches), np.nan)
        for i, b in enumerate(batches):
            cfg = replace(base, norm=norm, batch_size=b)
            try:
                res = train(cfg, task)
            except ValueError:
                res = None
            if res is not None and res.diverged_at is None and len(res.history["test_acc"]):
                acc[i] = res.history["test_acc"][-1]
            done += 1
            if progress is not None:
                progress(done / total)
        out[norm] = acc
    return out
