"""Tests of bn_core.network: whole-network gradient checks, structure, optimizers."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from bn_core.layers import (
    BatchNorm1d,
    BatchRenorm1d,
    GroupNorm,
    LayerNorm,
    Linear,
    Sigmoid,
    Tanh,
    softmax_cross_entropy,
)
from bn_core.network import MLP, NORMS, OPTIMIZERS, SGD, Momentum
from tests.test_layers import numeric_grad, rel_error


def _generic_point(model, rng):
    """Move every normalization layer off gamma = 1, beta = 0; for Batch Renorm put the running
    statistics where r and d are clipped (locally constant), so that finite differences of
    the real forward must equal the stop-gradient backward."""
    for layer in model.norm_layers():
        layer.params["gamma"][...] = rng.uniform(0.5, 2.0, size=layer.params["gamma"].shape)
        layer.params["beta"][...] = rng.normal(size=layer.params["beta"].shape)
    if model.norm == "brn":
        for layer in model.batchnorm_layers():
            layer.running_var[...] = 1e-5  # sigma_B / sigma >> r_max
            layer.running_mean[...] = 100.0  # (mu_B - mean) / sigma << -d_max
    saved = [(la.running_mean.copy(), la.running_var.copy()) for la in model.batchnorm_layers()]

    def forward(x):
        """A training-mode forward from the same running statistics every time."""
        for la, (rm, rv) in zip(model.batchnorm_layers(), saved, strict=True):
            la.running_mean[...], la.running_var[...] = rm, rv
        return model.forward(x, training=True)

    return forward


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_mlp_gradients_match_finite_differences(norm, activation):
    # a seed that is the same in every process (hash() of a str changes with PYTHONHASHSEED)
    rng = np.random.default_rng(zlib.crc32(f"{norm}/{activation}".encode()))
    model = MLP(4, 3, depth=2, width=6, activation=activation, norm=norm, init_scale=0.7,
                seed=1, groups=2, r_max=1.5, d_max=0.5)
    # GroupNorm: 2 groups of 3 units (2 units would pin x_hat at +-1); Batch Renorm's bounds
    # small enough that the clipped r and d do not saturate the activations
    forward = _generic_point(model, rng)
    x = rng.normal(size=(6, 4))
    logits = forward(x)
    if norm == "brn":  # the regime the docstring of _generic_point promises
        for layer in model.batchnorm_layers():
            assert np.all(layer.last_r == layer.r_max) and np.all(layer.last_d == -layer.d_max)
    upstream = rng.normal(size=logits.shape)  # random, never all ones
    dx = model.backward(upstream)
    analytic = [{k: g.copy() for k, g in layer.grads.items()} for layer in model.layers]

    def loss():
        return float(np.sum(forward(x) * upstream))

    assert rel_error(dx, numeric_grad(loss, x)) < 1e-6
    checked = 0
    for layer, grads in zip(model.layers, analytic, strict=True):
        for name, p in layer.params.items():
            err = rel_error(grads[name], numeric_grad(loss, p))
            assert err < 1e-6, f"{layer!r}.{name}: relative error {err:.2e}"
            checked += 1
    # no hidden biases right before batch norm or batch renorm; LN and GN keep theirs
    n_bias = 1 if norm in ("bn_before", "brn") else 3
    assert checked == 3 + n_bias + 2 * len(model.norm_layers())
    assert len(model.norm_layers()) == (0 if norm == "none" else 2)


@pytest.mark.parametrize("norm", NORMS)
def test_mlp_loss_gradient_through_softmax(norm):
    """The training path: softmax cross-entropy on top of the network, parameters only."""
    rng = np.random.default_rng(3)
    model = MLP(3, 4, depth=2, width=6, activation="tanh", norm=norm, init_scale=0.5, seed=2,
                groups=2, r_max=1.5, d_max=0.5)
    forward = _generic_point(model, rng)
    x, y = rng.normal(size=(5, 3)), rng.integers(0, 4, size=5)
    _, g = softmax_cross_entropy(forward(x), y)
    assert model.backward(g, need_input_grad=False) is None
    first = model.layers[0]
    analytic = first.grads["weight"].copy()
    numeric = numeric_grad(
        lambda: softmax_cross_entropy(forward(x), y)[0], first.params["weight"]
    )
    assert rel_error(analytic, numeric) < 1e-6


def test_mlp_layer_order_per_norm():
    def kinds(norm):
        return [type(layer) for layer in MLP(4, 3, depth=2, width=5, norm=norm, groups=5).layers]

    assert kinds("none") == [Linear, Sigmoid, Linear, Sigmoid, Linear]
    assert kinds("bn_before") == [Linear, BatchNorm1d, Sigmoid] * 2 + [Linear]
    assert kinds("bn_after") == [Linear, Sigmoid, BatchNorm1d] * 2 + [Linear]
    assert kinds("brn") == [Linear, BatchRenorm1d, Sigmoid] * 2 + [Linear]
    assert kinds("ln") == [Linear, LayerNorm, Sigmoid] * 2 + [Linear]
    assert kinds("gn") == [Linear, GroupNorm, Sigmoid] * 2 + [Linear]
    assert [type(la) for la in MLP(4, 3, depth=1, activation="tanh").layers] == [
        Linear,
        Tanh,
        Linear,
    ]


def test_mlp_same_seed_same_weights_across_norms():
    weights = {
        norm: [
            la.params["weight"]
            for la in MLP(8, 3, depth=3, width=6, norm=norm, seed=5, groups=2).linear_layers()
        ]
        for norm in NORMS
    }
    for norm in NORMS[1:]:
        for a, b in zip(weights["none"], weights[norm], strict=True):
            np.testing.assert_array_equal(a, b)
    shapes = [w.shape for w in weights["none"]]
    assert shapes == [(8, 6), (6, 6), (6, 6), (6, 3)]
    other = MLP(8, 3, depth=3, width=6, seed=6).linear_layers()[0].params["weight"]
    assert not np.array_equal(other, weights["none"][0])


@pytest.mark.parametrize("norm", NORMS)
def test_act_inputs_are_what_the_nonlinearity_receives(norm):
    rng = np.random.default_rng(4)
    model = MLP(4, 3, depth=3, width=6, norm=norm, seed=0, groups=2)
    x = rng.normal(size=(7, 4))
    model.forward(x)  # give batch norm some running statistics
    logits, act_inputs = model.forward_with_act_inputs(x, training=False)
    np.testing.assert_array_equal(logits, model.forward(x, training=False))
    # recompute by hand: feed each act_input to a fresh sigmoid and compare with the next layer
    h = x
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Sigmoid):
            k = i - 1
            assert k in model.act_input_index
            np.testing.assert_allclose(act_inputs[model.act_input_index.index(k)], h)
        h = layer.forward(h, training=False)
    expected_kind = {"bn_before": BatchNorm1d, "brn": BatchRenorm1d, "ln": LayerNorm,
                     "gn": GroupNorm}.get(norm, Linear)
    assert all(type(model.layers[i]) is expected_kind for i in model.act_input_index)


def test_mlp_rejects_unknown_names():
    with pytest.raises(ValueError, match="activation"):
        MLP(4, 3, activation="softplus")
    with pytest.raises(ValueError, match="norm"):
        MLP(4, 3, norm="bn_middle")


def test_sgd_step():
    rng = np.random.default_rng(5)
    layer = Linear(3, 2, init_scale=1.0, seed=0)
    layer.forward(rng.normal(size=(4, 3)))
    layer.backward(rng.normal(size=(4, 2)))
    before = {k: v.copy() for k, v in layer.params.items()}
    SGD(0.3).step([layer])
    for k in before:
        np.testing.assert_allclose(layer.params[k], before[k] - 0.3 * layer.grads[k])


def test_momentum_matches_hand_recursion():
    rng = np.random.default_rng(6)
    layer = Linear(2, 2, init_scale=1.0, seed=0)
    opt = OPTIMIZERS["momentum"](0.1, momentum=0.8)
    w = layer.params["weight"].copy()
    v = np.zeros_like(w)
    for _ in range(4):
        g = rng.normal(size=w.shape)
        layer.grads["weight"][...] = g
        layer.grads["bias"][...] = 0.0
        opt.step([layer])
        v = 0.8 * v + g
        w = w - 0.1 * v
    np.testing.assert_allclose(layer.params["weight"], w, rtol=1e-12)


@pytest.mark.parametrize("cls", [SGD, Momentum])
def test_optimizers_reject_bad_lr(cls):
    for lr in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="learning rate"):
            cls(lr)


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_flat_update_equals_per_array_update(opt_name):
    """The trainer's one-vector update does exactly what the per-layer loop does."""
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(8, 4)), rng.integers(0, 3, size=8)
    a = MLP(4, 3, depth=2, width=5, norm="bn_before", seed=3)
    b = MLP(4, 3, depth=2, width=5, norm="bn_before", seed=3)
    opt_a, opt_b = OPTIMIZERS[opt_name](0.2), OPTIMIZERS[opt_name](0.2)
    for _ in range(3):
        for model, opt, layers in ((a, opt_a, a.param_layers()), (b, opt_b, b.flat_layers())):
            _, g = softmax_cross_entropy(model.forward(x), y)
            model.backward(g)
            opt.step(layers)
    for la, lb in zip(a.param_layers(), b.param_layers(), strict=True):
        for k in la.params:
            np.testing.assert_allclose(la.params[k], lb.params[k], rtol=1e-12)
    # the layers' arrays really are views into the flat vector
    b.flat.params["all"][0] = 123.0
    assert b.layers[0].params["weight"].flat[0] == 123.0


