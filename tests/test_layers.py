"""Tests of bn_core.layers against independent truths.

* gradients: central finite differences of ``L = sum(forward(x) * G)`` with a RANDOM upstream
  gradient ``G`` (an all-ones ``G`` makes batch norm's input gradient exactly zero, so a
  broken backward could pass), for inputs and parameters, relative error < 1e-6;
* semantics: running statistics recomputed by hand with plain NumPy, train vs eval, the
  batch-of-one error, constant features, GroupNorm(1, C) == LayerNorm(C), and the
  per-feature mean 0 / variance 1 invariant as a Hypothesis property.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bn_core.layers import (
    ACTIVATIONS,
    BatchNorm1d,
    BatchRenorm1d,
    GroupNorm,
    LayerNorm,
    Linear,
    ReLU,
    Sigmoid,
    Tanh,
    one_sample_message,
    softmax_cross_entropy,
)

RTOL = 1e-6


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """Relative error ||a - b|| / max(||a|| + ||b||, tiny) of two arrays."""
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


def numeric_grad(f, arr: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to ``arr`` (perturbed in place)."""
    grad = np.zeros_like(arr)
    it = np.nditer(arr, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        old = arr[idx]
        arr[idx] = old + h
        fp = f()
        arr[idx] = old - h
        fm = f()
        arr[idx] = old
        grad[idx] = (fp - fm) / (2 * h)
    return grad


def check_layer_gradients(layer, x: np.ndarray, rng: np.random.Generator, training=True):
    """Compare the analytic input and parameter gradients of ``layer`` with finite differences."""
    y = layer.forward(x, training=training)
    upstream = rng.normal(size=y.shape)
    dx = layer.backward(upstream)
    analytic = {k: g.copy() for k, g in layer.grads.items()}

    def loss():
        return float(np.sum(layer.forward(x, training=training) * upstream))

    errors = {"x": rel_error(dx, numeric_grad(loss, x))}
    for name, p in layer.params.items():
        errors[name] = rel_error(analytic[name], numeric_grad(loss, p))
    # the check must exercise something: the analytic input gradient is not zero
    assert np.linalg.norm(dx) > 1e-8
    for name, err in errors.items():
        assert err < RTOL, f"{type(layer).__name__} gradient of {name}: relative error {err:.2e}"
    return errors


def randomize_affine(layer, rng):
    """Move gamma/beta away from 1/0 so their gradients are exercised at a generic point."""
    layer.params["gamma"][...] = rng.uniform(0.5, 2.0, size=layer.params["gamma"].shape)
    layer.params["beta"][...] = rng.normal(size=layer.params["beta"].shape)


# ---------------------------------------------------------------- gradient checks


@pytest.mark.parametrize("init_scale", [None, 0.3])
def test_linear_gradients(init_scale):
    rng = np.random.default_rng(1)
    layer = Linear(5, 4, init_scale=init_scale, seed=2)
    check_layer_gradients(layer, rng.normal(size=(7, 5)), rng)


@pytest.mark.parametrize("n", [2, 3, 8])
def test_batchnorm_train_gradients(n):
    rng = np.random.default_rng(n)
    layer = BatchNorm1d(4)
    randomize_affine(layer, rng)
    x = rng.normal(loc=3.0, scale=2.0, size=(n, 4))
    check_layer_gradients(layer, x, rng, training=True)


def test_batchnorm_eval_gradients():
    rng = np.random.default_rng(3)
    layer = BatchNorm1d(4)
    randomize_affine(layer, rng)
    for _ in range(3):
        layer.forward(rng.normal(size=(6, 4)), training=True)
    check_layer_gradients(layer, rng.normal(size=(5, 4)), rng, training=False)


def test_layernorm_gradients():
    rng = np.random.default_rng(4)
    layer = LayerNorm(6)
    randomize_affine(layer, rng)
    check_layer_gradients(layer, rng.normal(loc=-1.0, scale=3.0, size=(5, 6)), rng)


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_groupnorm_gradients(groups):
    rng = np.random.default_rng(10 + groups)
    layer = GroupNorm(groups, 12)
    randomize_affine(layer, rng)
    check_layer_gradients(layer, rng.normal(loc=0.5, scale=2.0, size=(4, 12)), rng)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_gradients(name):
    rng = np.random.default_rng(5)
    x = rng.normal(scale=2.0, size=(6, 5))
    if name == "relu":  # keep away from the kink at 0, where the derivative is undefined
        x[np.abs(x) < 1e-3] = 0.5
    check_layer_gradients(ACTIVATIONS[name](), x, rng)


def test_softmax_cross_entropy_gradient_and_value():
    rng = np.random.default_rng(6)
    logits = rng.normal(scale=3.0, size=(7, 5))
    labels = rng.integers(0, 5, size=7)
    loss, grad = softmax_cross_entropy(logits, labels)
    # independent value: -mean log softmax at the label, written without the max-shift
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(7), labels])), rel=1e-12)
    numeric = numeric_grad(lambda: softmax_cross_entropy(logits, labels)[0], logits)
    assert rel_error(grad, numeric) < RTOL


