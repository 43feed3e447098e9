r"""Batch, layer, instance and group normalization of a 4-D tensor: which values share statistics.

Wu & He (2018), Figure 2: an activation tensor ``x`` of shape ``(N, C, H, W)`` (samples,
channels, height, width) is normalized by a mean and a variance computed over a **set** of its
elements; the four methods differ only in the set:

============  ==================================  ==========================  ===============
method        set of element ``(n, c, h, w)``      axes reduced                sets
============  ==================================  ==========================  ===============
"batch"       every sample, channel ``c``          (N, H, W)                   C
"layer"       sample ``n``, every channel          (C, H, W)                   N
"instance"    sample ``n``, channel ``c``          (H, W)                      N * C
"group"       sample ``n``, the channels of        (C / G channels, H, W)      N * G
              ``c``'s group (G groups of C / G)
============  ==================================  ==========================  ===============

For a set :math:`S` with :math:`|S|` elements,

.. math::

    \mu_S = \frac1{|S|} \sum_{k \in S} x_k, \qquad
    \sigma_S^2 = \frac1{|S|} \sum_{k \in S} (x_k - \mu_S)^2, \qquad
    \hat x_k = \frac{x_k - \mu_S}{\sqrt{\sigma_S^2 + \epsilon}}

(biased variance, no affine parameters), which is what PyTorch's functional ``batch_norm``
(training mode), ``layer_norm`` over ``(C, H, W)``, ``instance_norm`` and ``group_norm``
compute. ``GroupNorm`` with ``G = 1`` is LayerNorm, with ``G = C`` InstanceNorm.

:func:`shared_mask` and :func:`highlight` give the picture: the elements that share one mean
and variance with a chosen element, and their statistics. :func:`feature_maps` builds a real
tensor to look at: digit images through six fixed 3x3 filters.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FILTERS", "FILTER_NAMES", "METHODS", "feature_maps", "highlight", "n_sets",
           "normalize", "shared_mask"]

#: The four methods of Wu & He (2018), Figure 2.
METHODS = ("batch", "layer", "instance", "group")

#: Names of the six fixed 3x3 filters of :func:`feature_maps`, in channel order.
FILTER_NAMES = (
    "identity",
    "blur",
    "horizontal edges",
    "vertical edges",
    "diagonal edges",
    "Laplacian",
)

#: The filters themselves, shape (6, 3, 3), applied as cross-correlation (as CNN layers do):
#: the identity, a 3x3 box blur, Sobel filters for horizontal and vertical edges (scaled by
#: 1/4), a diagonal Sobel-like filter (1/4) and the 4-neighbour Laplacian.
FILTERS = np.array(
    [
        [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
        [[1 / 9, 1 / 9, 1 / 9], [1 / 9, 1 / 9, 1 / 9], [1 / 9, 1 / 9, 1 / 9]],
        [[0.25, 0.5, 0.25], [0, 0, 0], [-0.25, -0.5, -0.25]],
        [[0.25, 0, -0.25], [0.5, 0, -0.5], [0.25, 0, -0.25]],
        [[0.5, 0.25, 0], [0.25, 0, -0.25], [0, -0.25, -0.5]],
        [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    ],
    dtype=np.float64,
)
FILTERS.setflags(write=False)


def _check(shape: tuple[int, ...], method: str, groups: int) -> None:
    if len(shape) != 4:
        raise ValueError(f"expected a 4-D tensor (N, C, H, W), got shape {tuple(shape)}")
    if min(shape) < 1:
        raise ValueError(f"every dimension of (N, C, H, W) must be >= 1, got {tuple(shape)}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    if method == "group":
        c = shape[1]
        if not (isinstance(groups, int | np.integer) and groups >= 1 and c % groups == 0):
            divisors = [g for g in range(1, c + 1) if c % g == 0]
            raise ValueError(
                f"groups must divide the {c} channels; got {groups!r} (choose one of {divisors})"
            )


def n_sets(shape: tuple[int, int, int, int], method: str, groups: int = 2) -> int:
    """How many separate (mean, variance) pairs ``method`` computes for a tensor of ``shape``.

    ``C`` for batch, ``N`` for layer, ``N * C`` for instance, ``N * groups`` for group norm.
    """
    _check(shape, method, groups)
    n, c = shape[0], shape[1]
    return {"batch": c, "layer": n, "instance": n * c, "group": n * int(groups)}[method]


def normalize(x: np.ndarray, method: str, groups: int = 2, eps: float = 1e-5) -> np.ndarray:
    r"""Normalize ``x`` of shape ``(N, C, H, W)`` by the statistics of each element's set.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    method : {"batch", "layer", "instance", "group"}
        See the module table: the set over which one mean and variance are computed.
    groups : int
        Number of channel groups ``G`` for ``"group"`` (must divide ``C``; ignored otherwise).
    eps : float
        Added to the variance, > 0 (default 1e-5, PyTorch's).

    Returns
    -------
    ndarray of shape (N, C, H, W)
        :math:`(x - \mu_S) / \sqrt{\sigma^2_S + \epsilon}` per element, biased variance.

    Raises
    ------
    ValueError
        For a tensor that is not 4-D, an unknown method, or groups that do not divide C.
    """
    x = np.asarray(x, dtype=float)
    _check(x.shape, method, groups)
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    n, c, h, w = x.shape
    if method == "group":
        xg = x.reshape(n, int(groups), c // int(groups), h, w)
        mean = xg.mean(axis=(2, 3, 4), keepdims=True)
        var = xg.var(axis=(2, 3, 4), keepdims=True)
        return ((xg - mean) / np.sqrt(var + eps)).reshape(n, c, h, w)
    axes = {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3)}[method]
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def shared_mask(
    shape: tuple[int, int, int, int],
    method: str,
    index: tuple[int, int, int, int],
    groups: int = 2,
) -> np.ndarray:
    """Which elements share one mean and variance with the element at ``index``.

    Parameters
    ----------
    shape : tuple (N, C, H, W)
    method : {"batch", "layer", "instance", "group"}
    index : tuple (n, c, h, w)
        The chosen element (each within its dimension; negative indices are not accepted).
    groups : int
        Channel groups for ``"group"``.

    Returns
    -------
    ndarray of bool, shape (N, C, H, W)
        True on the chosen element's set: ``N * H * W`` elements for batch norm,
        ``C * H * W`` for layer norm, ``H * W`` for instance norm, ``(C / G) * H * W`` for
        group norm.
    """
    shape = tuple(int(s) for s in shape)
    _check(shape, method, groups)
    if len(index) != 4 or not all(0 <= int(i) < s for i, s in zip(index, shape, strict=True)):
        raise ValueError(f"index {tuple(index)} is outside the tensor of shape {shape}")
    n, c = int(index[0]), int(index[1])
    mask = np.zeros(shape, dtype=bool)
    if method == "batch":
        mask[:, c] = True
    elif method == "layer":
        mask[n] = True
    elif method == "instance":
        mask[n, c] = True
    else:
        k = shape[1] // int(groups)
        g = c // k
        mask[n, g * k : (g + 1) * k] = True
    return mask


def highlight(
    x: np.ndarray,
    method: str,
    index: tuple[int, int, int, int],
    groups: int = 2,
    eps: float = 1e-5,
) -> dict[str, np.ndarray]:
    """The chosen element's set, its statistics and the normalized tensor, for the picture.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    method, index, groups, eps
        As :func:`shared_mask` and :func:`normalize`.

    Returns
    -------
    dict of str to ndarray
        ``"mask"``: bool (N, C, H, W), :func:`shared_mask`.
        ``"count"``: int (), number of elements in the set.
        ``"mean"``, ``"var"``: float (), mean and biased variance of ``x`` over the set.
        ``"normalized"``: float (N, C, H, W), :func:`normalize` of the whole tensor.
        ``"n_sets"``: int (), how many separate (mean, variance) pairs the method uses.
    """
    x = np.asarray(x, dtype=float)
    mask = shared_mask(x.shape, method, index, groups)
    values = x[mask]
    return {
        "mask": mask,
        "count": np.array(values.size),
        "mean": np.array(values.mean()),
        "var": np.array(values.var()),
        "normalized": normalize(x, method, groups, eps),
        "n_sets": np.array(n_sets(x.shape, method, groups)),
    }


def _correlate_same(images: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """3x3 cross-correlation of ``images`` (N, H, W) with zero padding, same size out."""
    n, h, w = images.shape
    padded = np.zeros((n, h + 2, w + 2))
    padded[:, 1:-1, 1:-1] = images
    out = np.zeros((n, h, w))
    for di in range(3):
        for dj in range(3):
            out += kernel[di, dj] * padded[:, di : di + h, dj : dj + w]
    return out


def feature_maps(n_images: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """A real (N, C, H, W) tensor: digit images through the six fixed 3x3 :data:`FILTERS`.

    Parameters
    ----------
    n_images : int
        ``N``, 1 to 64 (default 4), images drawn without replacement from the digits
        training set (pixels scaled to [0, 1]) by ``np.random.default_rng(seed)``.
    seed : int
        Which images.

    Returns
    -------
    dict of str to ndarray
        ``"x"``: float (N, 6, 8, 8), channel ``c`` is image ``n`` cross-correlated with
        ``FILTERS[c]`` (zero padding, same 8 x 8 size), like a first convolution layer.
        ``"images"``: float (N, 8, 8); ``"labels"``: int (N,), the digits shown;
        ``"filters"``: float (6, 3, 3); ``"filter_names"``: str (6,).
    """
    if not (isinstance(n_images, int | np.integer) and 1 <= n_images <= 64):
        raise ValueError(f"n_images must be a whole number from 1 to 64, got {n_images!r}")
    from bn_core.train import digits  # cached, read-only

    data = digits("float64")
    rng = np.random.default_rng(seed)
    idx = rng.choice(data.X_train.shape[0], size=int(n_images), replace=False)
    images = np.asarray(data.X_train[idx], dtype=np.float64).reshape(-1, 8, 8)
    x = np.stack([_correlate_same(images, k) for k in FILTERS], axis=1)
    return {
        "x": x,
        "images": images,
        "labels": np.asarray(data.y_train[idx], dtype=np.int64),
        "filters": FILTERS.copy(),
        "filter_names": np.array(FILTER_NAMES),
    }
