"""HiddenGroupState, HiddenTreeState (several hidden variables in one array) and
catch_new_states (collecting the States a block creates): values, errors, transforms."""

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import facade
from facade.util.filter import OfType

# --------------------------------------------------------------------------------------------
# HiddenGroupState


def test_group_layout_and_names():
    value = np.arange(12.0, dtype=np.float32).reshape(2, 3, 2)
    g = facade.HiddenGroupState(value, name="grp", unit_note="none")
    assert isinstance(g, facade.HiddenState) and isinstance(g, facade.ShortTermState)
    assert g.name == "grp" and g.metadata == {"unit_note": "none"}
    assert g.varshape == (2, 3) and g.num_state == 2
    assert g.name2index == {"0": 0, "1": 1}
    assert g.value is value  # stored as given, as any State
    np.testing.assert_array_equal(g.get_value(0), value[..., 0])
    np.testing.assert_array_equal(g.get_value("1"), value[..., 1])
    np.testing.assert_array_equal(g.get_value(-1), value[..., 1])
    np.testing.assert_array_equal(g.get_value(np.int64(0)), value[..., 0])


def test_group_set_value_writes_only_the_given_variables():
    g = facade.HiddenGroupState(jnp.zeros((3, 3), jnp.float32))
    assert g.set_value({1: jnp.array([1.0, 2.0, 3.0])}) is None
    np.testing.assert_array_equal(g.value, [[0, 1, 0], [0, 2, 0], [0, 3, 0]])
    g.set_value({"2": np.full(3, 5.0), 0: jnp.array([7.0, 8.0, 9.0])})
    np.testing.assert_array_equal(g.value, [[7, 1, 5], [8, 2, 5], [9, 3, 5]])
    g.set_value([jnp.ones(3), jnp.zeros(3)])  # a list: variables 0 and 1; 2 untouched
    np.testing.assert_array_equal(g.value, [[1, 0, 5], [1, 0, 5], [1, 0, 5]])
    assert g.value.dtype == jnp.float32 and g.value.shape == (3, 3)


def test_group_keeps_its_dtype():
    g = facade.HiddenGroupState(jnp.zeros((2, 2), jnp.float32))
    g.set_value({0: np.array([1, 2], np.int32)})  # an int into a float group is fine
    assert g.value.dtype == jnp.float32
    np.testing.assert_array_equal(g.value, [[1, 0], [2, 0]])
    i = facade.HiddenGroupState(jnp.zeros((2, 2), jnp.int32))
    with pytest.raises(TypeError, match="float32 cannot be stored in a int32 group"):
        i.set_value({0: jnp.array([2.7, 1.0])})
    np.testing.assert_array_equal(i.value, np.zeros((2, 2)))  # nothing written


@pytest.mark.parametrize(
    "value, error, match",
    [
        (np.zeros(3), ValueError, "at least 2 dimensions"),
        (jnp.float32(1.0), ValueError, "at least 2 dimensions"),
        ([np.zeros(3), np.zeros(3)], TypeError, "got list"),
        (3.0, TypeError, "got float"),
    ],
)
def test_group_refuses_bad_values(value, error, match):
    with pytest.raises(error, match=match):
        facade.HiddenGroupState(value)


def test_group_access_errors():
    g = facade.HiddenGroupState(jnp.zeros((3, 2)))
    with pytest.raises(IndexError, match="index 2 out of range for 2 variables"):
        g.get_value(2)
    with pytest.raises(IndexError, match="index -3"):
        g.get_value(-3)
    with pytest.raises(KeyError, match="no variable named 'x'"):
        g.get_value("x")
    with pytest.raises(TypeError, match="int index or a str name, got 1.0"):
        g.get_value(1.0)
    with pytest.raises(ValueError, match="index -1 out of range 0..1"):
        g.set_value({-1: jnp.ones(3)})  # negative indices only for reading, as brainstate
    with pytest.raises(ValueError, match="index 5 out of range"):
        g.set_value({5: jnp.ones(3)})
    with pytest.raises(ValueError, match=r"variable 0 must have shape \(3,\), got \(2,\)"):
        g.set_value({0: jnp.ones(2)})
    with pytest.raises(TypeError, match="takes a dict"):
        g.set_value(jnp.ones(3))
    with pytest.raises(ValueError, match="no variable given"):
        g.set_value({})
    with pytest.raises(KeyError, match="'9'"):
        g.set_value({"9": jnp.ones(3)})
    np.testing.assert_array_equal(g.value, np.zeros((3, 2)))  # no failed call wrote


