"""nn.Map (behavior='vmap'): states initialised init_map_size times, calls vectorized over them
(shapes and values as brainstate 0.5.4 gives them for the same module)."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

import facade
from facade import nn


class Dot(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shared = facade.ParamState(jnp.ones(5))

    def init_state(self, size: tuple) -> None:
        self.weight = facade.ParamState(facade.random.randn(*size))
        self.count = facade.ShortTermState(jnp.zeros(()))

    def update(self, x: jnp.ndarray) -> jnp.ndarray:
        self.count.value = self.count.value + 1
        return x @ (self.weight.value * self.shared.value)

    def double(self, x: jnp.ndarray) -> jnp.ndarray:
        return 2 * self.update(x)


def test_update_before_init_raises() -> None:
    with pytest.raises(ValueError, match="before init_all_states"):
        nn.Map(Dot(), init_map_size=3)(jnp.ones((3, 5)))


def test_created_states_are_stacked_and_mapped() -> None:
    dot = Dot()
    mapped = nn.Map(dot, init_map_size=10, in_axes=0, axis_name="batch")
    mapped.init_all_states(size=(5,))
    assert dot.weight.value.shape == (10, 5) and dot.count.value.shape == (10,)
    assert dot.shared.value.shape == (5,)  # made in __init__: shared, as in brainstate
    assert not jnp.allclose(dot.weight.value[0], dot.weight.value[1])  # independent draws
    out = mapped(jnp.ones((10, 5)))
    assert out.shape == (10,) and jnp.allclose(out, dot.weight.value.sum(-1))
    assert dot.count.value.tolist() == [1.0] * 10
    assert [len(v) for v in mapped.dict_vmap_states.values()] == [2]
    assert list(mapped.states()) == [
        ("dict_vmap_states", 0, 0),
        ("dict_vmap_states", 0, 1),
        ("module", "shared"),
    ]


def test_map_calls_another_method() -> None:
    dot = Dot()
    mapped = nn.Map(dot, init_map_size=4)
    mapped.init_all_states(size=(5,))
    out = mapped.map("double")(jnp.ones((4, 5)))
    assert jnp.allclose(out, 2 * dot.weight.value.sum(-1))
    assert dot.count.value.tolist() == [1.0] * 4


def test_unsupported_options() -> None:
    with pytest.raises(ValueError, match="behavior"):
        nn.Map(Dot(), init_map_size=2, behavior="scan")
    with pytest.raises(NotImplementedError, match="pmap2"):
        nn.Map(Dot(), init_map_size=2, behavior="pmap")
    with pytest.raises(NotImplementedError, match="axis 0"):
        nn.Map(Dot(), init_map_size=2, init_state_axes={1: facade.ParamState})
    with pytest.raises(AssertionError):
        nn.Map(Dot(), init_map_size=2.0)  # type: ignore[arg-type]
