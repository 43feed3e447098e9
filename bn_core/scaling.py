"""Input scaling: min-max, z-score, per-batch standardization, and the way back to original units.

Every scaler here is affine and per feature, ``x' = (x - shift) / scale``, so a linear model
fitted on scaled inputs,

.. math::  \\hat y = w' \\cdot x' + b' = \\sum_j w'_j \\frac{x_j - s_j}{d_j} + b',

is the same function as a linear model on the original inputs with

.. math::  w_j = \\frac{w'_j}{d_j}, \\qquad b = b' - \\sum_j \\frac{w'_j s_j}{d_j}.

:func:`to_original_units` and :func:`from_original_units` implement that pair of maps.

A constant feature (zero range or zero variance) would make ``scale`` zero. Like
scikit-learn's ``StandardScaler`` and ``MinMaxScaler``, the scale of such a feature is set
to 1 (the feature is only shifted, to 0) and the scaler reports it in ``constant``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Batch normalization's default epsilon (PyTorch, Keras): added to the batch variance.
BN_EPS = 1e-5


@dataclass(frozen=True)
class Scaler:
    """A fitted per-feature affine scaler ``x' = (x - shift) / scale``.

    Attributes
    ----------
    kind : str
        ``"minmax"`` or ``"standardized"``.
    shift : ndarray of shape (n_features,)
        Subtracted first: the minimum (min-max) or the mean (z-score).
    scale : ndarray of shape (n_features,)
        Divided next: the range (min-max) or the biased standard deviation (z-score);
        1 for a constant feature.
    constant : ndarray of bool, shape (n_features,)
        True where the feature was constant and its scale was set to 1.
    """

    kind: str
    shift: np.ndarray
    scale: np.ndarray
    constant: np.ndarray

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scale ``X`` of shape (n_samples, n_features); returns the same shape."""
        return (np.asarray(X, dtype=float) - self.shift) / self.scale

    def inverse_transform(self, Xs: np.ndarray) -> np.ndarray:
        """Undo :meth:`transform`: ``x = x' * scale + shift``."""
        return np.asarray(Xs, dtype=float) * self.scale + self.shift


def _safe_scale(raw_scale: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace (numerically) zero scales by 1; return ``(scale, constant_mask)``.

    A scale is "zero" when it is at most ``1e-12`` times the feature's magnitude (or exactly 0),
    which catches a constant column even after floating-point round-off (its spread is a few
    ulps, ~1e-16 of its magnitude). The threshold is purely relative, so a feature that varies
    on a tiny scale (values ~1e-20) is not mistaken for a constant one.
    """
    constant = raw_scale <= 1e-12 * np.abs(reference)
    return np.where(constant, 1.0, raw_scale), constant


def fit_minmax(X: np.ndarray) -> Scaler:
    """Min-max scaler to [0, 1]: ``x' = (x - min) / (max - min)``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    Scaler
        ``kind="minmax"``. Min-max scales but does **not** center: the mean of ``x'`` is not 0,
        so a model with an intercept still couples the intercept with the weights.
    """
    X = np.asarray(X, dtype=float)
    lo, hi = X.min(axis=0), X.max(axis=0)
    scale, constant = _safe_scale(hi - lo, np.maximum(np.abs(lo), np.abs(hi)))
    return Scaler("minmax", lo, scale, constant)


def fit_standard(X: np.ndarray) -> Scaler:
    """Z-score scaler with the data set's statistics: ``x' = (x - mean) / std``.

    ``std`` is the biased standard deviation (``ddof=0``), as scikit-learn's
    ``StandardScaler`` and batch normalization use.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    Scaler
        ``kind="standardized"``; every non-constant column of ``transform(X)`` has mean 0 and
        variance 1.
    """
    X = np.asarray(X, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):  # inf (no warning) when squares overflow
        mean = X.mean(axis=0)
        std = X.std(axis=0)
    scale, constant = _safe_scale(std, mean)
    return Scaler("standardized", mean, scale, constant)


def batch_standardize(Xb: np.ndarray, eps: float = BN_EPS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardize one mini-batch by its own statistics, as batch normalization does in training.

    .. math::  \\mu_B = \\frac1m \\sum_i x_i, \\quad \\sigma_B^2 = \\frac1m \\sum_i (x_i-\\mu_B)^2,
               \\quad \\hat x_i = \\frac{x_i - \\mu_B}{\\sqrt{\\sigma_B^2 + \\epsilon}}

    Parameters
    ----------
    Xb : ndarray of shape (m, n_features)
        The mini-batch, ``m >= 1``. With ``m = 1`` the variance is 0 and ``x_hat`` is exactly 0:
        a single sample carries no batch statistics (PyTorch refuses such a batch in training).
    eps : float
        Added to the variance (default 1e-5).

    Returns
    -------
    x_hat : ndarray of shape (m, n_features)
    mean : ndarray of shape (n_features,)
    var : ndarray of shape (n_features,)
        The biased batch variance (what the normalization divides by).
    """
    Xb = np.asarray(Xb, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN (no warning) when squares overflow
        mean = Xb.mean(axis=0)
        var = Xb.var(axis=0)
        return (Xb - mean) / np.sqrt(var + eps), mean, var


def to_original_units(w: np.ndarray, b: float, shift: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, float]:
    """Map weights learned on scaled inputs back to the original units.

    Parameters
    ----------
    w : ndarray of shape (n_features,)
        Weights on ``x' = (x - shift) / scale``.
    b : float
        Intercept on the scaled inputs.
    shift, scale : ndarray of shape (n_features,)

    Returns
    -------
    w_orig : ndarray of shape (n_features,)
        ``w / scale``.
    b_orig : float
        ``b - sum(w * shift / scale)``; the same predictions as ``(w, b)`` on scaled inputs.
    """
    w = np.asarray(w, dtype=float)
    w_orig = w / scale
    return w_orig, float(b - np.sum(w_orig * shift))


def from_original_units(w_orig: np.ndarray, b_orig: float, shift: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, float]:
    """Inverse of :func:`to_original_units`: ``w = w_orig * scale``, ``b = b_orig + sum(w_orig * shift)``."""
    w_orig = np.asarray(w_orig, dtype=float)
    return w_orig * scale, float(b_orig + np.sum(w_orig * shift))
