"""graph.states / treefy_states over object graphs, and the NestedDict / FlatDict pytrees."""

import pickle

import jax
import jax.numpy as jnp
import optax
import pytest

import facade
from facade import graph, nn
from facade.graph import All, Any, FlatDict, NestedDict, Not


class Holder:
    """A plain object (not a Module): the walker goes through any object's attributes."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def param(*shape):
    return facade.ParamState(jnp.zeros(shape))


def test_sorted_paths_and_attribute_names():
    w, b = param(1, 1), param(1)
    node = Holder(weight=w, bias=b, other=3, text="x")
    found = graph.states(node)
    assert isinstance(found, FlatDict)
    assert list(found) == [("bias",), ("weight",)]
    assert found[("weight",)] is w and found[("bias",)] is b


def test_nested_lists_tuples_dicts_to_any_depth():
    s = [param(i + 1) for i in range(5)]
    node = Holder(
        layers=[Holder(w=s[0]), Holder(w=s[1])],
        pair=(s[2], {"deep": [[s[3]]]}),
        table={"b": s[4], 2: None},
    )
    found = graph.states(node)
    assert list(found) == [
        ("layers", 0, "w"),
        ("layers", 1, "w"),
        ("pair", 0),
        ("pair", 1, "deep", 0, 0),
        ("table", "b"),
    ]
    assert [found[k] for k in found] == [s[0], s[1], s[2], s[3], s[4]]


def test_ints_sort_numerically_and_before_strings():
    s = [param(1) for _ in range(12)]
    found = graph.states({"layers": s, "z": {10: s[0], 2: s[1], "a": s[2]}})
    keys = list(found)
    assert keys[:3] == [("layers", 0), ("layers", 1), ("layers", 2)]
    assert keys[10:12] == [("layers", 10), ("layers", 11)]
    # s[0..2] were found first under "layers"; nothing left under "z"
    assert len(keys) == 12


def test_shared_state_appears_once_at_first_sorted_path():
    shared = param(2)
    node = Holder(b=[shared], a=Holder(x=shared), c=shared)
    found = graph.states(node)
    assert list(found) == [("a", "x")]
    assert found[("a", "x")] is shared


def test_shared_subobject_and_cycles():
    leaf = param(1)
    sub = Holder(w=leaf)
    node = Holder(second=sub, first=sub)
    node.me = node
    sub.parent = node
    assert list(graph.states(node)) == [("first", "w")]
    cyclic = []
    cyclic.append(cyclic)
    cyclic.append(leaf)
    assert list(graph.states(cyclic)) == [(1,)]


def test_root_state_and_non_walked_objects():
    s = param(1)
    assert list(graph.states(s)) == [()]
    assert graph.states(3) == {}
    node = Holder(cls=facade.ParamState, mod=jax, fn=param, arr=jnp.ones(3), s=s)
    assert list(graph.states(node)) == [("s",)]


def test_graph_invisible_attrs():
    class Hidden(Holder):
        graph_invisible_attrs = ("cache",)

    node = Hidden(cache=param(1), w=param(1))
    assert list(graph.states(node)) == [("w",)]


def test_one_filter_and_several_filters_partition():
    p1, p2, h, plain = param(1), param(2), facade.HiddenState(jnp.zeros(1)), facade.State(0.0)
    node = Holder(p1=p1, p2=p2, h=h, plain=plain)
    params = graph.states(node, facade.ParamState)
    assert isinstance(params, FlatDict) and list(params) == [("p1",), ("p2",)]

    first, second, rest = graph.states(node, facade.ParamState, facade.State, ...)
    assert list(first) == [("p1",), ("p2",)]
    assert list(second) == [("h",), ("plain",)]  # first match wins: not repeated
    assert rest == {}

    hidden, rest = graph.states(node, facade.HiddenState, ...)
    assert list(hidden) == [("h",)]
    assert list(rest) == [("p1",), ("p2",), ("plain",)]

    only_p, only_h = graph.states(node, facade.ParamState, facade.HiddenState)
    assert list(only_p) == [("p1",), ("p2",)] and list(only_h) == [("h",)]  # plain dropped


def test_filters_see_paths_and_combinators():
    node = Holder(enc=Holder(w=param(1), b=param(1)), dec=Holder(w=param(1)))
    by_path = graph.states(node, lambda path, s: path[0] == "enc")
    assert list(by_path) == [("enc", "b"), ("enc", "w")]
    found = graph.states(node, All(facade.ParamState, Not(lambda p, s: p[-1] == "b")))
    assert list(found) == [("dec", "w"), ("enc", "w")]
    assert list(graph.states(node, Any(lambda p, s: p[-1] == "b"))) == [("enc", "b")]
    assert graph.states(node, None) == {}


def test_bad_filter_raises():
    with pytest.raises(TypeError, match="filter"):
        graph.states(Holder(w=param(1)), "ParamState")


def test_treefy_states_nested_and_to_flat():
    node = Holder(layers=[Holder(w=param(1), b=param(1))], h=facade.HiddenState(0.0))
    nested = graph.treefy_states(node)
    assert isinstance(nested, NestedDict)
    assert list(nested) == ["h", "layers"]
    assert isinstance(nested["layers"], NestedDict) and list(nested["layers"][0]) == ["b", "w"]
    assert nested["layers"][0]["w"] is node.layers[0].w
    flat = nested.to_flat()
    assert isinstance(flat, FlatDict)
    assert flat == graph.states(node)
    assert list(flat) == list(graph.states(node))
    params, rest = graph.treefy_states(node, facade.ParamState, ...)
    assert list(params) == ["layers"] and list(rest) == ["h"]


def test_treefy_states_of_a_bare_state_raises():
    with pytest.raises(ValueError, match="empty path"):
        graph.treefy_states(param(1))


def test_module_states_and_treefy_states_agree():
    # tutorial 2.2
    class LinearRegressor(nn.Module):
        def __init__(self, n_in, n_out=1):
            super().__init__()
            self.weight = facade.ParamState(jnp.zeros((n_in, n_out)))
            self.bias = facade.ParamState(jnp.zeros((n_out,)))

    model = LinearRegressor(1)
    params_method1 = model.states(facade.ParamState)
    params_method2 = graph.treefy_states(model, facade.ParamState)
    assert set(params_method1.keys()) == set(params_method2.to_flat().keys())
    assert list(params_method1) == [("bias",), ("weight",)]
    lines = [f"{p}: shape={s.value.shape}" for p, s in params_method2.to_flat().items()]
    assert lines == ["('bias',): shape=(1,)", "('weight',): shape=(1, 1)"]


def test_dicts_sort_on_construction_and_convert():
    d = NestedDict({"w": 1.0, "b": {"y": 2.0, "x": 3.0}})
    assert list(d) == ["b", "w"]
    flat = d.to_flat()
    assert list(flat) == [("b", "x"), ("b", "y"), ("w",)]
    back = flat.to_nested()
    assert back == {"b": {"x": 3.0, "y": 2.0}, "w": 1.0}
    assert isinstance(back["b"], NestedDict) and list(back["b"]) == ["x", "y"]
    assert list(FlatDict({("w",): 1, ("b", 1): 2, ("b", 0): 3})) == [("b", 0), ("b", 1), ("w",)]


def test_to_nested_conflicts():
    with pytest.raises(ValueError, match="holds a value"):
        FlatDict({("a",): 1.0, ("a", "b"): 2.0}).to_nested()
    with pytest.raises(ValueError, match="empty path"):
        FlatDict({(): 1.0}).to_nested()


def test_reprs():
    d = FlatDict({("w",): facade.ParamState(jnp.zeros((2, 1)), name="w"), ("n",): 3})
    assert repr(d) == (
        "FlatDict({\n  ('n',): 3,\n  ('w',): ParamState(float32[2, 1], name='w'),\n})"
    )
    assert repr(NestedDict()) == "NestedDict({})"
    assert repr(NestedDict({"a": NestedDict({0: 1})})) == (
        "NestedDict({\n  'a': NestedDict({\n    0: 1,\n  }),\n})"
    )


def test_pytrees_through_tree_map_keep_class_and_order():
    nested = NestedDict({"w": jnp.ones(2), "sub": NestedDict({"b": jnp.zeros(1)})})
    out = jax.tree.map(lambda x: x + 1, nested)
    assert type(out) is NestedDict and type(out["sub"]) is NestedDict
    assert list(out) == ["sub", "w"]
    flat = nested.to_flat()
    out = jax.tree.map(lambda x: x * 2, flat)
    assert type(out) is FlatDict and list(out) == [("sub", "b"), ("w",)]
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(flat)[0]]
    assert paths == ["[('sub', 'b')]", "[('w',)]"]
    # insertion order does not matter to the tree structure
    a = FlatDict({("x",): 1.0, ("y",): 2.0})
    b = FlatDict()
    b[("y",)], b[("x",)] = 2.0, 1.0
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert jax.tree.map(lambda u, v: u + v, a, b) == {("x",): 2.0, ("y",): 4.0}


def test_states_tree_map_to_values():
    node = Holder(w=facade.ParamState(jnp.ones(2)), b=facade.ParamState(jnp.zeros(1)))
    values = jax.tree.map(lambda s: s.value, graph.states(node))
    assert type(values) is FlatDict and list(values) == [("b",), ("w",)]


def test_pytrees_through_jit():
    @jax.jit
    def f(flat, nested):
        return jax.tree.map(lambda x: x * 2, flat), jax.tree.map(jnp.sum, nested)

    flat = FlatDict({("w",): jnp.ones(2), ("b",): jnp.ones(1)})
    out_flat, out_nested = f(flat, flat.to_nested())
    assert type(out_flat) is FlatDict and list(out_flat) == [("b",), ("w",)]
    assert type(out_nested) is NestedDict
    assert float(out_flat[("w",)][0]) == 2.0 and float(out_nested["w"]) == 2.0


def test_pytrees_through_optax():
    params = FlatDict({("w",): jnp.ones(2), ("b",): jnp.ones(1)})
    grads = jax.tree.map(jnp.ones_like, params)
    opt = optax.sgd(0.1)
    state = opt.init(params)
    updates, _ = opt.update(grads, state, params)
    assert type(updates) is FlatDict
    new = optax.apply_updates(params, updates)
    assert type(new) is FlatDict and jnp.allclose(new[("w",)], 0.9)
    nested = params.to_nested()
    updates, _ = opt.update(nested, opt.init(nested), nested)
    assert type(updates) is NestedDict and jnp.allclose(updates["b"], -0.1)


def test_pickle_roundtrip():
    d = FlatDict({("w",): 1.0, ("b",): 2.0})
    back = pickle.loads(pickle.dumps(d))
    assert type(back) is FlatDict and back == d and list(back) == [("b",), ("w",)]


def test_walk_reads_no_value_in_a_trace():
    from facade._state import frame

    node = Holder(w=param(1))
    with frame() as f:
        graph.states(node)
        graph.treefy_states(node)
        repr(graph.states(node))
    assert not f.reads and not f.touched