def test_softmax_cross_entropy_large_logits_finite():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 2000.0, 1.0]])
    loss, grad = softmax_cross_entropy(logits, np.array([0, 2]))
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert loss == pytest.approx((0.0 + 1999.0) / 2)


def test_gradient_check_detects_a_wrong_backward():
    """The checker itself can fail: drop a term of batch norm's backward and it must notice."""
    rng = np.random.default_rng(7)

    class BrokenBN(BatchNorm1d):
        def backward(self, grad_out):
            super().backward(grad_out)
            return grad_out * self.params["gamma"] * self.inv_std  # ignores the batch coupling

    layer = BrokenBN(3)
    with pytest.raises(AssertionError):
        check_layer_gradients(layer, rng.normal(size=(5, 3)), rng)


# ---------------------------------------------------------------- batch norm semantics


def test_batchnorm_running_stats_match_hand_computation():
    rng = np.random.default_rng(8)
    momentum, eps = 0.3, 1e-5
    layer = BatchNorm1d(3, eps=eps, momentum=momentum)
    rm, rv = np.zeros(3), np.ones(3)
    for step in range(5):
        n = 4 + step
        x = rng.normal(loc=[1.0, -2.0, 5.0], scale=[0.5, 2.0, 3.0], size=(n, 3))
        layer.forward(x, training=True)
        # plain NumPy, independent of the layer: unbiased variance with ddof=1
        rm = (1 - momentum) * rm + momentum * x.mean(axis=0)
        rv = (1 - momentum) * rv + momentum * x.var(axis=0, ddof=1)
        np.testing.assert_allclose(layer.last_mean, x.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(layer.last_var, x.var(axis=0), rtol=1e-12)
    np.testing.assert_allclose(layer.running_mean, rm, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, rv, rtol=1e-12)
    assert layer.num_batches_tracked == 5


def test_batchnorm_cumulative_average_when_momentum_none():
    rng = np.random.default_rng(9)
    layer = BatchNorm1d(2, momentum=None)
    batches = [rng.normal(size=(5, 2)) for _ in range(4)]
    for b in batches:
        layer.forward(b)
    np.testing.assert_allclose(layer.running_mean, np.mean([b.mean(0) for b in batches], axis=0))
    np.testing.assert_allclose(
        layer.running_var, np.mean([b.var(0, ddof=1) for b in batches], axis=0)
    )


def test_batchnorm_train_vs_eval_outputs():
    rng = np.random.default_rng(10)
    layer = BatchNorm1d(3, momentum=0.5)
    randomize_affine(layer, rng)
    gamma, beta = layer.params["gamma"].copy(), layer.params["beta"].copy()
    x = rng.normal(loc=4.0, scale=3.0, size=(10, 3))
    y_train = layer.forward(x, training=True)
    expected_train = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) * gamma + beta
    np.testing.assert_allclose(y_train, expected_train, rtol=1e-10, atol=1e-12)

    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    y_eval = layer.forward(x, training=False)
    expected_eval = (x - rm) / np.sqrt(rv + 1e-5) * gamma + beta
    np.testing.assert_allclose(y_eval, expected_eval, rtol=1e-10, atol=1e-12)
    assert not np.allclose(y_eval, y_train)  # running stats after one step differ from the batch's
    # evaluation mode changes nothing
    np.testing.assert_array_equal(layer.running_mean, rm)
    np.testing.assert_array_equal(layer.running_var, rv)
    assert layer.num_batches_tracked == 1


