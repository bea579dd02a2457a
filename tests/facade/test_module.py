"""nn.Module: states by attribute path through sub-modules and containers, and the repr."""

import doctest

import jax
import jax.numpy as jnp
import pytest

import facade
from facade import _filters, graph, nn
from facade.graph import FlatDict


class LinearRegressor(nn.Module):
    def __init__(self, in_features: int, out_features: int = 1):
        super().__init__()
        self.weight = facade.ParamState(jnp.zeros((in_features, out_features)))
        self.bias = facade.ParamState(jnp.zeros((out_features,)))

    def __call__(self, x):
        return x @ self.weight.value + self.bias.value


class MLP(nn.Module):
    def __init__(self):
        super().__init__(name="mlp")
        self.layers = [LinearRegressor(2, 3), LinearRegressor(3, 1)]
        self.heads = {"mean": LinearRegressor(1), "var": LinearRegressor(1)}
        self.h = facade.HiddenState(jnp.zeros(3))
        self.pair = (facade.LongTermState(jnp.zeros(())), 3)
        self.tied = self.layers[0].weight  # shared: reported once, at its first sorted path
        self.width = 3

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def test_tutorial_2_1_and_2_2():
    model = LinearRegressor(1)
    params = model.states(facade.ParamState)
    assert isinstance(params, FlatDict)
    assert [f"{p}: shape={s.value.shape}" for p, s in params.items()] == [
        "('bias',): shape=(1,)",
        "('weight',): shape=(1, 1)",
    ]
    nested = graph.treefy_states(model, facade.ParamState)
    assert set(params.keys()) == set(nested.to_flat().keys())
    xs = jnp.linspace(-1.0, 1.0, 5).reshape(-1, 1)
    assert model(xs).shape == (5, 1)


def test_nested_modules_lists_and_dicts():
    m = MLP()
    assert list(m.states()) == [
        ("h",),
        ("heads", "mean", "bias"),
        ("heads", "mean", "weight"),
        ("heads", "var", "bias"),
        ("heads", "var", "weight"),
        ("layers", 0, "bias"),
        ("layers", 0, "weight"),
        ("layers", 1, "bias"),
        ("layers", 1, "weight"),
        ("pair", 0),
    ]
    assert m.states()[("layers", 0, "weight")] is m.tied
    assert m.states() == graph.states(m)


def test_filters_and_partition():
    m = MLP()
    params, short, rest = m.states(facade.ParamState, facade.ShortTermState, ...)
    assert len(params) == 8
    assert list(short) == [("h",)]
    assert list(rest) == [("pair", 0)]
    layer0 = m.states(lambda path, s: path[:2] == ("layers", 0))
    assert list(layer0) == [("layers", 0, "bias"), ("layers", 0, "weight")]
    assert list(m.layers[1].states()) == [("bias",), ("weight",)]
    with pytest.raises(TypeError, match="filter"):
        m.states(1)


def test_states_reflect_later_assignment_and_replacement():
    m = LinearRegressor(1)
    m.extra = [facade.ParamState(jnp.ones(1))]
    assert ("extra", 0) in m.states()
    del m.extra
    m.bias = facade.ParamState(jnp.ones(4))
    assert m.states()[("bias",)].value.shape == (4,)


def test_module_without_super_init_still_works():
    class Bare(nn.Module):
        def __init__(self):
            self.w = facade.ParamState(jnp.ones(1))

    b = Bare()
    assert list(b.states()) == [("w",)] and b.name is None
    assert repr(b) == "Bare(\n  w=ParamState(float32[1]),\n)"


def test_name_and_bad_name():
    assert MLP().name == "mlp"
    assert nn.Module().name is None
    with pytest.raises(TypeError, match="name"):
        nn.Module(name=3)


def test_repr():
    assert repr(LinearRegressor(2)) == (
        "LinearRegressor(\n  weight=ParamState(float32[2, 1]),\n  bias=ParamState(float32[1]),\n)"
    )
    text = repr(MLP())
    assert text.startswith("MLP['mlp'](\n  layers=[\n    LinearRegressor(\n")
    assert "  heads={\n    'mean': LinearRegressor(\n" in text
    assert "  h=HiddenState(float32[3]),\n" in text
    assert "  pair=(\n    LongTermState(float32[]),\n  ),\n" in text
    assert "width" not in text  # plain values are not shown
    assert repr(nn.Module()) == "Module()"


def test_repr_of_cycles_and_pytree_values():
    m = nn.Module()
    m.me = m
    m.s = facade.State({"a": jnp.zeros(2), "n": 1.0}, name="s")
    assert repr(m) == (
        "Module(\n  me=Module(...),\n  s=State({'a': float32[2], 'n': 1.0}, name='s'),\n)"
    )


def test_module_is_usable_under_jax_transforms():
    m = LinearRegressor(1)
    assert jax.jit(lambda x: m(x))(jnp.ones((2, 1))).shape == (2, 1)


@pytest.mark.parametrize("module", [_filters, graph, nn])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
