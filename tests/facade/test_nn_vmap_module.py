"""nn.Vmap: a module vectorized over its inputs and chosen states (values as brainstate 0.5.4
gives them for the same module)."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

import facade
from facade import nn


class Acc(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = facade.ParamState(jnp.arange(3.0))
        self.h = facade.HiddenState(jnp.zeros((4, 3)))

    def update(self, x: jnp.ndarray) -> jnp.ndarray:
        self.h.value = self.h.value + x * self.w.value
        return self.h.value.sum(-1)


@pytest.mark.parametrize("states", [facade.HiddenState, {facade.HiddenState: 0}])
def test_mapped_states_get_one_lane_each(states: object) -> None:
    acc = Acc()
    out = nn.Vmap(acc, in_axes=0, vmap_states=states)(jnp.arange(4.0))
    assert out.tolist() == [0.0, 3.0, 6.0, 9.0]  # brainstate 0.5.4 gives the same
    assert acc.h.value.tolist() == [
        [0.0, 0.0, 0.0],
        [0.0, 1.0, 2.0],
        [0.0, 2.0, 4.0],
        [0.0, 3.0, 6.0],
    ]
    assert acc.w.value.tolist() == [0.0, 1.0, 2.0]  # shared, read-only


def test_states_are_the_wrapped_modules() -> None:
    vm = nn.Vmap(Acc(), vmap_states=facade.HiddenState)
    assert list(vm.states()) == [("module", "h"), ("module", "w")]


def test_vmap_runs_inside_grad() -> None:
    acc = Acc()
    vm = nn.Vmap(acc, vmap_states=facade.HiddenState)
    grads = facade.transform.grad(lambda x: vm(x).sum(), grad_states=acc.w)(jnp.ones(4))
    assert grads.tolist() == [4.0, 4.0, 4.0]


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="Module"):
        nn.Vmap(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="map axes"):
        nn.Vmap(Acc(), vmap_states={facade.HiddenState: "0"})