def test_batchnorm_eval_is_per_sample():
    """In evaluation mode a sample's output does not depend on the rest of the batch."""
    rng = np.random.default_rng(11)
    layer = BatchNorm1d(4)
    layer.forward(rng.normal(size=(8, 4)))
    x = rng.normal(size=(6, 4))
    full = layer.forward(x, training=False)
    single = layer.forward(x[2:3], training=False)
    np.testing.assert_allclose(single, full[2:3], rtol=1e-14)


@pytest.mark.parametrize("n", [0, 1])
def test_batchnorm_batch_of_one_raises_with_reason(n):
    layer = BatchNorm1d(3)
    with pytest.raises(ValueError, match="one sample has no batch variance"):
        layer.forward(np.ones((n, 3)), training=True)
    assert layer.num_batches_tracked == 0
    # evaluation mode works on a single sample
    assert layer.forward(np.ones((1, 3)), training=False).shape == (1, 3)


def test_batchnorm_constant_features_finite():
    rng = np.random.default_rng(12)
    layer = BatchNorm1d(3)
    randomize_affine(layer, rng)
    x = rng.normal(size=(6, 3))
    x[:, 1] = 7.0  # a constant feature: zero batch variance
    y = layer.forward(x)
    upstream = rng.normal(size=y.shape)
    dx = layer.backward(upstream)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
    assert all(np.all(np.isfinite(g)) for g in layer.grads.values())
    np.testing.assert_allclose(y[:, 1], layer.params["beta"][1])
    # x_hat = 0 there, so only the centring term survives: gamma / sqrt(eps) * (g - mean g)
    g1 = upstream[:, 1]
    expected = layer.params["gamma"][1] / np.sqrt(1e-5) * (g1 - g1.mean())
    np.testing.assert_allclose(dx[:, 1], expected, rtol=1e-9)
    check_layer_gradients(layer, x, rng)  # and finite differences agree


def test_batchnorm_last_quantities_survive_next_forward():
    rng = np.random.default_rng(13)
    layer = BatchNorm1d(2)
    x1 = rng.normal(size=(5, 2))
    layer.forward(x1)
    x_hat1, mean1 = layer.x_hat, layer.last_mean
    layer.forward(rng.normal(size=(5, 2)) + 10)
    np.testing.assert_allclose(mean1, x1.mean(0))
    np.testing.assert_allclose(x_hat1, (x1 - x1.mean(0)) / np.sqrt(x1.var(0) + 1e-5))


def test_batchnorm_running_stats_can_be_assigned():
    layer = BatchNorm1d(2)
    layer.running_mean = np.array([1.0, 2.0])
    layer.running_var[...] = [4.0, 9.0]
    y = layer.forward(np.array([[3.0, 2.0]]), training=False)
    np.testing.assert_allclose(y, [[2.0 / np.sqrt(4 + 1e-5), 0.0]])


def test_batchnorm_state_dict_roundtrip():
    rng = np.random.default_rng(14)
    layer = BatchNorm1d(3)
    layer.forward(rng.normal(size=(4, 3)))
    state = layer.state_dict()
    other = BatchNorm1d(3)
    other.load_state_dict(state)
    x = rng.normal(size=(5, 3))
    np.testing.assert_array_equal(other.forward(x, False), layer.forward(x, False))
    clone = layer.copy()
    clone.forward(rng.normal(size=(4, 3)))
    np.testing.assert_array_equal(layer.state_dict()["running_mean"], state["running_mean"])


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 40),
    c=st.integers(1, 12),
    loc=st.floats(-1e3, 1e3),
    log_scale=st.floats(-2, 3),
    seed=st.integers(0, 2**16),
)
def test_batchnorm_normalized_batch_has_mean0_var1(n, c, loc, log_scale, seed):
    rng = np.random.default_rng(seed)
    x = loc + 10.0**log_scale * rng.normal(size=(n, c))
    layer = BatchNorm1d(c)
    y = layer.forward(x)  # gamma = 1, beta = 0: y is x_hat
    v = x.var(axis=0)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-8)
    # exactly var / (var + eps) per feature: 1 up to eps's share
    np.testing.assert_allclose(y.var(axis=0), v / (v + 1e-5), rtol=1e-6, atol=1e-9)
    wide = v > 1e-2  # features whose spread dwarfs eps have variance 1
    np.testing.assert_allclose(y.var(axis=0)[wide], 1.0, rtol=1e-3)


