"""A multilayer perceptron assembled from :mod:`bn_core.layers`, and its optimizers.

Architecture for ``depth`` hidden layers of ``width`` units (``act`` the activation)::

    norm="none"       [Linear -> act]                    x depth  -> Linear
    norm="bn_before"  [Linear* -> BatchNorm1d -> act]    x depth  -> Linear   (Ioffe & Szegedy)
    norm="bn_after"   [Linear -> act -> BatchNorm1d]     x depth  -> Linear
    norm="brn"        [Linear* -> BatchRenorm1d -> act]  x depth  -> Linear   (Ioffe 2017)
    norm="ln"         [Linear -> LayerNorm -> act]       x depth  -> Linear   (Ba et al. 2016)
    norm="gn"         [Linear -> GroupNorm -> act]       x depth  -> Linear   (Wu & He 2018)

``Linear*`` has no bias (``params`` holds only ``"weight"``). Where the bias goes:

* **BatchNorm1d** subtracts each unit's batch mean; a per-unit bias ``b_j`` shifts every
  sample of unit ``j`` alike, so the batch mean absorbs it exactly (its gradient is
  identically 0), and beta plays its role. In evaluation mode the running mean has absorbed
  it too.
* **BatchRenorm1d** likewise: ``x - mu_B`` cancels ``b_j``, and the only other place it enters
  is ``d = (mu_B - running_mean) / sigma``, which is a stop-gradient constant, so the bias's
  gradient is exactly 0 and it would never move from its initial value.
* **LayerNorm / GroupNorm** subtract each *sample's* mean over the units (of a group). A
  per-unit bias is not constant over the units, so it is **not** cancelled: only its average
  over the units of a group is (one direction per group), while its differences between
  units change every sample's normalized values (and their variance) and have a nonzero
  gradient. These networks keep the bias, as Transformers keep it before LayerNorm.

The optimizers are loops over every layer's ``params`` / ``grads`` dicts, updating the
parameter arrays in place.
"""

from __future__ import annotations

import numpy as np

from bn_core.layers import (
    ACTIVATIONS,
    BatchNorm1d,
    BatchRenorm1d,
    GroupNorm,
    Layer,
    LayerNorm,
    Linear,
)

__all__ = ["BATCH_STAT_NORMS", "BIAS_FREE_NORMS", "MLP", "NORMS", "NORM_PLACEMENT",
           "OPTIMIZERS", "SGD", "Momentum"]

#: Where normalization sits in each hidden layer: nowhere, batch norm before the activation
#: (on the linear transform's output, as in Ioffe & Szegedy 2015) or after it, and Batch
#: Renormalization, LayerNorm and GroupNorm where "bn_before" puts batch norm.
NORMS = ("none", "bn_before", "bn_after", "ln", "gn", "brn")

#: "before" or "after" the activation, for every norm but "none".
NORM_PLACEMENT = {"bn_before": "before", "bn_after": "after", "brn": "before", "ln": "before",
                  "gn": "before"}

#: Norms whose hidden Linear layers have no bias (the normalization cancels it, see above).
BIAS_FREE_NORMS = frozenset({"bn_before", "brn"})

#: Norms that normalize by batch statistics in training mode (a batch of one cannot train).
BATCH_STAT_NORMS = frozenset({"bn_before", "bn_after", "brn"})

#: How each norm's layer is built: ``factory(width, groups, r_max, d_max, bn_momentum, dtype)``.
_NORM_FACTORIES = {
    "bn_before": lambda w, g, rm, dm, m, dt: BatchNorm1d(w, momentum=m, dtype=dt),
    "bn_after": lambda w, g, rm, dm, m, dt: BatchNorm1d(w, momentum=m, dtype=dt),
    "brn": lambda w, g, rm, dm, m, dt: BatchRenorm1d(w, momentum=m, r_max=rm, d_max=dm, dtype=dt),
    "ln": lambda w, g, rm, dm, m, dt: LayerNorm(w, dtype=dt),
    "gn": lambda w, g, rm, dm, m, dt: GroupNorm(g, w, dtype=dt),
}

_NORM_TYPES = (BatchNorm1d, GroupNorm)  # LayerNorm and BatchRenorm1d are subclasses


