"""nn.GroupNorm: brainstate 0.5.4's layout, errors and values (the expected numbers are what
brainstate 0.5.4 gives for the same inputs), and the definition with numpy."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import facade
from facade import nn


def test_layout_as_brainstate() -> None:
    norm = nn.GroupNorm((12,), num_groups=3)
    assert {k: v.shape for k, v in norm.weight.value.items()} == {"scale": (12,), "bias": (12,)}
    assert list(norm.states()) == [("weight",)]
    assert (norm.num_groups, norm.group_size) == (3, 4)
    by_size = nn.GroupNorm((12,), num_groups=None, group_size=4)
    assert (by_size.num_groups, by_size.group_size) == (3, 4)
    assert nn.GroupNorm((12,), num_groups=3, use_bias=False, use_scale=False).weight is None


def test_values_as_brainstate() -> None:
    norm = nn.GroupNorm((12,), num_groups=3)
    x = jnp.arange(24.0).reshape(2, 12) ** 1.5
    np.testing.assert_allclose(
        norm(x)[0, :5], [-1.1410089, -0.635275, 0.28942257, 1.4868615, -1.2991849], rtol=1e-5
    )
    x3 = jnp.arange(120.0).reshape(2, 5, 12) ** 1.2
    np.testing.assert_allclose(
        norm(x3)[0, 0, :4], [-1.3628511, -1.3365109, -1.3023372, -1.2644126], rtol=1e-5
    )


def test_is_the_definition_over_spatial_axes_and_groups() -> None:
    norm = nn.GroupNorm((6,), num_groups=2, epsilon=1e-5)
    norm.weight.value = {"scale": jnp.arange(1.0, 7.0), "bias": jnp.full(6, 0.5)}
    x = np.random.default_rng(0).normal(size=(3, 4, 6)).astype(np.float32)
    g = x.reshape(3, 4, 2, 3)
    want = (g - g.mean((1, 3), keepdims=True)) / np.sqrt(g.var((1, 3), keepdims=True) + 1e-5)
    want = want.reshape(3, 4, 6) * np.arange(1.0, 7.0) + 0.5
    np.testing.assert_allclose(norm(x), want, rtol=1e-4, atol=1e-5)


def test_num_groups_one_is_layer_norm_over_all_but_the_batch() -> None:
    x = jnp.arange(2 * 5 * 6.0).reshape(2, 5, 6) ** 1.1
    y1 = nn.GroupNorm((6,), num_groups=1)(x)
    y2 = nn.LayerNorm((5, 6), reduction_axes=(1, 2), feature_axes=-1, epsilon=1e-6)(x)
    np.testing.assert_allclose(y1, y2, rtol=1e-4, atol=1e-5)


def test_dtype_and_gradient() -> None:
    norm = nn.GroupNorm((12,), num_groups=3, dtype=jnp.float16)
    assert norm(jnp.ones((2, 12))).dtype == jnp.float16
    norm = nn.GroupNorm((4,), num_groups=2)
    grads = facade.transform.grad(lambda x: (norm(x) ** 2).sum(), grad_states=norm.weight)(
        jnp.arange(8.0).reshape(2, 4)
    )
    assert set(grads) == {"scale", "bias"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_groups": None}, "Either"),
        ({"num_groups": 3, "group_size": 4}, "Either"),
        ({"num_groups": 5}, "does not divide"),
        ({"num_groups": None, "group_size": 5}, "not multiple"),
    ],
)
def test_bad_groups_raise_value_error(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        nn.GroupNorm((12,), **kwargs)


def test_only_one_dimensional_in_size_as_brainstate() -> None:
    with pytest.raises(ValueError, match="1-d in_size"):
        nn.GroupNorm((4, 12), num_groups=3)
