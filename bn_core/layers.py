"""Neural-network layers in plain NumPy with one small contract, plus softmax cross-entropy.

Every layer has

* ``forward(x, training=True) -> y`` with ``x`` of shape ``(n_samples, n_features)``;
* ``backward(grad_out) -> grad_in``, called after a forward; it fills ``layer.grads``;
* ``params`` and ``grads``: dicts with the same keys (``{}`` for activations), so an optimizer
  is a loop over ``params`` and a gradient check is a loop over the same keys.

The normalization layers reproduce ``torch.nn.BatchNorm1d``, ``torch.nn.LayerNorm`` and
``torch.nn.GroupNorm`` with affine parameters (gamma starts at 1, beta at 0);
:class:`BatchRenorm1d` is Batch Renormalization (Ioffe 2017), which PyTorch does not ship.

Arrays in ``params``, ``grads`` and the running statistics are updated **in place**, so a
reference to them stays valid across steps; copy them if you need a snapshot (see
:meth:`BatchNorm1d.state_dict`). Values cached by a forward pass for the backward pass
(``x_hat``, ``inv_std``, ...) belong to the layer and are replaced by the next forward.

The layers themselves do not silence floating-point warnings (that would cost a context
switch per call); callers that may feed non-finite or huge values wrap their loop in
``np.errstate`` (as :func:`bn_core.train.train` does).
"""

from __future__ import annotations

import copy as _copy
import math

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "BatchNorm1d",
    "BatchRenorm1d",
    "GroupNorm",
    "LayerNorm",
    "Linear",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "one_sample_message",
    "softmax_cross_entropy",
]


class Layer:
    """Base class: the layer contract (``forward``, ``backward``, ``params``, ``grads``)."""

    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]

    def __init__(self) -> None:
        self.params = {}
        self.grads = {}

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def __call__(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        return self.forward(x, training=training)

    def zero_grad(self) -> None:
        """Set every gradient in ``grads`` to zero (in place)."""
        for g in self.grads.values():
            g.fill(0.0)

    def copy(self):
        """Return an independent deep copy of the layer (parameters, buffers and caches)."""
        return _copy.deepcopy(self)

    #: Names of the attributes that hold what the last forward cached for backward (or for
    #: inspection: GroupNorm/LayerNorm keep ``x_hat`` and ``inv_std`` as public attributes).
    _cache_attrs: tuple[str, ...] = ("_x", "_y", "_xc", "_x_hat", "x_hat", "inv_std")

    def _forward_cache(self, name: str) -> np.ndarray:
        """The array ``name`` cached by the last forward; RuntimeError if there is none."""
        value = self.__dict__.get(name)
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return value

    def clear_cache(self) -> None:
        """Drop the arrays cached by the last forward (a backward then needs a new forward).

        Parameters, gradients and running statistics are kept; this only frees memory (and
        keeps pickled copies small, e.g. in a Streamlit cache).
        """
        for name in self._cache_attrs:
            if name in self.__dict__:
                self.__dict__[name] = None


# --------------------------------------------------------------------------------------
# Linear
# --------------------------------------------------------------------------------------


class Linear(Layer):
    r"""Fully connected layer :math:`y = x W + b`.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the input and output.
    init_scale : float or None
        ``None`` (default): PyTorch's default initialization, ``W`` and ``b`` uniform on
        :math:`[-1/\sqrt{\text{in}}, 1/\sqrt{\text{in}}]`. A float ``s > 0``: ``W`` drawn from
        :math:`\mathcal N(0, s^2)` (``s`` is the standard deviation) and ``b = 0``.
    seed : int, numpy.random.Generator or None
        Source of the random initial weights; an ``int`` builds ``np.random.default_rng(seed)``,
        a Generator is used (and advanced) as is.
    rng : numpy.random.Generator, optional
        Alias of ``seed`` for a Generator; takes precedence when given.
    bias : bool
        Whether the layer has a bias (default True). A Linear layer followed by batch norm
        needs none: the batch mean subtracts it exactly (its gradient is 0), so
        :class:`~bn_core.network.MLP` leaves it out there, as is usual in PyTorch.
    dtype : numpy dtype
        Floating type of the parameters (default float64).

    Attributes
    ----------
    params : dict
        ``"weight"``: ndarray of shape **(in_features, out_features)** -- note: the transpose
        of PyTorch's ``(out_features, in_features)`` layout, so that the forward pass is the
        plain product ``x @ W`` on row-major batches; ``"bias"`` (absent when
        ``bias=False``): ndarray of shape ``(out_features,)``.
    grads : dict
        Same keys and shapes, filled by :meth:`backward`.

    Notes
    -----
    Forward, for ``x`` of shape ``(n, in)``: ``y = x @ W + b`` of shape ``(n, out)``.

    Backward, for ``g = dL/dy`` of shape ``(n, out)``::

        dL/dW = x.T @ g        dL/db = g.sum(axis=0)        dL/dx = g @ W.T
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        init_scale: float | None = None,
        seed: int | np.random.Generator | None = None,
        *,
        rng: np.random.Generator | None = None,
        bias: bool = True,
        dtype=np.float64,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"Linear needs at least one input and one output feature, got "
                f"in_features={in_features}, out_features={out_features}"
            )
        gen = rng if rng is not None else np.random.default_rng(seed)
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        shape = (self.in_features, self.out_features)
        if init_scale is None:
            bound = 1.0 / np.sqrt(self.in_features)
            weight = gen.uniform(-bound, bound, size=shape)
            b = gen.uniform(-bound, bound, size=self.out_features)
        else:
            if not np.isfinite(init_scale) or init_scale <= 0:
                raise ValueError(f"init_scale must be a finite number > 0, got {init_scale}")
            weight = gen.normal(0.0, float(init_scale), size=shape)
            b = np.zeros(self.out_features)
        self.params = {"weight": weight.astype(dtype)}
        if bias:  # (the initial bias is drawn either way, so later draws do not depend on it)
            self.params["bias"] = b.astype(dtype)
        self.has_bias = bool(bias)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """Return ``x @ W + b``; ``x`` of shape ``(n, in_features)``, result ``(n, out_features)``."""
        self._x = x
        y = x @ self.params["weight"]
        if self.has_bias:
            y += self.params["bias"]
        return y

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Fill ``grads`` from ``grad_out`` of shape ``(n, out)``; return ``dL/dx`` ``(n, in)``.

        With ``need_input_grad=False`` (the first layer of a network, whose input is data)
        the input gradient is not computed and ``None`` is returned.
        """
        x = self._x
        if x is None:
            raise RuntimeError("Linear.backward called before forward")
        np.matmul(x.T, grad_out, out=self.grads["weight"])
        if self.has_bias:
            np.add.reduce(grad_out, axis=0, out=self.grads["bias"])
        if not need_input_grad:
            return None
        return grad_out @ self.params["weight"].T

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features})"


