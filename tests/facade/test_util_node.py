"""facade.util (DotDict, PrettyObject, PrettyMapping, get_unique_name, FlattedDict) and
graph.Node: brainstate 0.5.4's documented behaviour, checked against brainstate 0.5.4."""

from __future__ import annotations

import copy
import pickle

import jax
import jax.numpy as jnp
import pytest

import facade
from facade.util import DotDict, PrettyMapping, PrettyObject, get_unique_name


class TestDotDict:
    def test_attribute_access_to_nested_keys(self) -> None:
        config = DotDict({"model": {"layers": 3, "units": 64}})
        assert config.model.layers == 3 and isinstance(config.model, DotDict)
        config.model.units = 128
        assert config["model"]["units"] == 128
        assert isinstance(config, dict) and config == {"model": {"layers": 3, "units": 128}}

    def test_missing_attribute_and_builtin_names(self) -> None:
        d = DotDict(a=1)
        with pytest.raises(AttributeError):
            _ = d.missing
        with pytest.raises(AttributeError, match="built-in method"):
            d.keys = 3
        del d.a
        assert d == {}

    def test_dicts_inside_lists_become_dotdicts(self) -> None:
        d = DotDict(layers=[{"n": 1}])
        assert d.layers[0].n == 1
        d.extra = {"k": {"j": 2}}
        assert d.extra.k.j == 2
        assert d.setdefault("new", {"x": 1}).x == 1

    def test_update_merges_nested_dicts(self) -> None:
        d = DotDict({"model": {"layers": 3, "units": 5}, "lr": 0.1})
        d.update({"model": {"layers": 4}}, lr=0.2)
        assert d.to_dict() == {"model": {"layers": 4, "units": 5}, "lr": 0.2}
        assert type(d.to_dict()["model"]) is dict

    def test_get_copy_deepcopy_pickle(self) -> None:
        d = DotDict({"a": {"b": 1}})
        assert d.get("nope", 7) == 7 and d.get("a").b == 1
        shallow, deep = d.copy(), d.deepcopy()
        d.a.b = 2
        assert shallow.a.b == 2 and deep.a.b == 1
        assert isinstance(shallow, DotDict) and isinstance(deep, DotDict)
        assert pickle.loads(pickle.dumps(d)) == d
        assert copy.deepcopy(d) == d
        assert repr(DotDict(x=1)) == "DotDict({'x': 1})"

    def test_is_a_pytree_in_insertion_order(self) -> None:
        d = DotDict({"w": jnp.ones(2), "b": {"x": jnp.zeros(1)}})
        assert [leaf.shape for leaf in jax.tree.leaves(d)] == [(2,), (1,)]
        doubled = jax.jit(lambda t: jax.tree.map(lambda x: x + 1, t))(d)
        assert isinstance(doubled, DotDict) and isinstance(doubled.b, DotDict)
        assert float(doubled.b.x[0]) == 1.0
        keys = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(d)[0]]
        assert keys == ["['w']", "['b']['x']"]


class TestPretty:
    def test_pretty_mapping_layout(self) -> None:
        assert str(PrettyMapping({"a": 1, "b": 2}, type_name="MyDict")) == (
            "MyDict{\n  'a': 1,\n  'b': 2\n}"
        )
        assert repr(PrettyMapping({})) == "{}"
        assert repr(PrettyMapping({"a": {"b": 1}})) == "{\n  'a': {'b': 1}\n}"

    def test_pretty_object_lists_attributes_nested(self) -> None:
        class Tree(PrettyObject):
            def __init__(self, inner: object = None):
                self.a = [1, 2]
                self.t = (1, 2)
                self.inner = inner

        assert repr(Tree(Tree())) == (
            "Tree(\n"
            "  a=[\n    1,\n    2\n  ],\n"
            "  t=(1, 2),\n"
            "  inner=Tree(\n"
            "    a=[\n      1,\n      2\n    ],\n"
            "    t=(1, 2),\n"
            "    inner=None\n"
            "  )\n"
            ")"
        )

    def test_pretty_object_cycles_and_empty(self) -> None:
        class Loop(PrettyObject):
            pass

        assert repr(Loop()) == "Loop()"
        x = Loop()
        x.me = x
        assert repr(x) == "Loop(\n  me=Loop(...)\n)"


def test_get_unique_name_counts_per_type() -> None:
    first = get_unique_name("UtilTestType")
    second = get_unique_name("UtilTestType", "pre_")
    assert first == "UtilTestType0" and second == "pre_UtilTestType1"
    assert get_unique_name("OtherUtilTestType") == "OtherUtilTestType0"


class Model(facade.graph.Node):
    def __init__(self) -> None:
        self.w = facade.ParamState(jnp.zeros(2))
        self.h = facade.HiddenState(jnp.ones(1))


class TestNodeAndFlattedDict:
    def test_node_states_are_found_and_modules_are_nodes(self) -> None:
        model = Model()
        assert list(facade.graph.states(model)) == [("h",), ("w",)]
        model.check_valid_context(lambda: "never raised")
        assert isinstance(facade.nn.Linear(2, 3), facade.graph.Node)
        assert isinstance(facade.nn.Linear(2, 3), facade.mixin.ParamDesc)

    def test_flatted_dict_is_what_states_returns(self) -> None:
        states = facade.graph.states(Model())
        assert isinstance(states, facade.util.FlattedDict)
        assert facade.util.NestedDict is facade.graph.NestedDict

    def test_filter_and_split(self) -> None:
        states = facade.graph.states(Model())
        params = states.filter(facade.ParamState)
        assert isinstance(params, facade.util.FlattedDict) and list(params) == [("w",)]
        p, h = states.filter(facade.ParamState, facade.HiddenState)
        assert (list(p), list(h)) == ([("w",)], [("h",)])
        with pytest.raises(ValueError, match="Non-exhaustive"):
            states.split(facade.ParamState)
        p, rest = states.split(facade.ParamState, ...)
        assert list(rest) == [("h",)]
        assert list(states.split(...)) == [("h",), ("w",)]

    def test_merge_and_values(self) -> None:
        model = Model()
        states = facade.graph.states(model)
        p, h = states.split(facade.ParamState, ...)
        merged = facade.util.FlattedDict.merge(p, h.to_nest())
        assert set(merged) == {("w",), ("h",)}
        values = states.to_dict_values()
        assert jnp.array_equal(values[("w",)], jnp.zeros(2))
        states.assign_dict_values({("w",): jnp.ones(2), ("h",): jnp.zeros(1)})
        assert jnp.array_equal(model.w.value, jnp.ones(2))
        with pytest.raises(KeyError, match="Invalid key"):
            states.assign_dict_values({("w",): jnp.ones(2)})
