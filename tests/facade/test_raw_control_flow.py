"""Raw JAX control flow is never silent about States.

A State written inside a raw ``jax.lax.scan``/``cond``/``while_loop``/``fori_loop`` body or a
``jax.vmap``, eagerly or under a facade transform, raises an error naming the State (name and
creation site) and the facade transform to use; every State keeps its value. A State *read*
inside a raw body is an input like any other, also when JAX reuses a cached trace of the body.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from facade_testing import assert_no_tracer

import facade
from facade import transform as T

S = facade.State(jnp.array(1.0), name="s")
SITE = re.escape("test_raw_control_flow.py") + r":\d+"


def _write(v):
    S.value = S.value + v
    return v


RAW = {
    "lax.scan": lambda x: jax.lax.scan(lambda c, v: (c + _write(v), None), 0.0, jnp.ones(3) * x)[0],
    "lax.cond": lambda x: jax.lax.cond(x > 0, _write, lambda v: v, x),
    "lax.while_loop": lambda x: jax.lax.while_loop(lambda v: v < 3.0, lambda v: _write(v) + 1, x),
    "lax.fori_loop": lambda x: jax.lax.fori_loop(0, 3, lambda i, v: _write(v), x),
    "jax.vmap": lambda x: jax.vmap(_write)(jnp.ones(2) * x).sum(),
}
INSTEAD = {
    "lax.scan": "for_loop",
    "lax.cond": "cond",
    "lax.while_loop": "while_loop",
    "lax.fori_loop": "for_loop",
    "jax.vmap": "facade.transform.vmap",
}
CONTEXTS = {
    "eagerly": lambda f: f,
    "under jit": lambda f: T.jit(f),
    "under grad": lambda f: T.grad(f),
}


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("raw", RAW)
def test_a_state_written_in_raw_control_flow_raises_naming_it(raw, context):
    before = S.value
    call = CONTEXTS[context](RAW[raw])
    with pytest.raises(TypeError, match=rf"(?s)State .s. \(created at \S*{SITE}\).*{INSTEAD[raw]}"):
        call(jnp.array(0.5))
    assert S.value is before
    assert_no_tracer(S)
    # the same write through the facade's own transform works
    assert float(T.jit(_write)(jnp.array(1.0))) == 1.0
    assert float(S.value) == float(before) + 1.0
    S.value = before


W = facade.ParamState(jnp.array(1.0), name="w")


def _body(c, x):  # module level: JAX caches its trace by identity across facade traces
    return c + W.value * x, None


def _loss(xs):
    return jax.lax.scan(_body, 0.0, xs)[0]


def test_a_grad_state_read_in_a_raw_scan_body_is_differentiated_on_every_signature():
    g = T.grad(_loss, grad_states=W)
    for n in (3, 4, 4, 5):  # new shapes retrace; the body's cached trace must not be reused
        np.testing.assert_allclose(g(jnp.ones(n)), float(n))
    W.value = jnp.array(5.0)
    jitted = T.jit(T.grad(_loss, grad_states=W, return_value=True))
    grads, value = jitted(jnp.arange(3.0))
    np.testing.assert_allclose(grads, 3.0)
    np.testing.assert_allclose(value, 15.0)