# ---------------------------------------------------------------- layer norm / group norm


def test_groupnorm_one_group_equals_layernorm():
    rng = np.random.default_rng(15)
    x = rng.normal(loc=2.0, scale=4.0, size=(7, 6))
    gn, ln = GroupNorm(1, 6), LayerNorm(6)
    gamma, beta = rng.uniform(0.5, 2, 6), rng.normal(size=6)
    for layer in (gn, ln):
        layer.params["gamma"][...] = gamma
        layer.params["beta"][...] = beta
    np.testing.assert_allclose(gn.forward(x), ln.forward(x), rtol=1e-14)
    upstream = rng.normal(size=(7, 6))
    np.testing.assert_allclose(gn.backward(upstream), ln.backward(upstream), rtol=1e-14)
    # independent truth for LayerNorm: per-row statistics
    expected = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(ln.forward(x), expected * gamma + beta, rtol=1e-12)


def test_groupnorm_matches_per_group_numpy():
    rng = np.random.default_rng(16)
    x = rng.normal(size=(3, 8))
    y = GroupNorm(4, 8).forward(x)
    for g in range(4):
        block = x[:, 2 * g : 2 * g + 2]
        expected = (block - block.mean(1, keepdims=True)) / np.sqrt(
            block.var(1, keepdims=True) + 1e-5
        )
        np.testing.assert_allclose(y[:, 2 * g : 2 * g + 2], expected, rtol=1e-12)


def test_layernorm_batch_of_one_and_train_eval_identical():
    rng = np.random.default_rng(17)
    x = rng.normal(size=(1, 5))
    ln = LayerNorm(5)
    np.testing.assert_array_equal(ln.forward(x, True), ln.forward(x, False))


def test_groupnorm_rejects_indivisible_channels():
    with pytest.raises(ValueError, match="multiple"):
        GroupNorm(3, 8)


def test_groupnorm_constant_input_finite():
    layer = GroupNorm(2, 4)
    y = layer.forward(np.full((3, 4), 5.0))
    dx = layer.backward(np.random.default_rng(0).normal(size=(3, 4)))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))


# ---------------------------------------------------------------- misc


def test_linear_weight_layout_and_init():
    layer = Linear(3, 5, init_scale=0.1, seed=0)
    assert layer.params["weight"].shape == (3, 5)
    np.testing.assert_array_equal(layer.params["bias"], 0.0)
    big = Linear(400, 300, init_scale=0.1, seed=0)
    assert big.params["weight"].std() == pytest.approx(0.1, rel=0.02)
    default = Linear(400, 30, seed=0)
    assert np.abs(default.params["weight"]).max() <= 1 / np.sqrt(400)
    same = Linear(3, 5, init_scale=0.1, seed=0)
    np.testing.assert_array_equal(same.params["weight"], layer.params["weight"])
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(layer.forward(x), x @ layer.params["weight"])


def test_activation_values():
    x = np.array([[-800.0, -1.0, 0.0, 2.0, 800.0]])
    np.testing.assert_allclose(ReLU().forward(x), np.maximum(x, 0))
    np.testing.assert_allclose(Tanh().forward(x), np.tanh(x))
    with np.errstate(over="ignore"):
        expected = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(Sigmoid().forward(x), expected, rtol=1e-12, atol=1e-300)


