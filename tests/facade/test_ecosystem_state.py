"""What brainstate's client libraries need of ``State`` (issue 18): subclassing together with a
slotted array class (brainpy's ``Variable``), the read/write recording hooks, ``State.init``,
and a nested transform closing over a tracer of the enclosing one (``nn.exp_euler_step``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import facade
from facade import _state
from facade.compat import _state as compat_state


class Box:
    """A stand-in for brainpy's ``Array``: its value in a slot, read back through ``value``."""

    __slots__ = ("_value",)

    def __init__(self, value):
        self._value = jnp.asarray(value)

    @property
    def value(self):
        return self._value

    def __add__(self, other):
        return self.value + other


class Variable(facade.State, Box):
    """brainpy's pattern: ``value`` records the access, then goes through the State hooks."""

    def __init__(self, value):
        Box.__init__(self, value)
        facade.State.__init__(self, self._value)

    @property
    def value(self):
        compat_state.record_state_value_read(self)
        return self._read_value()

    @value.setter
    def value(self, v):
        self._check_value_tree(v)
        compat_state.record_state_value_write(self)
        self._write_value(v)


def test_state_combines_with_a_slotted_array_class():
    v = Variable(jnp.ones(3))
    assert "_value" in Box.__slots__
    assert isinstance(v, facade.State) and isinstance(v, Box)
    v.value = v.value * 2.0
    np.testing.assert_array_equal(v.value, 2.0 * np.ones(3))
    np.testing.assert_array_equal(v + 1.0, 3.0 * np.ones(3))  # Box's operator sees the write


def test_subclass_value_is_traced_through_frames_and_never_holds_a_tracer():
    v = Variable(jnp.ones(3))

    @facade.transform.jit
    def step(x):
        v.value = v.value + x
        return v.value * 2.0

    out = step(jnp.full(3, 2.0))
    np.testing.assert_array_equal(out, 6.0 * np.ones(3))
    np.testing.assert_array_equal(v.value, 3.0 * np.ones(3))  # written back after the call
    assert not isinstance(v._value, jax.core.Tracer)
    out = step(jnp.full(3, 1.0))  # the compiled program reads the State's new value
    np.testing.assert_array_equal(v.value, 4.0 * np.ones(3))

    def loss(w):
        v.value = v.value * w
        return jnp.sum(v.value)

    g = facade.transform.grad(loss)(jnp.float32(2.0))
    np.testing.assert_allclose(g, 12.0)  # d/dw sum(4 * w) over 3 elements
    np.testing.assert_array_equal(v.value, 8.0 * np.ones(3))


def test_record_hooks_mark_reads_and_writes_in_every_frame():
    s = facade.State(jnp.zeros(2))
    with _state.frame() as outer, _state.frame() as inner:
        compat_state.record_state_value_read(s)
        assert s in outer.reads and s in inner.reads
        compat_state.record_state_value_write(s)
        assert s in outer.writes and s in inner.writes and s in inner.touched
    # Outside any frame there is nothing to record, and nothing is stored.
    compat_state.record_state_value_read(s)
    compat_state.record_state_value_write(s)
    np.testing.assert_array_equal(s.value, np.zeros(2))


def test_write_value_refuses_a_tracer_of_a_raw_transform():
    v = Variable(jnp.ones(2))

    def f(x):
        v.value = x
        return x

    with pytest.raises(TypeError, match="raw JAX|jax.vmap"):
        jax.jit(f)(jnp.ones(2))
    np.testing.assert_array_equal(v.value, np.ones(2))


def test_state_init_matches_brainstate_param_rules():
    h = facade.HiddenState.init(jnp.zeros, (3,), batch_size=2)
    assert type(h) is facade.HiddenState and h.value.shape == (2, 3)
    p = facade.ParamState.init(jnp.arange(3.0), 3)
    np.testing.assert_array_equal(p.value, np.arange(3.0))
    s = facade.ShortTermState.init(0.5, (4,))
    assert s.value == 0.5  # a number is kept as it is, as braintools.init.param does
    assert facade.State.init(jnp.ones, 2, tag="t").metadata["tag"] == "t"


def test_a_nested_transform_closing_over_an_outer_tracer():
    h = facade.HiddenState(jnp.zeros(3))

    @facade.transform.jit
    def step(x):
        drift = lambda v: (-v + x) / 10.0  # closes over the outer trace's x
        jac, d = facade.transform.vector_grad(drift, argnums=0, return_value=True)(h.value)
        h.value = h.value + d
        return jac

    np.testing.assert_allclose(step(jnp.ones(3)), -0.1 * np.ones(3), rtol=1e-6)
    np.testing.assert_allclose(h.value, 0.1 * np.ones(3), rtol=1e-6)