# --------------------------------------------------------------------------------------
# Batch normalization
# --------------------------------------------------------------------------------------

_ONE_SAMPLE_MESSAGE = (
    "{name} cannot train on a batch of {n} sample(s): it normalizes each feature by the "
    "mean and variance over the batch, and one sample has no batch variance (every feature "
    "would be normalized to 0). Use a batch of at least 2 samples, or evaluation mode, which "
    "uses the running statistics. (PyTorch: 'Expected more than 1 value per channel when "
    "training'.)"
)


def one_sample_message(layer_name: str = "BatchNorm1d", n: int = 1) -> str:
    """The ``ValueError`` message a batch-statistics layer raises for a batch of ``n < 2``.

    Parameters
    ----------
    layer_name : str
        ``"BatchNorm1d"`` or ``"BatchRenorm1d"`` (the class that raises).
    n : int
        Number of samples in the offending batch (0 or 1).
    """
    return _ONE_SAMPLE_MESSAGE.format(name=layer_name, n=n)


class BatchNorm1d(Layer):
    r"""Batch normalization over the batch axis, identical to ``torch.nn.BatchNorm1d``.

    Parameters
    ----------
    num_features : int
        Number of features ``C``; inputs have shape ``(n_samples, C)``.
    eps : float
        Added to the variance for numerical stability (default 1e-5). Keeps constant
        features finite: their ``x_hat`` is 0 and the output is ``beta``.
    momentum : float or None
        Weight of the new batch statistic in the running averages (default 0.1). ``None``
        gives the cumulative average over all batches seen, as in PyTorch.
    dtype : numpy dtype
        Floating type of the parameters and running statistics.

    Attributes
    ----------
    params : dict
        ``"gamma"`` (scale, starts at 1) and ``"beta"`` (shift, starts at 0), shape ``(C,)``.
    grads : dict
        Same keys and shapes, filled by :meth:`backward`.
    running_mean, running_var : ndarray of shape (C,)
        Running estimates used in evaluation mode; start at 0 and 1. ``running_var`` averages
        the **unbiased** batch variance (divisor ``n - 1``), like PyTorch.
    num_batches_tracked : int
        Number of training-mode forward passes so far.
    last_mean : ndarray of shape (C,)
        Mean used by the last forward: the batch mean in training mode, ``running_mean``
        (a copy) in evaluation mode.
    last_var : ndarray of shape (C,)
        Variance used by the last forward: the **biased** batch variance (divisor ``n``) in
        training mode, ``running_var`` (a copy) in evaluation mode.
    inv_std : ndarray of shape (C,)
        ``1 / sqrt(last_var + eps)``.
    x_hat : ndarray of shape (n_samples, C)
        Normalized input of the last forward, ``(x - last_mean) * inv_std`` (a property,
        computed on first access: the forward pass caches only ``x - last_mean`` and
        ``inv_std``, which is all the backward pass needs).

    These ``last_*`` arrays are replaced (not overwritten in place) by the next forward, so a
    reference taken after one forward keeps its values.

    Notes
    -----
    Training mode, for a batch ``x`` of ``n >= 2`` rows (per feature ``j``):

    .. math::

        \mu_j = \frac1n \sum_i x_{ij}, \qquad
        \sigma_j^2 = \frac1n \sum_i (x_{ij} - \mu_j)^2, \qquad
        \hat x_{ij} = \frac{x_{ij} - \mu_j}{\sqrt{\sigma_j^2 + \epsilon}}, \qquad
        y_{ij} = \gamma_j \hat x_{ij} + \beta_j

    and the running statistics are updated with ``m = momentum``:

    .. math::

        \text{running\_mean} \leftarrow (1 - m)\,\text{running\_mean} + m\,\mu, \qquad
        \text{running\_var} \leftarrow (1 - m)\,\text{running\_var} + m\,\frac{n}{n-1}\sigma^2

    Evaluation mode uses the running statistics and changes nothing:

    .. math::

        y_{ij} = \gamma_j \frac{x_{ij} - \text{running\_mean}_j}
                              {\sqrt{\text{running\_var}_j + \epsilon}} + \beta_j

    Backward (training mode), with ``g = dL/dy`` and ``s = 1 / sqrt(sigma^2 + eps)``:

    .. math::

        \frac{\partial L}{\partial \beta} = \sum_i g_i, \qquad
        \frac{\partial L}{\partial \gamma} = \sum_i g_i \hat x_i, \qquad
        \frac{\partial L}{\partial x_i} = \gamma s \left(g_i - \frac1n\frac{\partial L}{\partial
        \beta} - \hat x_i \frac1n \frac{\partial L}{\partial \gamma}\right)

    (the batch statistics depend on every row, hence the two correction terms). In evaluation
    mode the statistics are constants and ``dL/dx = gamma * s * g``.
    """

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, dtype=np.float64
    ) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"num_features must be at least 1, got {num_features}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] or None, got {momentum}")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = momentum
        self.params = {
            "gamma": np.ones(self.num_features, dtype=dtype),
            "beta": np.zeros(self.num_features, dtype=dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        # running_mean and running_var are the two rows of one buffer, so the running update
        # is one vectorized operation for both
        self._running = np.empty((2, self.num_features), dtype=dtype)
        self._running[0] = 0.0
        self._running[1] = 1.0
        self.num_batches_tracked = 0
        self.inv_std: np.ndarray | None = None
        self._mean: np.ndarray | None = None
        self._var: np.ndarray | None = None  # biased variance, formed on demand in training
        self._ssq: np.ndarray | None = None  # sum of squared deviations of the last batch
        self._xc: np.ndarray | None = None  # x - last_mean, cached for backward
        self._x_hat: np.ndarray | None = None
        self._scale: np.ndarray | None = None  # gamma * inv_std of the last forward
        self._n = 0
        self._trained_forward = True
        self._avg: np.ndarray | None = None
        self._coef: np.ndarray | None = None
        self._coef_key: tuple | None = None

    @property
    def running_mean(self) -> np.ndarray:
        """Running mean, shape (C,); starts at 0 (a view: assign with ``[...] =``)."""
        return self._running[0]

    @running_mean.setter
    def running_mean(self, value) -> None:
        self._running[0] = value

    @property
    def running_var(self) -> np.ndarray:
        """Running unbiased variance, shape (C,); starts at 1 (a view: assign with ``[...] =``)."""
        return self._running[1]

    @running_var.setter
    def running_var(self, value) -> None:
        self._running[1] = value

    @property
    def last_mean(self) -> np.ndarray | None:
        """Mean used by the last forward (batch mean in training, running mean in eval)."""
        return self._mean

    @property
    def last_var(self) -> np.ndarray | None:
        """Variance used by the last forward (biased batch variance in training, running in eval)."""
        if self._var is None and self._ssq is not None:
            self._var = self._ssq / self._n
        return self._var

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """Normalize ``x`` of shape ``(n, C)``; see the class notes for the equations.

        Raises
        ------
        ValueError
            In training mode with fewer than 2 samples (one sample has no batch variance).
        """
        n = x.shape[0]
        if training:
            if n < 2:
                raise ValueError(one_sample_message(type(self).__name__, n))
            stats = np.empty((2, self.num_features), dtype=self._running.dtype)
            mean, ssq = stats  # views: batch mean and sum of squared deviations
            np.matmul(self._averager(n), x, out=mean)  # (1/n, ..., 1/n) @ x: one BLAS call
            xc = x - mean
            np.einsum("ij,ij->j", xc, xc, out=ssq)  # one fused reduction, no temporary
            self._update_running(stats, n)
            # 1 / sqrt(ssq / n + eps) = sqrt(n) / sqrt(ssq + n eps)
            inv_std = ssq + n * self.eps
            np.sqrt(inv_std, out=inv_std)
            np.divide(math.sqrt(n), inv_std, out=inv_std)
            self._mean, self._var, self._ssq = mean, None, ssq
        else:
            mean = self._running[0].copy()
            var = self._running[1].copy()
            xc = x - mean
            inv_std = var + self.eps
            np.sqrt(inv_std, out=inv_std)
            np.reciprocal(inv_std, out=inv_std)
            self._mean, self._var, self._ssq = mean, var, None
        # cache the centred input and 1/std; x_hat = xc * inv_std is formed only on demand
        self.inv_std, self._xc, self._x_hat, self._n = inv_std, xc, None, n
        self._trained_forward = bool(training)
        scale = self.params["gamma"] * inv_std
        self._scale = scale
        y = xc * scale
        y += self.params["beta"]
        return y

    @property
    def x_hat(self) -> np.ndarray | None:
        """Normalized input of the last forward, ``(x - last_mean) * inv_std``, shape (n, C)."""
        if self._x_hat is None and self._xc is not None:
            self._x_hat = self._xc * self.inv_std
        return self._x_hat

    def _averager(self, n: int) -> np.ndarray:
        """The row vector (1/n, ..., 1/n) of length n (cached for the last batch size)."""
        avg = self._avg
        if avg is None or avg.shape[0] != n:
            avg = self._avg = np.full(n, 1.0 / n, dtype=self._running.dtype)
        return avg

    def _update_running(self, stats: np.ndarray, n: int) -> None:
        """running <- (1 - m) running + m [mean; ssq / (n - 1)] (unbiased variance)."""
        self.num_batches_tracked += 1
        m = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked
        key = (m, n)
        if self._coef_key != key:
            self._coef = np.array([[m], [m / (n - 1)]], dtype=stats.dtype)
            self._coef_key = key
        self._running *= 1.0 - m
        self._running += self._coef * stats

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Fill ``grads`` from ``grad_out`` ``(n, C)``; return ``dL/dx`` ``(n, C)``."""
        xc = self._xc
        if xc is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        inv_std, scale = self.inv_std, self._scale
        dgamma = self.grads["gamma"]
        dbeta = self.grads["beta"]
        # dgamma = sum_i g_i x_hat_i = inv_std * sum_i g_i xc_i (x_hat is never materialized)
        np.multiply(np.einsum("ij,ij->j", grad_out, xc), inv_std, out=dgamma)
        np.add.reduce(grad_out, axis=0, out=dbeta)
        dx = grad_out * scale
        if not self._trained_forward:
            return dx
        # dx = gamma s (g - dbeta/n - x_hat dgamma/n)
        #    = g (gamma s) - xc (gamma s^2 dgamma / n) - gamma s dbeta / n
        scale_n = scale * (1.0 / xc.shape[0])
        dx -= xc * (scale_n * inv_std * dgamma)
        dx -= scale_n * dbeta
        return dx

    def state_dict(self) -> dict[str, np.ndarray | int]:
        """Copies of gamma, beta, running_mean, running_var and num_batches_tracked."""
        return {
            "gamma": self.params["gamma"].copy(),
            "beta": self.params["beta"].copy(),
            "running_mean": self.running_mean.copy(),
            "running_var": self.running_var.copy(),
            "num_batches_tracked": self.num_batches_tracked,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore values saved by :meth:`state_dict` (in place, keeping array identities)."""
        self.params["gamma"][...] = state["gamma"]
        self.params["beta"][...] = state["beta"]
        self.running_mean[...] = state["running_mean"]
        self.running_var[...] = state["running_var"]
        self.num_batches_tracked = int(state["num_batches_tracked"])

    def __repr__(self) -> str:
        return f"BatchNorm1d({self.num_features}, eps={self.eps}, momentum={self.momentum})"


class BatchRenorm1d(BatchNorm1d):
    r"""Batch Renormalization (Ioffe 2017) over the batch axis; evaluation mode is BatchNorm1d's.

    In training mode the batch statistics are corrected towards the running statistics by
    two per-feature factors ``r`` and ``d`` that are treated as constants by the backward
    pass (stop-gradient), so the output a sample gets depends less on the other samples of its
    batch. With ``r_max = 1, d_max = 0`` it is :class:`BatchNorm1d` exactly (outputs and
    gradients).

    Parameters
    ----------
    num_features : int
        Number of features ``C``; inputs have shape ``(n_samples, C)``.
    eps : float
        Added to the variances (default 1e-5).
    momentum : float or None
        Running-statistics momentum, exactly as :class:`BatchNorm1d` (default 0.1).
    r_max : float
        Bound of the scale correction, ``r`` in ``[1 / r_max, r_max]``; ``>= 1`` (default 3).
    d_max : float
        Bound of the shift correction, ``d`` in ``[-d_max, d_max]``; ``>= 0`` (default 5).
    dtype : numpy dtype
        Floating type of the parameters and running statistics.

    Attributes
    ----------
    params, grads, running_mean, running_var, num_batches_tracked, last_mean, last_var,
    inv_std, x_hat
        As :class:`BatchNorm1d`; ``x_hat`` is the renormalized input (with ``r`` and ``d``).
    last_r, last_d : ndarray of shape (C,) or None
        The ``r`` and ``d`` of the last training-mode forward (``None`` after an evaluation
        forward, which uses neither), for plotting.

    Notes
    -----
    Training mode, per feature, with the running statistics **as they were before this
    batch** (``mu`` and ``var`` the running mean and variance):

    .. math::

        \mu_B = \frac1n \sum_i x_i, \quad \sigma_B^2 = \frac1n \sum_i (x_i - \mu_B)^2, \quad
        \sigma_B = \sqrt{\sigma_B^2 + \epsilon}, \quad \sigma = \sqrt{\mathrm{var} + \epsilon}

    .. math::

        r = \mathrm{clip}\!\left(\frac{\sigma_B}{\sigma}, \frac1{r_{max}}, r_{max}\right), \quad
        d = \mathrm{clip}\!\left(\frac{\mu_B - \mu}{\sigma}, -d_{max}, d_{max}\right), \quad
        \hat x_i = \frac{x_i - \mu_B}{\sigma_B}\, r + d, \quad y_i = \gamma \hat x_i + \beta

    then the running statistics are updated exactly as :class:`BatchNorm1d`'s (momentum,
    unbiased batch variance). When ``r`` and ``d`` are not clipped, ``x_hat`` equals
    ``(x - mu) / sigma``: the output of a sample no longer depends on its batch. Evaluation
    mode is BatchNorm1d's, ``y = gamma (x - mu) / sigma + beta``.

    Backward with ``r`` and ``d`` held constant, ``g = dL/dy``, ``s = 1 / sigma_B`` and
    ``z = (x - mu_B) s`` (the plain batch-normalized input):

    .. math::

        \frac{\partial L}{\partial \beta} = \sum_i g_i, \quad
        \frac{\partial L}{\partial \gamma} = \sum_i g_i \hat x_i, \quad
        \frac{\partial L}{\partial x_i} = \gamma r s \left(g_i - \frac1n \sum_k g_k
        - z_i \frac1n \sum_k g_k z_k\right)

    i.e. BatchNorm1d's input gradient with gamma replaced by ``gamma * r``.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        r_max: float = 3.0,
        d_max: float = 5.0,
        dtype=np.float64,
    ) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, dtype=dtype)
        if not (math.isfinite(r_max) and r_max >= 1.0):
            raise ValueError(f"r_max must be a finite number >= 1, got {r_max}")
        if not (math.isfinite(d_max) and d_max >= 0.0):
            raise ValueError(f"d_max must be a finite number >= 0, got {d_max}")
        self.r_max = float(r_max)
        self.d_max = float(d_max)
        self.last_r: np.ndarray | None = None
        self.last_d: np.ndarray | None = None
        self._r: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """Renormalize ``x`` of shape ``(n, C)``; see the class notes for the equations.

        Raises
        ------
        ValueError
            In training mode with fewer than 2 samples (one sample has no batch variance).
        """
        if not training:
            self.last_r = self.last_d = self._r = None
            return super().forward(x, training=False)
        n = x.shape[0]
        if n < 2:
            raise ValueError(one_sample_message(type(self).__name__, n))
        # the running statistics before this batch: sigma = sqrt(var + eps), mean
        sigma = self._running[1] + self.eps
        np.sqrt(sigma, out=sigma)
        run_mean = self._running[0].copy()
        stats = np.empty((2, self.num_features), dtype=self._running.dtype)
        mean, ssq = stats
        np.matmul(self._averager(n), x, out=mean)
        xc = x - mean
        np.einsum("ij,ij->j", xc, xc, out=ssq)
        self._update_running(stats, n)
        inv_std = ssq + n * self.eps
        np.sqrt(inv_std, out=inv_std)
        np.divide(math.sqrt(n), inv_std, out=inv_std)  # 1 / sigma_B
        # r = sigma_B / sigma = 1 / (inv_std * sigma); d = (mean - running_mean) / sigma
        r = inv_std * sigma
        np.divide(1.0, r, out=r)
        np.clip(r, 1.0 / self.r_max, self.r_max, out=r)
        d = mean - run_mean
        d /= sigma
        np.clip(d, -self.d_max, self.d_max, out=d)
        self._mean, self._var, self._ssq = mean, None, ssq
        self.inv_std, self._xc, self._x_hat, self._n = inv_std, xc, None, n
        self._trained_forward = True
        self.last_r, self.last_d, self._r = r, d, r
        gamma = self.params["gamma"]
        scale = gamma * inv_std
        scale *= r
        self._scale = scale  # gamma r / sigma_B
        shift = gamma * d
        shift += self.params["beta"]
        y = xc * scale
        y += shift
        return y

    @property
    def x_hat(self) -> np.ndarray | None:
        """Input of the affine step of the last forward, ``(x - mu_B) / sigma_B * r + d``."""
        if self._x_hat is None and self._xc is not None:
            if self._r is None:  # evaluation mode: BatchNorm1d's
                self._x_hat = self._xc * self.inv_std
            else:
                self._x_hat = self._xc * (self.inv_std * self._r) + self.last_d
        return self._x_hat

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Fill ``grads`` from ``grad_out`` ``(n, C)``; return ``dL/dx`` ``(n, C)`` (r, d constant)."""
        r = self._r
        if r is None or self._xc is None:  # evaluation forward (or none): BatchNorm1d's
            return super().backward(grad_out)
        xc, inv_std, scale = self._xc, self.inv_std, self._scale
        dgamma = self.grads["gamma"]
        dbeta = self.grads["beta"]
        np.add.reduce(grad_out, axis=0, out=dbeta)
        # sum_i g_i z_i with z = xc / sigma_B (BatchNorm1d's dgamma)
        dgamma_bn = np.einsum("ij,ij->j", grad_out, xc)
        dgamma_bn *= inv_std
        # dgamma = sum_i g_i (z_i r + d) = r dgamma_bn + d dbeta
        np.multiply(dgamma_bn, r, out=dgamma)
        dgamma += self.last_d * dbeta
        # dx = (gamma r s) (g - dbeta / n - z dgamma_bn / n), as BatchNorm1d with gamma r
        dx = grad_out * scale
        scale_n = scale * (1.0 / xc.shape[0])
        dx -= xc * (scale_n * inv_std * dgamma_bn)
        dx -= scale_n * dbeta
        return dx

    def __repr__(self) -> str:
        return (
            f"BatchRenorm1d({self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"r_max={self.r_max}, d_max={self.d_max})"
        )


# --------------------------------------------------------------------------------------
# Per-sample normalization: GroupNorm and LayerNorm
# --------------------------------------------------------------------------------------


class GroupNorm(Layer):
    r"""Group normalization over features of each sample, identical to ``torch.nn.GroupNorm``.

    The ``C`` channels are split into ``G = num_groups`` consecutive groups of ``k = C / G``
    channels; each sample is normalized within each group, by statistics of that sample only
    (so it behaves the same in training and evaluation mode and works for a batch of one).

    Parameters
    ----------
    num_groups : int
        Number of groups ``G``; must divide ``num_channels``.
    num_channels : int
        Number of channels ``C``; inputs have shape ``(n_samples, C)``.
    eps : float
        Added to the variance (default 1e-5).
    dtype : numpy dtype
        Floating type of gamma and beta.

    Attributes
    ----------
    params : dict
        ``"gamma"`` (ones) and ``"beta"`` (zeros), shape ``(C,)``: one affine pair per channel.
    grads : dict
        Same keys and shapes.
    x_hat : ndarray of shape (n_samples, C)
        Normalized input of the last forward.
    inv_std : ndarray of shape (n_samples, G)
        ``1 / sqrt(var + eps)`` per sample and group of the last forward.

    Notes
    -----
    For sample ``i`` and group ``g`` with channel set :math:`S_g` (``|S_g| = k``):

    .. math::

        \mu_{ig} = \frac1k \sum_{j\in S_g} x_{ij}, \quad
        \sigma^2_{ig} = \frac1k \sum_{j\in S_g} (x_{ij} - \mu_{ig})^2, \quad
        y_{ij} = \gamma_j \frac{x_{ij} - \mu_{ig}}{\sqrt{\sigma^2_{ig} + \epsilon}} + \beta_j

    Backward, with :math:`d\hat x = \gamma \odot g` and :math:`s = 1/\sqrt{\sigma^2+\epsilon}`,
    within each (sample, group):
    :math:`dx = s\,(d\hat x - \overline{d\hat x} - \hat x\,\overline{d\hat x\,\hat x})`,
    where the bars are means over the group's ``k`` channels.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, dtype=np.float64):
        super().__init__()
        if num_groups < 1 or num_channels < 1 or num_channels % num_groups:
            raise ValueError(
                f"num_channels ({num_channels}) must be a positive multiple of num_groups "
                f"({num_groups})"
            )
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.num_groups = int(num_groups)
        self.num_channels = int(num_channels)
        self.eps = float(eps)
        self.params = {
            "gamma": np.ones(self.num_channels, dtype=dtype),
            "beta": np.zeros(self.num_channels, dtype=dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.x_hat: np.ndarray | None = None
        self.inv_std: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """Normalize each sample's groups; ``x`` and the result have shape ``(n, C)``."""
        n = x.shape[0]
        g, k = self.num_groups, self.num_channels // self.num_groups
        xg = x.reshape(n, g, k)
        xc = xg - xg.mean(axis=2, keepdims=True)
        var = np.einsum("ngk,ngk->ng", xc, xc)
        var /= k
        var += self.eps
        inv_std = np.sqrt(var, out=var)
        np.reciprocal(inv_std, out=inv_std)
        xc *= inv_std[:, :, None]
        x_hat = xc.reshape(n, self.num_channels)
        self.x_hat, self.inv_std = x_hat, inv_std
        y = x_hat * self.params["gamma"]
        y += self.params["beta"]
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Fill ``grads`` from ``grad_out`` ``(n, C)``; return ``dL/dx`` ``(n, C)``."""
        x_hat = self.x_hat
        if x_hat is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        np.einsum("ij,ij->j", grad_out, x_hat, out=self.grads["gamma"])
        np.add.reduce(grad_out, axis=0, out=self.grads["beta"])
        n = grad_out.shape[0]
        g, k = self.num_groups, self.num_channels // self.num_groups
        dxh = (grad_out * self.params["gamma"]).reshape(n, g, k)
        xh = x_hat.reshape(n, g, k)
        mean_dxh = dxh.mean(axis=2, keepdims=True)
        mean_dxh_xh = np.einsum("ngk,ngk->ng", dxh, xh)[:, :, None]
        mean_dxh_xh /= k
        dxh -= mean_dxh
        dxh -= xh * mean_dxh_xh
        dxh *= self.inv_std[:, :, None]
        return dxh.reshape(n, self.num_channels)

    def __repr__(self) -> str:
        return f"GroupNorm({self.num_groups}, {self.num_channels}, eps={self.eps})"


class LayerNorm(GroupNorm):
    r"""Layer normalization over the features of each sample, identical to ``torch.nn.LayerNorm``.

    Equivalent to ``GroupNorm(1, num_features)``: every sample is normalized by the mean and
    biased variance of its own ``C`` features, then scaled and shifted per feature.

    .. math::

        \mu_i = \frac1C \sum_j x_{ij}, \quad
        \sigma_i^2 = \frac1C \sum_j (x_{ij} - \mu_i)^2, \quad
        y_{ij} = \gamma_j \frac{x_{ij} - \mu_i}{\sqrt{\sigma_i^2 + \epsilon}} + \beta_j

    Identical in training and evaluation mode; works for a batch of one.

    Parameters
    ----------
    num_features : int
        Number of features ``C``; inputs have shape ``(n_samples, C)``.
    eps : float
        Added to the variance (default 1e-5).
    dtype : numpy dtype
        Floating type of gamma and beta.

    Attributes
    ----------
    params, grads : dict
        ``"gamma"`` and ``"beta"`` of shape ``(C,)``.
    x_hat : ndarray of shape (n_samples, C)
    inv_std : ndarray of shape (n_samples, 1)
    """

    def __init__(self, num_features: int, eps: float = 1e-5, dtype=np.float64):
        super().__init__(1, num_features, eps=eps, dtype=dtype)
        self.num_features = int(num_features)

    def __repr__(self) -> str:
        return f"LayerNorm({self.num_features}, eps={self.eps})"


# --------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------


class ReLU(Layer):
    r"""Rectified linear unit :math:`y = \max(x, 0)`; ``dL/dx = g \cdot [x > 0]``."""

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """Return ``max(x, 0)`` elementwise, same shape as ``x``."""
        y = np.maximum(x, 0.0)
        self._y = y
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Return ``grad_out`` where the input was positive, 0 elsewhere."""
        return grad_out * (self._forward_cache("_y") > 0)

    def __repr__(self) -> str:
        return "ReLU()"


class Sigmoid(Layer):
    r"""Logistic sigmoid :math:`y = 1/(1+e^{-x})`; ``dL/dx = g \cdot y (1 - y)``.

    Computed as :math:`y = \tfrac12 (1 + \tanh(x/2))`, which is exact and never overflows
    (``exp(-x)`` would overflow, with a warning, for ``x < -709``).
    """

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """Return the sigmoid of ``x`` elementwise, same shape as ``x``."""
        y = x * 0.5
        np.tanh(y, out=y)
        y *= 0.5
        y += 0.5
        self._y = y
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Return ``grad_out * y * (1 - y)``."""
        y = self._forward_cache("_y")
        dx = 1.0 - y
        dx *= y
        dx *= grad_out
        return dx

    def __repr__(self) -> str:
        return "Sigmoid()"


class Tanh(Layer):
    r"""Hyperbolic tangent :math:`y = \tanh x`; ``dL/dx = g \cdot (1 - y^2)``."""

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """Return ``tanh(x)`` elementwise, same shape as ``x``."""
        y = np.tanh(x)
        self._y = y
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Return ``grad_out * (1 - y**2)``."""
        y = self._forward_cache("_y")
        dx = y * y
        np.subtract(1.0, dx, out=dx)
        dx *= grad_out
        return dx

    def __repr__(self) -> str:
        return "Tanh()"


#: Activation classes by name (a table, not an if-chain).
ACTIVATIONS: dict[str, type[Layer]] = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}


# --------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    r"""Mean softmax cross-entropy over the batch and its gradient with respect to the logits.

    Parameters
    ----------
    logits : ndarray of shape (n_samples, n_classes)
        Unnormalized class scores ``z``.
    labels : ndarray of shape (n_samples,)
        Integer class indices ``y_i`` in ``[0, n_classes)``.

    Returns
    -------
    loss : float
        :math:`L = \frac1n \sum_i \left(\log \sum_c e^{z_{ic}} - z_{i y_i}\right)`, computed with
        the max-shift so large logits do not overflow (``nan`` if a logit is non-finite).
    grad_logits : ndarray of shape (n_samples, n_classes)
        :math:`\partial L / \partial z_{ic} = (\mathrm{softmax}(z_i)_c - [c = y_i]) / n`.
    """
    n = logits.shape[0]
    rows = np.arange(n)
    shifted = logits - np.maximum.reduce(logits, axis=1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = np.add.reduce(exp, axis=1, keepdims=True)
    loss = float(np.log(sum_exp).sum() - shifted[rows, labels].sum()) / n
    exp *= 1.0 / n / sum_exp
    exp[rows, labels] -= 1.0 / n
    return loss, exp