def test_dtype_float32_preserved():
    rng = np.random.default_rng(18)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    for layer in (
        Linear(4, 4, init_scale=0.1, seed=0, dtype=np.float32),
        BatchNorm1d(4, dtype=np.float32),
        LayerNorm(4, dtype=np.float32),
        Sigmoid(),
    ):
        y = layer.forward(x)
        assert y.dtype == np.float32
        assert layer.backward(y).dtype == np.float32
        assert all(g.dtype == np.float32 for g in layer.grads.values())


# Agreement with torch.nn (outputs, gradients, running statistics, eval mode) is checked by
# benchmarks/torch_parity.py where PyTorch is installed: PyTorch is never a test dependency,
# and a test that CI always skips would only be noise.


LAYER_FACTORIES = {
    "Linear": lambda: Linear(6, 4, seed=0),
    "BatchNorm1d": lambda: BatchNorm1d(6),
    "BatchRenorm1d": lambda: BatchRenorm1d(6),
    "LayerNorm": lambda: LayerNorm(6),
    "GroupNorm": lambda: GroupNorm(2, 6),
    "ReLU": ReLU,
    "Sigmoid": Sigmoid,
    "Tanh": Tanh,
}


@pytest.mark.parametrize("name", LAYER_FACTORIES)
def test_backward_before_forward_or_after_clear_cache_says_so(name):
    """Every layer refuses a backward without a forward with the same clear RuntimeError,
    also once ``clear_cache`` has dropped the forward's arrays."""
    rng = np.random.default_rng(23)
    layer = LAYER_FACTORIES[name]()
    x = rng.normal(size=(5, 6))
    with pytest.raises(RuntimeError, match=f"{name}.backward called before forward"):
        layer.backward(rng.normal(size=(5, 6)))
    y = layer.forward(x)
    layer.backward(rng.normal(size=y.shape))  # works after a forward
    layer.clear_cache()
    # no (n, C) array of the batch survives: only parameters, gradients, running statistics
    for attr, value in vars(layer).items():
        if isinstance(value, np.ndarray):
            assert value.shape[:1] != x.shape[:1] or value.ndim < 2, (attr, value.shape)
    with pytest.raises(RuntimeError, match=f"{name}.backward called before forward"):
        layer.backward(rng.normal(size=y.shape))


# ---------------------------------------------------------------- batch renormalization


def _brn_with_running(rng, c=4, loc=0.0, log_scale=0.0, **kw):
    """A BatchRenorm1d whose running statistics are generic (not the initial 0 and 1)."""
    layer = BatchRenorm1d(c, **kw)
    randomize_affine(layer, rng)
    layer.running_mean[...] = rng.normal(loc=loc, size=c)
    layer.running_var[...] = np.exp(rng.normal(loc=log_scale, scale=0.5, size=c))
    return layer


