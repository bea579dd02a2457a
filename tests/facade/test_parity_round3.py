"""brainstate parity, round three (issue 19): the items that need the core files changed.

Each test states what brainstate 0.5.4 does (run in a venv with brainstate 0.5.4 and jax
0.10.2) and asserts the behaviour the issue asks of the facade.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import facade
from facade import transform as T

X = jnp.array([1.0, 2.0])
Y = jnp.array([3.0, 4.0])


def _dot(x, y):
    return jnp.sum(x * y)


def test_vjp_counts_negative_argnums_from_the_end():
    """brainstate 0.5.4's ``vjp(f, x, y, argnums=(0, -1))`` returns ``(out, vjp_fn)`` with
    ``vjp_fn(1.0) == (y, x)``; ``argnums=-1`` gives the one cotangent ``x``; with
    ``grad_states=w`` it gives ``(w_ct, (x_ct, y_ct))``. (Its grad and jacrev refuse negative
    argnums with a ValueError, and so do the facade's.)"""
    out, vjp_fn = T.vjp(_dot, X, Y, argnums=(0, -1))
    assert float(out) == 11.0
    x_ct, y_ct = vjp_fn(1.0)
    np.testing.assert_array_equal(x_ct, Y)
    np.testing.assert_array_equal(y_ct, X)
    _, vjp_last = T.vjp(_dot, X, Y, argnums=-1)
    np.testing.assert_array_equal(vjp_last(1.0), X)  # an int argnums: one cotangent, not a tuple

    w = facade.ParamState(jnp.array([1.0, 2.0]))
    _, vjp_w = T.vjp(lambda x, y: jnp.sum(w.value * x * y), X, Y, grad_states=w, argnums=(0, -1))
    w_ct, (x_ct, y_ct) = vjp_w(1.0)
    np.testing.assert_array_equal(w_ct, X * Y)
    np.testing.assert_array_equal(x_ct, w.value * Y)
    np.testing.assert_array_equal(y_ct, w.value * X)


def test_the_other_transforms_still_refuse_negative_argnums():
    """brainstate 0.5.4's ``grad(f, argnums=(0, -1))`` raises ValueError ("argnums -1 is
    negative"); the facade's ArgnumsError is a ValueError. Passes today, and must keep passing
    when vjp accepts them."""
    with pytest.raises(ValueError, match="non-negative"):
        T.grad(_dot, argnums=(0, -1))(X, Y)


def test_jit_static_argnums_passed_by_keyword_is_static():
    """``jax.jit(f, static_argnums=1)(x, times=4)`` runs with ``times`` static (a Python int
    in the trace). brainstate 0.5.4's jit refuses the call: "ValueError: static_argnums contains
    index 1, but only 1 positional arguments were provided"; the issue takes jax.jit's rule."""
    seen = []

    def add(x, times):
        seen.append(times)
        for _ in range(times):  # needs a concrete int
            x = x + 1
        return x

    jitted = T.jit(add, static_argnums=1)
    assert float(jitted(jnp.zeros(()), times=4)) == 4.0
    assert float(jitted(jnp.zeros(()), times=2)) == 2.0
    assert seen == [4, 2]  # traced once per static value, with the int itself
    assert float(jitted(jnp.zeros(()), times=4)) == 4.0 and seen == [4, 2]  # cached


def test_the_same_state_twice_in_grad_states_gets_its_gradient_under_both_keys():
    """brainstate 0.5.4: ``grad(loss, grad_states={"x": w, "y": w})()`` returns
    ``{'x': 2w, 'y': 2w}`` for ``loss = sum(w**2)`` (each key the whole gradient, not half),
    and ``grad_states=[w, w]`` returns ``[2w, 2w]``."""
    w = facade.ParamState(jnp.array([1.0, 2.0]))

    def loss():
        return jnp.sum(w.value**2)

    grads = T.grad(loss, grad_states={"x": w, "y": w})()
    assert set(grads) == {"x", "y"}
    np.testing.assert_array_equal(grads["x"], 2 * w.value)
    np.testing.assert_array_equal(grads["y"], 2 * w.value)
    as_list = T.grad(loss, grad_states=[w, w])()
    np.testing.assert_array_equal(as_list[0], 2 * w.value)
    np.testing.assert_array_equal(as_list[1], 2 * w.value)


def test_a_state_refuses_an_object_array_where_it_is_assigned():
    """brainstate 0.5.4 accepts ``State(...).value = np.array([object(), 1], dtype=object)`` (and
    such a State at construction), and fails only later, inside the next transform that reads
    it ("TypeError: Dtype object is not a valid JAX array type"). The issue asks the facade to
    refuse it at the assignment, naming the State, and to keep the State's value."""
    s = facade.State(jnp.zeros(2), name="weights")
    with pytest.raises(TypeError, match=r"State 'weights' \(created at .*object"):
        s.value = np.array([object(), 1], dtype=object)
    np.testing.assert_array_equal(s.value, jnp.zeros(2))
    with pytest.raises(TypeError, match="object"):
        facade.State(np.array([object(), 1], dtype=object))
    # Arrays JAX takes stay accepted, a bfloat16 one included (numpy calls its kind 'V').
    s.value = np.array([1, 2], np.int8)
    s.value = np.zeros(2, jnp.bfloat16)
    s.value = {"a": np.float32(1.0), "b": True}
    assert jax.tree.leaves(s.value)[1] is True