def test_group_with_units():
    u = pytest.importorskip("brainunit")
    g = facade.HiddenGroupState(jnp.ones((3, 2)) * u.mV)
    assert g.varshape == (3,) and g.num_state == 2
    assert u.get_unit(g.get_value(0)) == u.mV
    g.set_value({0: jnp.full(3, 0.002) * u.volt})  # 2 mV, converted to the group's unit
    assert u.get_unit(g.value) == u.mV
    np.testing.assert_allclose(u.get_mantissa(g.value), [[2, 1]] * 3, rtol=1e-6)
    with pytest.raises(u.UnitMismatchError):
        g.set_value({0: jnp.ones(3) * u.mA})
    with pytest.raises(u.UnitMismatchError):
        g.set_value({0: jnp.ones(3)})  # a plain array in a group that has a unit
    plain = facade.HiddenGroupState(jnp.zeros((3, 2)))
    with pytest.raises(u.UnitMismatchError):
        plain.set_value({0: jnp.ones(3) * u.mV})  # a unit into a plain group is not dropped


# --------------------------------------------------------------------------------------------
# HiddenTreeState


def test_tree_from_dict():
    t = facade.HiddenTreeState({"v": jnp.array([1.0, 2.0]), "w": np.array([3.0, 4.0])})
    assert isinstance(t, facade.HiddenGroupState) and isinstance(t, facade.HiddenState)
    assert isinstance(t.value, jax.Array) and t.value.dtype == jnp.float32
    np.testing.assert_array_equal(t.value, [[1, 3], [2, 4]])
    assert t.varshape == (2,) and t.num_state == 2
    assert t.name2index == {"v": 0, "w": 1} and t.index2name == {0: "v", 1: "w"}
    assert list(t.name2unit) == ["v", "w"] and list(t.index2unit) == [0, 1]
    np.testing.assert_array_equal(t.get_value("w"), [3, 4])
    np.testing.assert_array_equal(t.get_value(0), [1, 2])
    np.testing.assert_array_equal(t.get_value(-1), [3, 4])


def test_tree_from_list_and_scalars():
    t = facade.HiddenTreeState([jnp.float32(1.0), jnp.float32(5.0), jnp.float32(9.0)])
    assert t.name2index == {"0": 0, "1": 1, "2": 2}
    assert t.value.shape == (3,) and t.varshape == () and t.num_state == 3
    t.set_value({"1": jnp.float32(-5.0), 2: jnp.float32(0.5)})
    np.testing.assert_array_equal(t.value, [1.0, -5.0, 0.5])
    t.set_value([jnp.float32(2.0)])
    np.testing.assert_array_equal(t.value, [2.0, -5.0, 0.5])
    # One dtype for all: the variables' result type.
    mixed = facade.HiddenTreeState([np.ones(2, np.float16), np.zeros(2, np.float16)])
    assert mixed.value.dtype == jnp.float16


def test_tree_errors():
    with pytest.raises(ValueError, match="one shape"):
        facade.HiddenTreeState({"a": jnp.ones(2), "b": jnp.ones(3)})
    with pytest.raises(TypeError, match="variable 'a' must be a numpy or JAX array"):
        facade.HiddenTreeState({"a": 1.0})
    with pytest.raises(TypeError, match="takes a dict"):
        facade.HiddenTreeState(jnp.ones((2, 2)))
    with pytest.raises(TypeError, match="names are str, got 0"):
        facade.HiddenTreeState({0: jnp.ones(2)})
    with pytest.raises(ValueError, match="no variables"):
        facade.HiddenTreeState({})
    t = facade.HiddenTreeState({"v": jnp.zeros(2), "w": jnp.zeros(2)})
    with pytest.raises(KeyError, match="no variable named 'x'"):
        t.set_value({"x": jnp.ones(2)})
    with pytest.raises(IndexError):
        t.get_value(2)
    with pytest.raises(ValueError, match="no variable given"):
        t.set_value([])
    t.value = jnp.zeros((2, 3))  # a value of another width: the names no longer fit
    with pytest.raises(ValueError, match="3 variables on the last axis but 2 names"):
        _ = t.num_state


