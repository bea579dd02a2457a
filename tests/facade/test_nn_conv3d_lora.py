"""nn.Conv3d and nn.LoRA: brainstate 0.5.4's parameter layout and shapes (checked against
brainstate 0.5.4), and the values against plain jax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import facade
from facade import nn


class TestConv3d:
    def test_shapes_and_layout_as_brainstate(self) -> None:
        conv = nn.Conv3d((6, 6, 6, 2), 4, 3)
        assert conv.out_size == (6, 6, 6, 4)
        assert {k: v.shape for k, v in conv.weight.value.items()} == {"weight": (3, 3, 3, 2, 4)}
        assert nn.Conv3d((6, 6, 6, 2), 4, 3, stride=2, padding="VALID").out_size == (2, 2, 2, 4)
        first = nn.Conv3d((2, 6, 6, 6), 4, 3, channel_first=True, b_init=nn.init.ZeroInit())
        assert first.out_size == (4, 6, 6, 6)
        assert first.weight.value["bias"].shape == (1, 4, 1, 1, 1)
        assert first(jnp.ones((2, 6, 6, 6))).shape == (4, 6, 6, 6)

    def test_values_are_jaxs_convolution(self) -> None:
        conv = nn.Conv3d((5, 5, 5, 2), 3, (3, 2, 3), padding="VALID", b_init=0.5)
        x = jax.random.normal(jax.random.key(0), (2, 5, 5, 5, 2))
        kernel = conv.weight.value["weight"]
        want = jax.lax.conv_general_dilated(
            x, kernel, (1, 1, 1), "VALID", dimension_numbers=("NHWDC", "HWDIO", "NHWDC")
        )
        np.testing.assert_allclose(conv(x), want + 0.5, rtol=1e-5, atol=1e-5)

    def test_gradient_reaches_the_kernel(self) -> None:
        conv = nn.Conv3d((4, 4, 4, 1), 2, 2)
        grads = facade.transform.grad(lambda x: conv(x).sum(), grad_states=conv.weight)(
            jnp.ones((1, 4, 4, 4, 1))
        )
        assert grads["weight"].shape == (2, 2, 2, 1, 2)

    def test_wrong_in_size_length(self) -> None:
        with pytest.raises(ValueError):
            nn.Conv3d((6, 6, 2), 4, 3)


class TestLoRA:
    def test_standalone_layout_and_value(self) -> None:
        layer = nn.LoRA(4, 2, 3)
        w = layer.weight.value
        assert {k: v.shape for k, v in w.items()} == {"lora_a": (4, 2), "lora_b": (2, 3)}
        assert list(layer.states()) == [("weight",)]
        assert (layer.in_size, layer.out_size) == ((4,), (3,))
        x = jnp.arange(8.0).reshape(2, 4)
        np.testing.assert_allclose(layer(x), x @ w["lora_a"] @ w["lora_b"], rtol=1e-6)

    def test_wrapping_adds_the_base_output(self) -> None:
        base = nn.Linear(4, 3)
        layer = nn.LoRA(4, 2, 3, base_module=base)
        assert list(layer.states()) == [("base_module", "weight"), ("weight",)]
        x = jnp.ones((5, 4))
        w = layer.weight.value
        np.testing.assert_allclose(
            layer(x), base(x) + x @ w["lora_a"] @ w["lora_b"], rtol=1e-5, atol=1e-6
        )

    def test_in_size_sets_out_size(self) -> None:
        layer = nn.LoRA(4, 2, 3, in_size=(5, 4))
        assert (layer.in_size, layer.out_size) == ((5, 4), (5, 3))

    def test_only_the_adapter_is_trained_when_asked(self) -> None:
        base = nn.Linear(4, 3)
        layer = nn.LoRA(4, 2, 3, base_module=base)
        grads = facade.transform.grad(lambda x: layer(x).sum(), grad_states=layer.weight)(
            jnp.ones((2, 4))
        )
        assert set(grads) == {"lora_a", "lora_b"}

    def test_bad_sizes(self) -> None:
        with pytest.raises(ValueError, match="lora_rank"):
            nn.LoRA(4, 0, 3)
