"""The lowering: one cache entry per call signature, rediscovery when shapes change the states."""

import jax
import jax.numpy as jnp
import numpy as np

import facade

T = facade.transform


def test_states_touched_depend_on_an_argument_shape():
    a = facade.ParamState(jnp.array(2.0), name="a")
    b = facade.ParamState(jnp.array(5.0), name="b")

    def loss(x):
        # Which state is used depends on a shape, which is not part of the cache key.
        scale = a.value if x.shape[0] > 2 else b.value
        return jnp.sum(scale * x)

    g = T.grad(loss, argnums=0)
    np.testing.assert_allclose(g(jnp.ones(3)), jax.grad(lambda x: jnp.sum(2.0 * x))(jnp.ones(3)))
    # Same signature key, new shape: the trace touches b, which discovery never saw.
    np.testing.assert_allclose(g(jnp.ones(2)), jax.grad(lambda x: jnp.sum(5.0 * x))(jnp.ones(2)))
    b.value = jnp.array(7.0)  # b is now a real input, not a constant baked into the program
    np.testing.assert_allclose(g(jnp.ones(2)), [7.0, 7.0])


def test_writes_that_depend_on_a_shape_are_kept():
    seen = facade.State(jnp.array(0.0), name="seen")

    @T.jit
    def f(x):
        if x.shape[0] > 2:
            seen.value = jnp.sum(x)
        return x * 2

    f(jnp.ones(2))
    assert float(seen.value) == 0.0
    f(jnp.ones(4))
    assert float(seen.value) == 4.0


def test_one_cache_entry_for_repeated_calls_with_new_values():
    w = facade.ParamState(jnp.ones(3), name="w")
    g = T.grad(lambda x: jnp.sum(w.value * x), grad_states=w)
    for i in range(20):
        w.value = jnp.full(3, float(i))
        np.testing.assert_allclose(g(jnp.full(3, float(i))), jnp.full(3, float(i)))
    assert len(g._lowering.cache) == 1


def test_static_leaves_are_part_of_the_key():
    w = facade.ParamState(jnp.array([1.0, 2.0]), name="w")

    def loss(x, mode):
        return jnp.sum(w.value * x) if mode == "linear" else jnp.sum((w.value * x) ** 2)

    g = T.grad(loss, grad_states=w)
    x = jnp.array([3.0, 4.0])
    np.testing.assert_allclose(g(x, "linear"), x)
    np.testing.assert_allclose(g(x, "square"), 2 * w.value * x**2)
    np.testing.assert_allclose(g(x, "linear"), x)
    assert len(g._lowering.cache) == 2


def test_first_call_traces_once_when_only_grad_states_are_touched():
    w = facade.ParamState(jnp.array([1.0, 2.0]), name="w")
    buffer = facade.State(jnp.array([10.0, 20.0]), name="buffer")
    traces = {"plain": 0, "with_buffer": 0}

    def plain(x):
        traces["plain"] += 1
        return jnp.sum(w.value * x)

    def with_buffer(x):
        traces["with_buffer"] += 1
        return jnp.sum(w.value * x * buffer.value)

    x = jnp.array([3.0, 4.0])
    np.testing.assert_allclose(T.grad(plain, grad_states=w)(x), x)
    assert traces["plain"] == 1  # the guess (the grad_states) was right: no discovery pass
    np.testing.assert_allclose(T.grad(with_buffer, grad_states=w)(x), x * buffer.value)
    # The trace found `buffer` as it read it and made it an input of the program: one trace.
    assert traces["with_buffer"] == 1
    buffer.value = jnp.array([1.0, 1.0])  # buffer is an input, not a baked-in constant
    np.testing.assert_allclose(T.grad(with_buffer, grad_states=w)(x), x)