def test_tree_with_units():
    u = pytest.importorskip("brainunit")
    t = facade.HiddenTreeState(
        {"v": jnp.full(2, -65.0) * u.mV, "i": jnp.ones(2) * u.mA, "g": jnp.arange(2.0)}
    )
    # One dimensionless array of the mantissas, each in its variable's unit.
    assert isinstance(t.value, jax.Array)
    np.testing.assert_array_equal(t.value, [[-65, 1, 0], [-65, 1, 1]])
    assert t.name2unit["v"] == u.mV and t.index2unit[1] == u.mA
    assert u.get_unit(t.get_value("v")) == u.mV
    np.testing.assert_array_equal(u.get_mantissa(t.get_value("v")), [-65, -65])
    assert not isinstance(t.get_value("g"), u.Quantity)  # dimensionless: a plain array
    t.set_value({"v": jnp.full(2, -0.07) * u.volt, "i": jnp.array([2.0, 3.0]) * u.mA})
    np.testing.assert_allclose(t.value, [[-70, 2, 0], [-70, 3, 1]], rtol=1e-6)
    with pytest.raises(u.UnitMismatchError):
        t.set_value({"v": jnp.ones(2)})
    with pytest.raises(u.UnitMismatchError):
        t.set_value({"g": jnp.ones(2) * u.mV})


# --------------------------------------------------------------------------------------------
# Under the transforms


class _Cell(facade.nn.Module):
    """Two leaky traces in a group, a (v, i) tree, a weight."""

    def __init__(self):
        super().__init__()
        self.g = facade.HiddenGroupState(jnp.zeros((3, 2)))
        self.t = facade.HiddenTreeState({"v": jnp.zeros(3), "i": jnp.ones(3)})
        self.w = facade.ParamState(jnp.array([1.0, 2.0, 3.0]))

    def update(self, x):
        a = self.g.get_value(0) * 0.5 + x * self.w.value
        self.g.set_value({0: a, "1": self.g.get_value(1) + a})
        self.t.set_value({"v": self.t.get_value("v") + self.t.get_value("i") * x})
        return a.sum()


def _cell_step(carry, x, w):
    """The cell's step over explicit arrays: the reference."""
    g0, g1, v, i = carry
    a = g0 * 0.5 + x * w
    return (a, g1 + a, v + i * x, i), a.sum()


def test_states_finds_them_as_hidden_states():
    cell = _Cell()
    found = cell.states(facade.HiddenState)
    assert set(found.keys()) == {("g",), ("t",)}
    assert found[("g",)] is cell.g and found[("t",)] is cell.t
    assert set(cell.states(facade.ParamState).keys()) == {("w",)}


def test_for_loop_matches_lax_scan():
    cell = _Cell()
    xs = jnp.array([0.5, -1.0, 2.0, 0.25])
    out = facade.transform.for_loop(cell.update, xs)
    w = jnp.array([1.0, 2.0, 3.0])
    init = (jnp.zeros(3), jnp.zeros(3), jnp.zeros(3), jnp.ones(3))
    (g0, g1, v, i), ref = jax.lax.scan(lambda c, x: _cell_step(c, x, w), init, xs)
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    np.testing.assert_allclose(cell.g.value, jnp.stack([g0, g1], -1), rtol=1e-6)
    np.testing.assert_allclose(cell.t.value, jnp.stack([v, i], -1), rtol=1e-6)
    assert cell.g.value.shape == (3, 2) and cell.t.value.dtype == jnp.float32


def test_jit_writes_back_each_call():
    cell = _Cell()
    step = facade.transform.jit(cell.update)
    w = jnp.array([1.0, 2.0, 3.0])
    carry = (jnp.zeros(3), jnp.zeros(3), jnp.zeros(3), jnp.ones(3))
    for x in (1.0, 2.0):
        carry, ref = _cell_step(carry, x, w)
        np.testing.assert_allclose(step(x), ref, rtol=1e-6)
        np.testing.assert_allclose(cell.g.value, jnp.stack(carry[:2], -1), rtol=1e-6)
        np.testing.assert_allclose(cell.t.value, jnp.stack(carry[2:], -1), rtol=1e-6)
    assert not isinstance(cell.g.value, jax.core.Tracer)