def test_bias_before_batchnorm_is_redundant():
    """Why bn_before drops the hidden biases: batch norm's output is the same with or without."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(9, 4))
    with_bias = Linear(4, 5, init_scale=0.5, seed=1)
    with_bias.params["bias"][...] = rng.normal(size=5)
    no_bias = Linear(4, 5, init_scale=0.5, seed=1, bias=False)
    assert set(no_bias.params) == {"weight"} and set(no_bias.grads) == {"weight"}
    bn_a, bn_b = BatchNorm1d(5), BatchNorm1d(5)
    ya = bn_a.forward(with_bias.forward(x))
    yb = bn_b.forward(no_bias.forward(x))
    np.testing.assert_allclose(ya, yb, rtol=1e-10, atol=1e-12)
    g = rng.normal(size=ya.shape)
    with_bias.backward(bn_a.backward(g))
    np.testing.assert_allclose(with_bias.grads["bias"], 0.0, atol=1e-12)
    model = MLP(4, 3, depth=2, width=5, norm="bn_before")
    hidden, out = model.linear_layers()[:-1], model.linear_layers()[-1]
    assert all(not la.has_bias for la in hidden) and out.has_bias


def test_bias_before_batch_renorm_gets_no_gradient():
    """r and d are constants of the backward, and x - mu_B cancels the bias: gradient 0."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(9, 4))
    lin = Linear(4, 5, init_scale=0.5, seed=1)
    lin.params["bias"][...] = rng.normal(size=5)
    brn = BatchRenorm1d(5)
    brn.running_mean[...] = rng.normal(size=5)
    y = brn.forward(lin.forward(x))
    lin.backward(brn.backward(rng.normal(size=y.shape)))
    assert np.abs(lin.grads["weight"]).max() > 1e-3  # the weights do learn
    np.testing.assert_allclose(lin.grads["bias"], 0.0, atol=1e-12)
    hidden = MLP(4, 3, depth=2, width=5, norm="brn").linear_layers()[:-1]
    assert all(not la.has_bias for la in hidden)


