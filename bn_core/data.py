"""Data sets: the seed regression problem and scikit-learn's bundled digits.

Nothing is downloaded at run time: the regression data is generated, and the digits
(1797 images of 8 x 8 pixels, 10 classes) ship inside scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: True coefficients of the seed problem, y = 2 A + 3 B + noise.
TRUE_WEIGHTS = np.array([2.0, 3.0])
FEATURE_NAMES = ("A", "B")


@dataclass(frozen=True)
class RegressionData:
    """The seed regression data set.

    Attributes
    ----------
    X : ndarray of shape (n_samples, 2)
        Columns A ~ U[1, 10] and B ~ U[1, 200], in original units.
    y : ndarray of shape (n_samples,)
        Target ``2 A + 3 B + noise * N(0, 1)``.
    true_weights : ndarray of shape (2,)
        The coefficients used to generate ``y`` (2 and 3); the true intercept is 0.
    """

    X: np.ndarray
    y: np.ndarray
    true_weights: np.ndarray = field(default_factory=TRUE_WEIGHTS.copy)


def make_regression(seed: int = 42, n: int = 100, noise: float = 0.1) -> RegressionData:
    """Generate the classic two-feature problem exactly as the seed article does.

    Draws, in this order, from ``rng = np.random.default_rng(seed)``::

        A = rng.uniform(1, 10, n)
        B = rng.uniform(1, 200, n)
        y = 2 * A + 3 * B + noise * rng.normal(size=n)

    Parameters
    ----------
    seed : int
        Seed of the generator (default 42).
    n : int
        Number of samples, at least 2 (default 100).
    noise : float
        Standard deviation of the additive Gaussian noise, >= 0 (default 0.1).

    Returns
    -------
    RegressionData
    """
    if n < 2:
        raise ValueError(f"n must be at least 2 to fit two weights by regression, got {n}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    a = rng.uniform(1, 10, n)
    b = rng.uniform(1, 200, n)
    y = 2 * a + 3 * b + noise * rng.normal(size=n)
    return RegressionData(X=np.column_stack([a, b]), y=y)


@dataclass(frozen=True)
class DigitsSplit:
    """Scaled digits, split into stratified train and test sets.

    Pixels (0..16) are divided by 16 so inputs lie in [0, 1].

    Attributes
    ----------
    X_train : ndarray of shape (n_train, 64)
    X_test : ndarray of shape (n_test, 64)
    y_train : ndarray of shape (n_train,), int labels 0..9
    y_test : ndarray of shape (n_test,), int labels 0..9
    """

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


def load_digits_split(seed: int = 0, test_size: float = 0.25, dtype=np.float64) -> DigitsSplit:
    """Load scikit-learn's bundled digits, scale to [0, 1], stratified seeded split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(dtype)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=y
    )
    return DigitsSplit(X_tr, X_te, y_tr.astype(np.int64), y_te.astype(np.int64))