def test_grad_through_a_group():
    g = facade.HiddenGroupState(jnp.array([[1.0, 2.0], [3.0, 4.0]]))
    w = facade.ParamState(jnp.array([0.5, -1.0]))

    def loss():
        return jnp.sum(g.get_value(1) ** 2 * w.value) + jnp.sum(g.get_value("0"))

    grads = facade.transform.grad(loss, grad_states=[g, w])()

    def ref(gv, wv):
        return jnp.sum(gv[:, 1] ** 2 * wv) + jnp.sum(gv[:, 0])

    gg, gw = jax.grad(ref, argnums=(0, 1))(g.value, w.value)
    np.testing.assert_allclose(grads[0], gg)  # [[1, 2*2*0.5], [1, 2*4*(-1)]]
    np.testing.assert_allclose(grads[0], [[1.0, 2.0], [1.0, -8.0]])
    np.testing.assert_allclose(grads[1], gw)
    np.testing.assert_allclose(g.value, [[1.0, 2.0], [3.0, 4.0]])  # grad does not write


def test_created_inside_jit():
    @facade.transform.jit
    def build(x):
        h = facade.HiddenGroupState(jnp.stack([x, 2 * x], -1))
        h.set_value({1: h.get_value(0) + 10.0})
        t = facade.HiddenTreeState({"a": x, "b": -x})
        t.set_value({"b": t.get_value("a") * 3})
        return h.value, t.value, h.num_state

    h, t, n = build(jnp.array([1.0, 2.0]))
    np.testing.assert_array_equal(h, [[1, 11], [2, 12]])
    np.testing.assert_array_equal(t, [[1, 3], [2, 6]])
    assert int(n) == 2


# --------------------------------------------------------------------------------------------
# catch_new_states


def test_catch_collects_the_block_and_tags():
    before = facade.State(0.0)
    with facade.catch_new_states("new") as catcher:
        a = facade.ShortTermState(jnp.zeros(2))
        b = facade.ParamState(jnp.ones(2), name="b")
        a.value = a.value + 1.0  # a write creates nothing
    after = facade.State(3.0)
    assert catcher.states == [a, b] and catcher.get_states() == [a, b]
    assert list(catcher) == [a, b] and len(catcher) == 2 and catcher[1] is b
    assert a in catcher and before not in catcher and after not in catcher
    assert a.metadata["tag"] == "new" and b.metadata == {"tag": "new"}
    assert "tag" not in before.metadata and "tag" not in after.metadata
    assert catcher.state_ids == {id(a), id(b)}
    values = catcher.get_state_values()
    np.testing.assert_array_equal(values[0], [1.0, 1.0])
    np.testing.assert_array_equal(catcher.values[1], [1.0, 1.0])


def test_catch_nested_adds_every_tag():
    with facade.catch_new_states("outer") as outer:
        a = facade.State(jnp.zeros(1))
        with facade.catch_new_states("inner") as inner:
            b = facade.ParamState(jnp.ones(1))
        c = facade.ShortTermState(jnp.ones(1), tag="mine")
        d = facade.State(jnp.ones(1), tag="outer")
    assert outer.states == [a, b, c, d] and inner.states == [b]
    assert a.metadata["tag"] == "outer"
    assert b.metadata["tag"] == {"inner", "outer"}
    assert c.metadata["tag"] == {"mine", "outer"}
    assert d.metadata["tag"] == "outer"  # already tagged so: unchanged
    assert outer.get_by_tag("inner") == [b] and outer.get_by_tag("mine") == [c]
    assert outer.get_by_tag("outer") == [a, b, c, d] and inner.get_by_tag("x") == []


def test_catch_without_tag_and_with_exclusions():
    listed = ["x"]
    with facade.catch_new_states() as plain:
        p = facade.State(1.0, tag=listed)
    assert plain.states == [p] and p.metadata["tag"] is listed  # no tag added
    with facade.catch_new_states("t", state_to_exclude=facade.ParamState) as by_class:
        facade.ParamState(1.0)
        s = facade.State(2.0)
    assert by_class.states == [s]
    with facade.catch_new_states("t", state_to_exclude=OfType(facade.ShortTermState)) as by_filter:
        h = facade.HiddenState(jnp.zeros(1))
        q = facade.ParamState(1.0)
    assert by_filter.states == [q] and "tag" not in h.metadata
    with facade.catch_new_states(state_to_exclude=lambda path, st: st.name == "skip") as by_fn:
        facade.State(1.0, name="skip")
        k = facade.State(1.0, name="keep")
    assert by_fn.states == [k]
    with pytest.raises(TypeError, match="state_tag"):
        with facade.catch_new_states(3):
            pass