def test_batchrenorm_r_d_output_and_running_update_match_the_paper_by_hand():
    rng = np.random.default_rng(30)
    eps, momentum, r_max, d_max = 1e-5, 0.2, 1.5, 0.4
    layer = _brn_with_running(rng, eps=eps, momentum=momentum, r_max=r_max, d_max=d_max)
    for _ in range(4):
        x = rng.normal(loc=0.5, scale=1.7, size=(6, 4))
        rm, rv = layer.running_mean.copy(), layer.running_var.copy()  # before this batch
        y = layer.forward(x, training=True)
        # plain NumPy, Ioffe (2017) Algorithm 1
        mu_b, sigma_b = x.mean(axis=0), np.sqrt(x.var(axis=0) + eps)
        sigma = np.sqrt(rv + eps)
        r = np.clip(sigma_b / sigma, 1 / r_max, r_max)
        d = np.clip((mu_b - rm) / sigma, -d_max, d_max)
        x_hat = (x - mu_b) / sigma_b * r + d
        np.testing.assert_allclose(layer.last_r, r, rtol=1e-12)
        np.testing.assert_allclose(layer.last_d, d, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(layer.x_hat, x_hat, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            y, layer.params["gamma"] * x_hat + layer.params["beta"], rtol=1e-12, atol=1e-12
        )
        np.testing.assert_allclose(
            layer.running_mean, (1 - momentum) * rm + momentum * mu_b, rtol=1e-12
        )
        np.testing.assert_allclose(
            layer.running_var, (1 - momentum) * rv + momentum * x.var(axis=0, ddof=1), rtol=1e-12
        )
    # the test exercised both clipped and unclipped values of r and d
    assert np.any(np.isclose(np.abs(layer.last_d), d_max)) or np.any(
        np.isclose(layer.last_r, r_max) | np.isclose(layer.last_r, 1 / r_max)
    )


def test_batchrenorm_unclipped_output_does_not_depend_on_the_batch():
    """The point of r and d: unclipped, x_hat = (x - running_mean) / running_sigma per sample."""
    rng = np.random.default_rng(31)
    layer = _brn_with_running(rng, r_max=1e6, d_max=1e6)
    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    x = rng.normal(size=(5, 4))
    layer.forward(x, training=True)
    np.testing.assert_allclose(layer.x_hat, (x - rm) / np.sqrt(rv + layer.eps), rtol=1e-10)


@pytest.mark.parametrize("n", [2, 3, 8])
def test_batchrenorm_gradients_with_r_and_d_held_constant(n):
    """Finite differences of the renorm formula written out in NumPy with the layer's r and d
    as constants (the stop-gradient), against the layer's backward; random upstream."""
    rng = np.random.default_rng(40 + n)
    layer = _brn_with_running(rng, loc=1.0, r_max=2.5, d_max=1.0)
    x = rng.normal(loc=1.5, scale=1.3, size=(n, 4))
    state = layer.state_dict()
    y = layer.forward(x, training=True)
    r, d = layer.last_r.copy(), layer.last_d.copy()
    assert not np.allclose(r, 1.0) and not np.allclose(d, 0.0)  # generic constants
    upstream = rng.normal(size=y.shape)
    dx = layer.backward(upstream)
    gamma, beta = layer.params["gamma"].copy(), layer.params["beta"].copy()

    def loss():
        z = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + layer.eps)
        return float(np.sum((gamma * (z * r + d) + beta) * upstream))

    assert np.linalg.norm(dx) > 1e-8
    assert rel_error(dx, numeric_grad(loss, x)) < RTOL
    assert rel_error(layer.grads["gamma"], numeric_grad(loss, gamma)) < RTOL
    assert rel_error(layer.grads["beta"], numeric_grad(loss, beta)) < RTOL
    layer.load_state_dict(state)  # the same forward again gives the same r and d
    layer.forward(x, training=True)
    np.testing.assert_array_equal(layer.last_r, r)


def test_batchrenorm_gradients_of_the_layer_itself_where_r_and_d_are_clipped():
    """Where r and d sit at their bounds they are locally constant, so the stop-gradient
    backward must equal the finite differences of the layer's own forward."""
    rng = np.random.default_rng(33)
    layer = BatchRenorm1d(3, r_max=2.0, d_max=0.5)
    randomize_affine(layer, rng)
    layer.running_var[...] = [1e-3, 1e3, 1e-3]  # sigma_B / sigma far from [1/2, 2]
    layer.running_mean[...] = [50.0, -50.0, 50.0]  # |mu_B - mean| / sigma far above 0.5
    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    x = rng.normal(size=(5, 3))

    def fresh_forward():
        # the running statistics before the batch, every time (gamma and beta as they are)
        layer.running_mean[...], layer.running_var[...] = rm, rv
        return layer.forward(x, training=True)

    y = fresh_forward()
    np.testing.assert_array_equal(layer.last_r, [2.0, 0.5, 2.0])
    np.testing.assert_array_equal(layer.last_d, [-0.5, 0.5, -0.5])
    upstream = rng.normal(size=y.shape)
    dx = layer.backward(upstream)
    analytic = {k: g.copy() for k, g in layer.grads.items()}

    def loss():
        return float(np.sum(fresh_forward() * upstream))

    assert rel_error(dx, numeric_grad(loss, x)) < RTOL
    for name, p in layer.params.items():
        assert rel_error(analytic[name], numeric_grad(loss, p)) < RTOL


