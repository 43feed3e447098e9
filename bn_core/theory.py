"""Convergence theory of gradient descent on a quadratic: what the Hessian predicts.

For the mean squared error ``L(theta) = L* + (theta - theta*)^T (H / 2) (theta - theta*)`` with
constant Hessian ``H`` (eigenvalues ``0 <= lambda_min <= ... <= lambda_max``), full-batch
gradient descent with step ``alpha`` moves the error ``e_k = theta_k - theta*`` as

.. math::  e_{k+1} = (I - \\alpha H)\\, e_k,

so each eigen-component is multiplied by ``1 - alpha lambda_i`` per step. Hence

* the run is stable iff ``|1 - alpha lambda_i| < 1`` for all i, i.e. ``alpha < 2 / lambda_max``;
* the contraction factor is ``rho(alpha) = max_i |1 - alpha lambda_i|``;
* the best fixed step is ``alpha* = 2 / (lambda_min + lambda_max)`` with
  ``rho(alpha*) = (kappa - 1) / (kappa + 1)``, ``kappa = lambda_max / lambda_min``;
* the suboptimality ``L - L* = sum_i (lambda_i / 2) c_i^2 (1 - alpha lambda_i)^{2k}`` shrinks at
  least as fast as ``rho^{2k}``.

**Tolerance.** "Steps to tolerance" means the first step k with relative suboptimality
``(L_k - L*) / (L_0 - L*) <= tol``. The bound above gives the *predicted* steps
``k = ceil(log(tol) / (2 log rho))`` (a worst case over starting points).

A zero eigenvalue (a constant feature, or a feature that duplicates another) makes
``kappa`` infinite: along that direction the loss is flat, gradient descent never moves, and
the minimizer is not unique.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Eigenvalues below this fraction of lambda_max count as zero (kappa = inf).
ZERO_EIGENVALUE_RTOL = 1e-12


@dataclass(frozen=True)
class Conditioning:
    """What the Hessian says about gradient descent.

    Attributes
    ----------
    eigenvalues : ndarray of shape (p,)
        Ascending eigenvalues of ``H``.
    kappa : float
        ``lambda_max / lambda_min`` (``inf`` when ``lambda_min`` is 0).
    max_stable_lr : float
        ``2 / lambda_max``: full-batch GD diverges for larger steps.
    optimal_lr : float
        ``2 / (lambda_min + lambda_max)`` (with the smallest *non-zero* eigenvalue when
        ``kappa`` is infinite).
    optimal_rate : float
        ``(kappa - 1) / (kappa + 1)``, the contraction per step at ``optimal_lr`` (same caveat).
    note : str
        Plain-language remark (empty when the problem is well posed).
    """

    eigenvalues: np.ndarray
    kappa: float
    max_stable_lr: float
    optimal_lr: float
    optimal_rate: float
    note: str = ""

    @property
    def lambda_min(self) -> float:
        return float(self.eigenvalues[0])

    @property
    def lambda_max(self) -> float:
        return float(self.eigenvalues[-1])


def conditioning(H: np.ndarray) -> Conditioning:
    """Eigenvalues, condition number and the step sizes they imply for a symmetric PSD ``H``.

    Parameters
    ----------
    H : ndarray of shape (p, p)
        Hessian, e.g. ``(2/n) D^T D``.

    Returns
    -------
    Conditioning

    Raises
    ------
    ValueError
        ``H`` has a non-finite entry (e.g. the data's sums of squares overflowed): its
        eigenvalues, and hence kappa, would be NaN.
    """
    H = np.asarray(H, dtype=float)
    if not np.all(np.isfinite(H)):
        raise ValueError("the Hessian has non-finite entries (the data's sums of squares overflow): "
                         "rescale the data")
    eig = np.linalg.eigvalsh((H + H.T) / 2)
    lam_max = float(eig[-1])
    if lam_max <= 0:
        return Conditioning(eig, math.inf, math.inf, math.inf, 1.0,
                            "The Hessian is zero: the loss is flat and gradient descent cannot move.")
    lam_min = float(eig[0])
    note = ""
    if lam_min <= ZERO_EIGENVALUE_RTOL * lam_max:
        eig = eig.copy()
        eig[eig <= ZERO_EIGENVALUE_RTOL * lam_max] = 0.0
        kappa = math.inf
        lam_min = float(eig[eig > 0][0])  # smallest eigenvalue of the directions the data determines
        note = ("lambda_min = 0 (below 1e-12 lambda_max): a constant feature, two proportional features, or "
                "features whose scales differ by more than ~10^6 leave one direction of weights (numerically) "
                "flat. The condition number is infinite, gradient descent never moves along "
                "that direction and the least-squares solution is not unique (the minimum-norm one is "
                "shown). The optimal step and rate below are over the remaining directions.")
    else:
        kappa = lam_max / lam_min
    k_eff = lam_max / lam_min
    rate = (k_eff - 1) / (k_eff + 1)
    return Conditioning(eig, kappa, 2.0 / lam_max, 2.0 / (lam_min + lam_max), rate, note)


def contraction(eigenvalues: np.ndarray, lr: float) -> float:
    """``rho = max_i |1 - lr * lambda_i|`` over the non-zero eigenvalues (>= 1 means no convergence)."""
    eig = np.asarray(eigenvalues, dtype=float)
    eig = eig[eig > ZERO_EIGENVALUE_RTOL * max(eig.max(), 0.0)] if eig.max() > 0 else eig[:0]
    if eig.size == 0:
        return 1.0
    return float(np.max(np.abs(1.0 - lr * eig)))


def predicted_steps(eigenvalues: np.ndarray, lr: float, tol: float) -> float:
    """Steps until ``(L_k - L*) / (L_0 - L*) <= tol`` predicted by ``rho^{2k} <= tol``.

    Over the directions the data determines (non-zero eigenvalues); ``inf`` when
    ``rho >= 1`` (the step is too large, or zero). Returns a float so that ``inf`` is possible.
    """
    if not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol}")
    rho = contraction(eigenvalues, lr)
    if rho >= 1.0:
        return math.inf
    if rho == 0.0:
        return 1.0
    return float(math.ceil(math.log(tol) / (2.0 * math.log(rho))))
