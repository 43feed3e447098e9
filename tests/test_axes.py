"""Tests of bn_core.axes against an independent element-by-element loop and known identities."""

from __future__ import annotations

import itertools
import math
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bn_core.axes import (
    FILTER_NAMES,
    METHODS,
    feature_maps,
    highlight,
    n_sets,
    normalize,
    shared_mask,
)


def same_set(method, a, b, c_total, groups):
    """Do elements a and b (index tuples) share statistics? Wu & He 2018, Fig. 2, in words."""
    same_n, same_c = a[0] == b[0], a[1] == b[1]
    if method == "batch":
        return same_c
    if method == "layer":
        return same_n
    if method == "instance":
        return same_n and same_c
    k = c_total // groups
    return same_n and a[1] // k == b[1] // k


def loop_normalize(x, method, groups=2, eps=1e-5):
    """Plain Python: for every element, gather its set by the definition, mean, biased var."""
    out = np.empty_like(x)
    indices = list(itertools.product(*(range(s) for s in x.shape)))
    for a in indices:
        members = [x[b] for b in indices if same_set(method, a, b, x.shape[1], groups)]
        mean = math.fsum(members) / len(members)
        var = math.fsum((v - mean) ** 2 for v in members) / len(members)
        out[a] = (x[a] - mean) / math.sqrt(var + eps)
    return out


@pytest.mark.parametrize("method,groups", [("batch", 2), ("layer", 2), ("instance", 2),
                                           ("group", 1), ("group", 2), ("group", 3),
                                           ("group", 6)])
def test_normalize_matches_an_element_by_element_loop(method, groups):
    rng = np.random.default_rng(zlib.crc32(method.encode()) + groups)
    x = rng.normal(loc=2.0, scale=3.0, size=(2, 6, 2, 3))
    np.testing.assert_allclose(normalize(x, method, groups), loop_normalize(x, method, groups),
                               rtol=1e-10, atol=1e-12)


def test_group_norm_with_one_group_is_layer_norm_and_with_c_groups_instance_norm():
    x = np.random.default_rng(1).normal(size=(3, 6, 4, 4))
    np.testing.assert_allclose(normalize(x, "group", 1), normalize(x, "layer"), rtol=1e-12)
    np.testing.assert_allclose(normalize(x, "group", 6), normalize(x, "instance"), rtol=1e-12)
    # and the methods really differ (the identities are not trivially true)
    assert not np.allclose(normalize(x, "group", 2), normalize(x, "layer"))
    assert not np.allclose(normalize(x, "batch"), normalize(x, "instance"))


@pytest.mark.parametrize("method", METHODS)
def test_mask_is_the_set_the_statistics_come_from(method):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 6, 4, 5))
    index = (1, 4, 2, 3)
    h = highlight(x, method, index, groups=3)
    mask = h["mask"]
    expected = {"batch": 3 * 20, "layer": 6 * 20, "instance": 20, "group": 2 * 20}[method]
    assert mask[index] and int(h["count"]) == mask.sum() == expected
    # every element of the set, and no other, satisfies the definition of "same set"
    for b in itertools.product(*(range(s) for s in x.shape)):
        assert mask[b] == same_set(method, index, b, 6, 3)
    assert float(h["mean"]) == pytest.approx(float(np.mean(x[mask])))
    assert float(h["var"]) == pytest.approx(float(np.var(x[mask])))
    # the normalized values on the set are exactly (x - its mean) / its std
    np.testing.assert_allclose(h["normalized"][mask],
                               (x[mask] - h["mean"]) / np.sqrt(h["var"] + 1e-5), rtol=1e-10)
    # the number of sets: they tile the tensor
    assert int(h["n_sets"]) * expected == x.size == n_sets(x.shape, method, 3) * expected


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3), g=st.sampled_from([1, 2, 4]), k=st.integers(1, 2), hw=st.integers(1, 3),
    method=st.sampled_from(METHODS), seed=st.integers(0, 10_000),
)
def test_every_set_has_mean_zero_and_variance_near_one(n, g, k, hw, method, seed):
    x = np.random.default_rng(seed).normal(loc=5.0, scale=2.0, size=(n, g * k, hw, hw))
    y = normalize(x, method, groups=g)
    h = highlight(x, method, (n - 1, g * k - 1, hw - 1, 0), groups=g)
    vals, var = y[h["mask"]], float(h["var"])
    assert abs(vals.mean()) < 1e-9
    assert vals.var() == pytest.approx(var / (var + 1e-5), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: normalize(np.ones((2, 3, 4)), "batch"), "4-D"),
        (lambda: normalize(np.ones((2, 6, 2, 2)), "weight"), "unknown method"),
        (lambda: normalize(np.ones((2, 6, 2, 2)), "group", 4), "divide the 6 channels"),
        (lambda: normalize(np.ones((2, 6, 2, 2)), "group", 0), "divide"),
        (lambda: shared_mask((2, 6, 2, 2), "batch", (2, 0, 0, 0)), "outside"),
        (lambda: normalize(np.ones((1, 2, 2, 2)), "batch", eps=0.0), "eps"),
    ],
)
def test_bad_input_raises_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_constant_sets_stay_finite():
    y = normalize(np.full((1, 2, 3, 3), 7.0), "instance")
    assert np.all(y == 0.0)


def test_feature_maps_are_the_digits_through_the_documented_filters():
    fm = feature_maps(n_images=3, seed=5)
    x, images = fm["x"], fm["images"]
    assert x.shape == (3, 6, 8, 8) and fm["labels"].shape == (3,)
    assert tuple(fm["filter_names"]) == FILTER_NAMES
    np.testing.assert_array_equal(x[:, 0], images)  # the identity filter
    # an interior pixel of the blur channel: the mean of its 3x3 neighbourhood
    assert x[1, 1, 4, 3] == pytest.approx(images[1, 3:6, 2:5].mean())
    # Laplacian at an interior pixel by hand; vertical Sobel at the left border (zero padding)
    im = images[2]
    assert x[2, 5, 3, 4] == pytest.approx(im[2, 4] + im[4, 4] + im[3, 3] + im[3, 5] - 4 * im[3, 4])
    expected = 0.5 * 0 - 0.5 * im[4, 1] + 0.25 * (0 - im[3, 1]) + 0.25 * (0 - im[5, 1])
    assert x[2, 3, 4, 0] == pytest.approx(expected)
    assert images.min() >= 0 and images.max() <= 1 and images.max() > 0.5
    np.testing.assert_array_equal(feature_maps(3, seed=5)["x"], x)  # seeded
    assert not np.array_equal(feature_maps(3, seed=6)["labels"], fm["labels"]) or not \
        np.array_equal(feature_maps(3, seed=6)["x"], x)
    with pytest.raises(ValueError, match="n_images"):
        feature_maps(0)