def test_batchrenorm_with_r_max_1_d_max_0_is_batchnorm_exactly():
    rng = np.random.default_rng(34)
    brn, bn = BatchRenorm1d(5, momentum=0.3, r_max=1.0, d_max=0.0), BatchNorm1d(5, momentum=0.3)
    for layer in (brn, bn):
        layer.params["gamma"][...] = np.linspace(0.5, 2.0, 5)
        layer.params["beta"][...] = np.linspace(-1.0, 1.0, 5)
    for step in range(6):
        training = step != 3
        x = rng.normal(loc=2.0, scale=3.0, size=(7, 5))
        y_r, y_b = brn.forward(x, training), bn.forward(x, training)
        g = rng.normal(size=y_b.shape)
        np.testing.assert_array_equal(y_r, y_b)
        np.testing.assert_array_equal(brn.backward(g), bn.backward(g))
        for k in bn.grads:
            np.testing.assert_array_equal(brn.grads[k], bn.grads[k])
        np.testing.assert_array_equal(brn.running_mean, bn.running_mean)
        np.testing.assert_array_equal(brn.running_var, bn.running_var)
        for k in bn.params:  # a step of SGD keeps them on the same path
            brn.params[k] -= 0.1 * brn.grads[k]
            bn.params[k] -= 0.1 * bn.grads[k]


def test_batchrenorm_eval_mode_is_batchnorms_and_has_no_r_d():
    rng = np.random.default_rng(35)
    brn, bn = _brn_with_running(rng), BatchNorm1d(4)
    bn.load_state_dict(brn.state_dict())
    x = rng.normal(size=(3, 4))
    brn.forward(rng.normal(size=(4, 4)), training=True)
    bn.forward(rng.normal(size=(4, 4)), training=False)  # only to keep the states equal below
    bn.load_state_dict(brn.state_dict())
    np.testing.assert_array_equal(brn.forward(x, training=False), bn.forward(x, training=False))
    assert brn.last_r is None and brn.last_d is None
    check_layer_gradients(brn, x, rng, training=False)


@pytest.mark.parametrize("n", [0, 1])
def test_batchrenorm_batch_of_one_raises_like_batchnorm(n):
    layer = BatchRenorm1d(3)
    with pytest.raises(ValueError) as brn_err:
        layer.forward(np.ones((n, 3)), training=True)
    with pytest.raises(ValueError) as bn_err:
        BatchNorm1d(3).forward(np.ones((n, 3)), training=True)
    assert str(brn_err.value) == one_sample_message("BatchRenorm1d", n)
    assert str(bn_err.value) == str(brn_err.value).replace("BatchRenorm1d", "BatchNorm1d")
    assert "one sample has no batch variance" in str(brn_err.value)
    assert layer.num_batches_tracked == 0  # nothing changed
    assert layer.forward(np.ones((1, 3)), training=False).shape == (1, 3)  # eval mode works


@pytest.mark.parametrize("kw", [{"r_max": 0.5}, {"d_max": -1.0}, {"r_max": float("nan")}])
def test_batchrenorm_rejects_bad_bounds(kw):
    with pytest.raises(ValueError, match="r_max|d_max"):
        BatchRenorm1d(3, **kw)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 9), c=st.integers(1, 5), momentum=st.floats(0.01, 1.0),
       loc=st.floats(-5, 5), log_scale=st.floats(-3, 3), seed=st.integers(0, 10_000))
def test_batchrenorm_bounds_hold_and_r_max_1_d_max_0_is_batchnorm_property(
        n, c, momentum, loc, log_scale, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=loc, scale=np.exp(log_scale), size=(n, c))
    g = rng.normal(size=(n, c))
    brn = BatchRenorm1d(c, momentum=momentum, r_max=2.0, d_max=1.0)
    brn.running_var[...] = np.exp(rng.normal(size=c))
    brn.forward(x)
    assert np.all((brn.last_r >= 0.5) & (brn.last_r <= 2.0)) and np.all(np.abs(brn.last_d) <= 1.0)
    same, bn = BatchRenorm1d(c, momentum=momentum, r_max=1.0, d_max=0.0), BatchNorm1d(c, momentum=momentum)
    np.testing.assert_array_equal(same.forward(x), bn.forward(x))
    np.testing.assert_array_equal(same.backward(g), bn.backward(g))
