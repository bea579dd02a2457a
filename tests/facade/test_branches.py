"""State-aware branches (cond, switch, ifelse), checkpoint and eval_shape against raw JAX."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from facade_testing import assert_no_tracer, assert_same

import facade
from facade import transform as T


class Counter(facade.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = facade.ParamState(jnp.array([1.0, -2.0]), name="w")
        self.hits = facade.State(jnp.array(0, jnp.int32), name="hits")
        self.last = facade.State(jnp.zeros(2), name="last")

    def up(self, x):
        self.hits.value = self.hits.value + 1
        self.last.value = x * self.w.value
        return jnp.sum(self.last.value)

    def down(self, x):
        return -jnp.sum(x * self.w.value)


def raw_branches(w, hits, last, x):
    """The explicit lax.cond both branches of Counter amount to."""

    def up(hits, last):
        last = x * w
        return jnp.sum(last), hits + 1, last

    def down(hits, last):
        return -jnp.sum(x * w), hits, last

    return up, down


@pytest.mark.parametrize("pred", [True, False, 1, 0.0])
def test_cond_writes_back_the_states_of_the_branch_that_ran(pred):
    m = Counter()
    x = jnp.array([0.5, 2.0])
    out = T.cond(pred, m.up, m.down, x)
    up, down = raw_branches(m.w.value, jnp.array(0, jnp.int32), jnp.zeros(2), x)
    raw = jax.lax.cond(bool(pred), up, down, jnp.array(0, jnp.int32), jnp.zeros(2))
    assert_same(out, raw[0])
    assert_same(m.hits.value, raw[1])
    assert_same(m.last.value, raw[2])
    assert_no_tracer(m.hits, m.last)


@pytest.mark.parametrize("index", [-3, 0, 1, 2, 9])
def test_switch_clamps_and_matches_lax_switch(index):
    s = facade.State(jnp.array(10.0), name="s")

    def make(k):
        def branch(x):
            if k == 1:
                s.value = s.value + x
            return x * k

        return branch

    branches = [make(k) for k in range(3)]
    out = T.switch(index, branches, jnp.array(2.0))
    raw = jax.lax.switch(index, [lambda x, k=k: x * k for k in range(3)], jnp.array(2.0))
    assert_same(out, raw)
    assert float(s.value) == (12.0 if min(max(index, 0), 2) == 1 else 10.0)


def test_ifelse_picks_the_true_condition_and_checks_it():
    def grade(a):
        return T.ifelse(
            [a > 5, jnp.logical_and(a > 0, a <= 5), a <= 0],
            [lambda: 2.0, lambda: 1.0, lambda: 0.0],
        )

    assert [float(grade(jnp.asarray(v))) for v in (7.0, 3.0, -1.0)] == [2.0, 1.0, 0.0]
    assert float(T.jit(grade)(jnp.asarray(3.0))) == 1.0
    with pytest.raises(ValueError, match="exactly one"):
        T.ifelse([True, True], [lambda: 1.0, lambda: 2.0])
    # without the check: the first True wins, the last branch when none is
    assert (
        float(
            T.ifelse([False, True, True], [lambda: 0.0, lambda: 1.0, lambda: 2.0], check_cond=False)
        )
        == 1.0
    )
    assert float(T.ifelse([False, False], [lambda: 0.0, lambda: 1.0], check_cond=False)) == 1.0
    # traced conditions are checked when the program runs
    bad = T.jit(lambda a: T.ifelse([a > 0, a > 1], [lambda: 0.0, lambda: 1.0]))
    with pytest.raises(Exception, match="exactly one"):
        jax.block_until_ready(bad(jnp.asarray(3.0)))


@pytest.mark.parametrize("which", ["cond", "switch", "ifelse"])
def test_gradients_through_branches_equal_raw_jax(which):
    w = facade.ParamState(jnp.array(1.5), name="w")
    h = facade.HiddenState(jnp.array(0.0), name="h")

    def hot(x):
        h.value = h.value + w.value * x
        return jnp.sin(w.value * x)

    def cold(x):
        return jnp.cos(w.value) * x

    def loss(x):
        if which == "cond":
            return T.cond(x > 0, hot, cold, x)
        if which == "switch":
            return T.switch(jnp.int32(x > 0), [cold, hot], x)
        return T.ifelse([x > 0, x <= 0], [hot, cold], x)

    def raw(wv, x):
        return jax.lax.cond(x > 0, lambda x: jnp.sin(wv * x), lambda x: jnp.cos(wv) * x, x)

    for x in (jnp.array(0.7), jnp.array(-0.4)):
        assert_same(T.grad(loss, grad_states=w)(x), jax.grad(raw)(1.5, x))
    assert_same(h.value, jnp.array(1.5 * 0.7))


def test_branch_errors_are_clear_and_leave_states():
    m = Counter()
    with pytest.raises(TypeError, match="scalar"):
        T.cond(jnp.array([True, False]), m.up, m.down, jnp.ones(2))
    with pytest.raises(TypeError, match="same structure"):
        T.cond(True, lambda: jnp.ones(2), lambda: jnp.ones(3))
    with pytest.raises(TypeError, match="integer"):
        T.switch(1.0, [m.up, m.down], jnp.ones(2))
    with pytest.raises(TypeError, match="integer"):
        T.switch(True, [m.up, m.down], jnp.ones(2))
    with pytest.raises(ValueError, match="one condition per branch"):
        T.ifelse([True], [m.up, m.down], jnp.ones(2))
    with pytest.raises(TypeError, match=r"State 'last'.*float32\[3\]"):
        T.cond(True, lambda: setattr(m.last, "value", jnp.ones(3)), lambda: None)
    assert int(m.hits.value) == 0 and m.last.value.shape == (2,)
    assert_no_tracer(m.hits, m.last)


# --- checkpoint --------------------------------------------------------------------------------


def test_checkpoint_gradients_and_writes_equal_plain():
    w = facade.ParamState(jnp.array([0.3, -0.7]), name="w")
    calls = facade.State(jnp.array(0, jnp.int32), name="calls")

    def block(x, power):
        calls.value = calls.value + 1
        return jnp.sum(jnp.sin(w.value * x) ** power)

    remat = T.checkpoint(block, static_argnums=1)
    x = jnp.array([1.0, 2.0])
    g = T.grad(lambda v: remat(v, 2), grad_states=w)(x)
    raw = jax.grad(lambda wv: jnp.sum(jnp.sin(wv * x) ** 2))(w.value)
    assert_same(g, raw)
    assert int(calls.value) == 1
    nothing = jax.checkpoint_policies.nothing_saveable
    policy = T.checkpoint(block, static_argnums=(1,), policy=nothing)
    assert_same(T.grad(lambda v: policy(v, 2), grad_states=w)(x), raw)
    assert T.remat is T.checkpoint
    # the rematerialised program really recomputes: its gradient's jaxpr holds a remat call
    reader = T.checkpoint(lambda v: jnp.sum(jnp.sin(w.value * v) ** 2))
    jaxpr = jax.make_jaxpr(T.grad(reader, grad_states=w))(x)
    assert "remat" in str(jaxpr)


# --- eval_shape ---------------------------------------------------------------------------------


def test_eval_shape_computes_nothing_and_changes_no_state():
    s = facade.State(jnp.ones(3), name="s")

    def f(x):
        s.value = s.value * x
        return {"y": s.value.sum(), "tag": "ok"}

    before = s.value
    out = T.eval_shape(f, jnp.ones(3))
    assert out == {"y": jax.ShapeDtypeStruct((), jnp.float32), "tag": "ok"}
    shapes, out2 = T.eval_shape(f, jnp.ones(3), return_state_shapes=True)
    assert shapes == {s: jax.ShapeDtypeStruct((3,), jnp.float32)} and out2 == out
    assert s.value is before


def test_an_abstract_model_is_an_input_of_eval_shape_and_refused_elsewhere():
    net = T.eval_shape(lambda: facade.nn.Linear(3, 4))
    out = T.eval_shape(net, jax.ShapeDtypeStruct((2, 3), jnp.float32))
    assert out == jax.ShapeDtypeStruct((2, 4), jnp.float32)
    with pytest.raises(TypeError, match=r"ParamState .*holds only shapes and dtypes"):
        T.jit(net)(jnp.ones((2, 3)))


def test_eval_shape_builds_an_abstract_model():
    class Net(facade.nn.Module):
        def __init__(self, n):
            super().__init__()
            self.w = facade.ParamState(jnp.zeros((n, 4)))
            self.h = facade.HiddenState(jnp.zeros(4))

    net = T.eval_shape(lambda: Net(3))
    assert isinstance(net, Net)
    assert net.w.value == jax.ShapeDtypeStruct((3, 4), jnp.float32)
    assert net.h.value == jax.ShapeDtypeStruct((4,), jnp.float32)