@pytest.mark.parametrize("norm,groups", [("ln", 1), ("gn", 2)])
def test_layer_and_group_norm_do_not_cancel_a_per_unit_bias(norm, groups):
    """LN/GN subtract a sample's mean over units: a bias that differs between units changes
    the output and has a gradient; only a constant added to a whole group cancels."""
    rng = np.random.default_rng(10)
    x = rng.normal(size=(3, 4))
    layer_cls = {"ln": lambda: LayerNorm(6), "gn": lambda: GroupNorm(2, 6)}[norm]
    lin = Linear(4, 6, init_scale=0.5, seed=1)
    nl = layer_cls()
    y0 = nl.forward(lin.forward(x))
    g = rng.normal(size=y0.shape)
    lin.backward(nl.backward(g))
    assert np.linalg.norm(lin.grads["bias"]) > 1e-3
    bias = rng.normal(size=6)
    lin.params["bias"][...] = bias
    assert not np.allclose(nl.forward(lin.forward(x)), y0)
    per_group = np.repeat(rng.normal(size=groups), 6 // groups)  # constant within each group
    lin.params["bias"][...] = bias + per_group
    y_shift = nl.forward(lin.forward(x))
    lin.params["bias"][...] = bias
    np.testing.assert_allclose(y_shift, nl.forward(lin.forward(x)), rtol=1e-9, atol=1e-12)
    hidden = MLP(4, 3, depth=2, width=6, norm=norm, groups=groups).linear_layers()[:-1]
    assert all(la.has_bias for la in hidden)


def test_group_count_must_divide_the_width():
    with pytest.raises(ValueError, match="4 groups do not divide 50 units"):
        MLP(4, 3, width=50, norm="gn", groups=4)
    MLP(4, 3, width=50, norm="ln", groups=4)  # groups only matter for GroupNorm