class MLP:
    """Fully connected classifier with an optional normalization in every hidden layer.

    Parameters
    ----------
    n_in, n_out : int
        Input features and classes (the output layer returns ``n_out`` logits).
    depth : int
        Number of hidden layers (>= 1).
    width : int
        Units per hidden layer (>= 1).
    activation : {"sigmoid", "relu", "tanh"}
        Nonlinearity of the hidden layers (keys of :data:`bn_core.layers.ACTIVATIONS`).
    norm : {"none", "bn_before", "bn_after", "ln", "gn", "brn"}
        Which normalization, and where, see :data:`NORMS` and the module notes.
    init_scale : float or None
        Standard deviation of the Gaussian initial weights of every Linear layer (biases
        start at 0); ``None`` for PyTorch's default uniform initialization.
    seed : int or numpy.random.Generator
        Source of the initial weights. The weights do not depend on ``norm``: the same seed
        gives the plain and the normalized network identical Linear layers.
    dtype : numpy dtype
        float64 (default) or float32; inputs should have the same dtype.
    groups : int
        Groups of :class:`~bn_core.layers.GroupNorm` (``norm="gn"``); must divide ``width``.
    r_max, d_max : float
        Bounds of :class:`~bn_core.layers.BatchRenorm1d` (``norm="brn"``).
    bn_momentum : float
        Running-statistics momentum of BatchNorm1d / BatchRenorm1d (default 0.1).

    Attributes
    ----------
    layers : list of Layer
        Flat list of the layers in order (Linear, normalization, activation objects).
    flat : Layer
        A parameter-only pseudo-layer with ``params = {"all": theta}`` and
        ``grads = {"all": grad}``: every layer's parameter (gradient) arrays are views into the
        contiguous vector ``theta`` (``grad``), so an optimizer can update all of them at once.
    act_input_index : list of int
        For each hidden layer, the index in ``layers`` of the layer whose **output** is the
        input of that hidden layer's nonlinearity: the normalization layer for the norms placed
        before the activation (``"bn_before"``, ``"brn"``, ``"ln"``, ``"gn"``), the Linear layer
        otherwise (for ``"bn_after"`` the normalization comes after the nonlinearity).
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        depth: int = 3,
        width: int = 100,
        activation: str = "sigmoid",
        norm: str = "none",
        init_scale: float | None = 0.1,
        seed: int | np.random.Generator = 0,
        dtype=np.float64,
        *,
        groups: int = 4,
        r_max: float = 3.0,
        d_max: float = 5.0,
        bn_momentum: float = 0.1,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}"
            )
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {list(NORMS)}")
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be at least 1, got {depth} and {width}")
        if norm == "gn" and (groups < 1 or width % groups):
            raise ValueError(
                f"GroupNorm needs a number of groups that divides the width: {groups} groups "
                f"do not divide {width} units"
            )
        rng = np.random.default_rng(seed)
        self.n_in, self.n_out, self.depth, self.width = (
            int(n_in),
            int(n_out),
            int(depth),
            int(width),
        )
        self.activation, self.norm, self.dtype = activation, norm, np.dtype(dtype)
        self.layers: list[Layer] = []
        self.act_input_index: list[int] = []
        self.groups, self.r_max, self.d_max = int(groups), float(r_max), float(d_max)
        self.bn_momentum = bn_momentum
        placement = NORM_PLACEMENT.get(norm)
        factory = _NORM_FACTORIES.get(norm)
        fan_in = self.n_in
        for _ in range(self.depth):
            # no bias where the normalization cancels it exactly (see the module notes)
            self.layers.append(
                Linear(fan_in, width, init_scale, rng=rng, bias=norm not in BIAS_FREE_NORMS,
                       dtype=dtype)
            )
            if placement == "before":
                self.layers.append(factory(width, groups, r_max, d_max, bn_momentum, dtype))
            self.act_input_index.append(len(self.layers) - 1)
            self.layers.append(ACTIVATIONS[activation]())
            if placement == "after":
                self.layers.append(factory(width, groups, r_max, d_max, bn_momentum, dtype))
            fan_in = width
        self.layers.append(Linear(fan_in, self.n_out, init_scale, rng=rng, dtype=dtype))
        self._linears = [layer for layer in self.layers if isinstance(layer, Linear)]
        self._with_params = [layer for layer in self.layers if layer.params]
        self.flat = _pack_parameters(self._with_params, self.dtype)

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """Logits of shape ``(n_samples, n_out)`` for ``x`` of shape ``(n_samples, n_in)``.

        In training mode the batch-norm layers use (and record) batch statistics; in
        evaluation mode they use their running statistics.
        """
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def forward_with_act_inputs(
        self, x: np.ndarray, training: bool = False
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits and, per hidden layer, the input of its nonlinearity.

        Returns
        -------
        logits : ndarray of shape (n_samples, n_out)
        act_inputs : list of ``depth`` ndarrays of shape (n_samples, width)
            The output of ``layers[i]`` for ``i`` in :attr:`act_input_index`: the batch-norm
            output for ``norm="bn_before"``, the Linear output otherwise.
        """
        wanted = set(self.act_input_index)
        act_inputs = []
        for i, layer in enumerate(self.layers):
            x = layer.forward(x, training)
            if i in wanted:
                act_inputs.append(x)
        return x, act_inputs

    def backward(self, grad_logits: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Back-propagate ``dL/dlogits`` ``(n, n_out)``; fill every layer's grads.

        Returns ``dL/dx`` of shape ``(n, n_in)``, or ``None`` with ``need_input_grad=False``
        (training needs only the parameter gradients; this skips one matrix product).
        """
        g = grad_logits
        layers = self.layers
        for layer in layers[:0:-1]:
            g = layer.backward(g)
        return layers[0].backward(g, need_input_grad=need_input_grad)

    def linear_layers(self) -> list[Linear]:
        """The Linear layers in order: ``depth`` hidden ones, then the output layer."""
        return list(self._linears)

    def batchnorm_layers(self) -> list[BatchNorm1d]:
        """The layers with running statistics, in order: BatchNorm1d, or BatchRenorm1d for
        ``norm="brn"`` (a subclass); empty for ``"none"``, ``"ln"`` and ``"gn"``."""
        return [layer for layer in self.layers if isinstance(layer, BatchNorm1d)]

    def norm_layers(self) -> list[Layer]:
        """Every normalization layer in order (``depth`` of them, none for ``norm="none"``)."""
        return [layer for layer in self.layers if isinstance(layer, _NORM_TYPES)]

    @property
    def uses_batch_statistics(self) -> bool:
        """Whether training-mode outputs depend on the other samples of the batch."""
        return self.norm in BATCH_STAT_NORMS

    def param_layers(self) -> list[Layer]:
        """The layers that have parameters (what an optimizer needs to loop over)."""
        return list(self._with_params)

    def flat_layers(self) -> list[Layer]:
        """``[self.flat]``: every parameter and gradient as one vector, for fast optimizers.

        ``optimizer.step(model.flat_layers())`` performs exactly the same update as
        ``optimizer.step(model.param_layers())`` (the optimizers are elementwise), with one
        NumPy operation instead of one per parameter array.
        """
        return [self.flat]

    def __setstate__(self, state: dict) -> None:
        # pickling stores the layers' parameter views as separate arrays: make them views of
        # one vector again, so the flat optimizer path keeps working on an unpickled model
        self.__dict__.update(state)
        self.flat = _pack_parameters(self._with_params, self.dtype)

    def clear_cache(self) -> None:
        """Drop every layer's forward caches (see :meth:`bn_core.layers.Layer.clear_cache`)."""
        for layer in self.layers:
            layer.clear_cache()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted classes ``(n_samples,)`` in evaluation mode."""
        return self.forward(x, training=False).argmax(axis=1)

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"MLP([{inner}])"


class _FlatParameters(Layer):
    """All parameters of a network as one vector (the layers hold views into it)."""

    def __init__(self, theta: np.ndarray, grad: np.ndarray) -> None:
        super().__init__()
        self.params = {"all": theta}
        self.grads = {"all": grad}

    def forward(self, x, training=True):  # pragma: no cover - not a real layer
        raise TypeError("the flat parameter view is for optimizers only")

    backward = forward


def _pack_parameters(layers: list[Layer], dtype) -> _FlatParameters:
    """Move every parameter and gradient array of ``layers`` into two contiguous vectors.

    Each ``layer.params[k]`` / ``layer.grads[k]`` becomes a reshaped view of a slice of the
    vectors, with the same values, shape and dtype, so layer code is unaffected.
    """
    total = sum(p.size for layer in layers for p in layer.params.values())
    theta = np.empty(total, dtype=dtype)
    grad = np.zeros(total, dtype=dtype)
    offset = 0
    for layer in layers:
        for name, p in layer.params.items():
            view = theta[offset : offset + p.size].reshape(p.shape)
            view[...] = p
            layer.params[name] = view
            layer.grads[name] = grad[offset : offset + p.size].reshape(p.shape)
            offset += p.size
    return _FlatParameters(theta, grad)


class SGD:
    r"""Plain stochastic gradient descent, :math:`\theta \leftarrow \theta - \eta\, g`.

    Parameters
    ----------
    lr : float
        Learning rate :math:`\eta > 0`.
    """

    def __init__(self, lr: float, **unused) -> None:
        if not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"learning rate must be a finite number > 0, got {lr}")
        self.lr = float(lr)

    def step(self, layers) -> None:
        """Update every ``layer.params[k]`` in place from ``layer.grads[k]``."""
        neg_lr = -self.lr
        for layer in layers:
            grads = layer.grads
            for name, p in layer.params.items():
                p += neg_lr * grads[name]


class Momentum:
    r"""SGD with heavy-ball momentum, in PyTorch's form.

    .. math:: v \leftarrow \mu v + g, \qquad \theta \leftarrow \theta - \eta v

    (``v`` starts at 0, so the first step is plain SGD). For a constant learning rate this is
    the same trajectory as scikit-learn's ``v <- mu v - eta g; theta <- theta + v``.

    Parameters
    ----------
    lr : float
        Learning rate :math:`\eta > 0`.
    momentum : float
        :math:`\mu` in [0, 1) (default 0.9).
    """

    def __init__(self, lr: float, momentum: float = 0.9, **unused) -> None:
        if not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"learning rate must be a finite number > 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.lr, self.momentum = float(lr), float(momentum)
        self._velocity: dict[int, np.ndarray] = {}

    def step(self, layers) -> None:
        """Update every ``layer.params[k]`` in place; velocities are kept per parameter array."""
        mu, neg_lr = self.momentum, -self.lr
        vel = self._velocity
        for layer in layers:
            grads = layer.grads
            for name, p in layer.params.items():
                v = vel.get(id(p))
                if v is None:
                    v = vel[id(p)] = grads[name].copy()
                else:
                    v *= mu
                    v += grads[name]
                p += neg_lr * v


#: Optimizer classes by name; each is built as ``OPTIMIZERS[name](lr, **kw)``.
OPTIMIZERS = {"sgd": SGD, "momentum": Momentum}