def test_catch_remove_clear_and_exit_on_error():
    with pytest.raises(RuntimeError, match="boom"):
        with facade.catch_new_states("e") as catcher:
            a = facade.State(1.0)
            b = facade.State(2.0)
            raise RuntimeError("boom")
    late = facade.State(0.0)  # the block is closed even though it raised
    assert catcher.states == [a, b] and late not in catcher
    catcher.remove(a)
    catcher.remove(late)  # not caught: ignored
    assert catcher.states == [b] and a not in catcher
    catcher.clear()
    assert len(catcher) == 0 and list(catcher) == []


def test_catch_is_per_thread():
    made = []
    with facade.catch_new_states("here") as catcher:
        t = threading.Thread(target=lambda: made.append(facade.State(1.0)))
        t.start()
        t.join()
        mine = facade.State(2.0)
    assert catcher.states == [mine] and "tag" not in made[0].metadata


def test_catch_inside_jit_sees_traced_values():
    seen = []

    @facade.transform.jit
    def f(x):
        with facade.catch_new_states("j") as c:
            s = facade.State(x * 2)
            s.value = s.value + 1
        seen.append((len(c), c[0] is s, isinstance(c.values[0], jax.core.Tracer)))
        return c.values[0] * 10

    np.testing.assert_allclose(f(jnp.float32(1.5)), 40.0)
    assert seen == [(1, True, True)]


def test_catch_around_a_transform_keeping_its_state_local():
    # The State lives only in the trace: it is caught while alive and leaves the catcher with
    # it; the transform does not see it as kept (no "created ... and kept it" error).
    def body(i):
        s = facade.State(i * 1.0)
        return s.value * 2

    with facade.catch_new_states("o") as catcher:
        ys = facade.transform.for_loop(body, jnp.arange(3))
        z = facade.transform.jit(lambda x: facade.State(x).value + 1)(jnp.float32(1.0))
    np.testing.assert_array_equal(ys, [0.0, 2.0, 4.0])
    assert float(z) == 2.0
    assert catcher.states == []


def test_catch_around_vmap_new_states_gets_the_kept_states_once():
    class M(facade.nn.Module):
        def init_state(self):
            self.h = facade.HiddenState(jnp.zeros(3))

    m = M()
    with facade.catch_new_states("outer") as catcher:
        facade.transform.vmap_new_states(m.init_state, axis_size=4, state_tag="v")()
    # The probe's throwaway pass is not caught: only the State the module keeps.
    assert catcher.states == [m.h]
    assert m.h.metadata["tag"] == {"outer", "v"}
    assert m.h.value.shape == (4, 3)


def test_catch_around_eval_shape_keeps_the_built_model():
    with facade.catch_new_states("shape") as catcher:
        cell = facade.transform.eval_shape(_Cell)
    assert catcher.states == [cell.g, cell.t, cell.w]
    assert cell.g.metadata["tag"] == "shape"


def test_brainstate_state_module_names():
    from facade.compat import _state

    assert _state.catch_new_states is facade.catch_new_states
    assert _state.HiddenGroupState is facade.HiddenGroupState
    assert _state.HiddenTreeState is facade.HiddenTreeState
    assert isinstance(_state.NewStateCatcher("t"), _state.NewStateCatcher)


def test_without_brainunit(monkeypatch):
    # Without brainunit nothing carries a unit: the tree keeps None as each unit.
    from facade.compat import _hidden_group

    monkeypatch.setattr(_hidden_group, "_brainunit", lambda: None)
    t = facade.HiddenTreeState({"v": jnp.zeros(2), "w": jnp.ones(2)})
    assert t.name2unit == {"v": None, "w": None} and t.index2unit == {0: None, 1: None}
    t.set_value({"w": jnp.array([5.0, 6.0])})
    np.testing.assert_array_equal(t.get_value("w"), [5.0, 6.0])
    g = facade.HiddenGroupState(jnp.zeros((2, 2)))
    g.set_value({1: jnp.array([1.0, 2.0])})
    np.testing.assert_array_equal(g.value, [[0.0, 1.0], [0.0, 2.0]])
