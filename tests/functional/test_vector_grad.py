"""``F.vector_grad`` against its raw-JAX definition: ``jax.vjp`` pulled back with ones."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from functional_testing import (
    COMBO_IDS,
    COMBOS,
    assert_trees_equal,
    case_argnums_params,
    expected,
    raw_vector_grad,
    unpack,
    with_aux,
)

import functional as F


@pytest.mark.parametrize(("has_aux", "return_value"), COMBOS, ids=COMBO_IDS)
@pytest.mark.parametrize(("case", "argnums"), case_argnums_params())
def test_matches_vjp_with_ones(case, argnums, has_aux, return_value):
    args = case.make_args()
    fun = with_aux(case.vec) if has_aux else case.vec
    result = F.vector_grad(fun, argnums, has_aux=has_aux, return_value=return_value)(*args)
    grads, value, aux = unpack(result, has_aux, return_value)
    exp_grads, exp_value, exp_aux = expected(raw_vector_grad, case.vec, args, argnums, has_aux)
    assert_trees_equal(grads, exp_grads)
    if return_value:
        assert_trees_equal(value, exp_value)
    if has_aux:
        assert_trees_equal(aux, exp_aux)


def test_is_column_sum_of_jacobian():
    """Independent of vjp: the gradient of the sum of outputs is the Jacobian's column sum."""

    def vector_fun(x):
        return jnp.array([x[0] * x[1], jnp.sin(x[0]), x[0] ** 2 + x[1] ** 2])

    x0 = jnp.array([1.0, 2.0])
    got = F.vector_grad(vector_fun)(x0)
    np.testing.assert_allclose(got, jax.jacrev(vector_fun)(x0).sum(0), rtol=1e-6)
    np.testing.assert_allclose(got, jax.grad(lambda x: jnp.sum(vector_fun(x)))(x0), rtol=1e-6)


def test_scalar_output_equals_grad():
    f = lambda x: jnp.sum(jnp.sin(x) * x)
    x = jnp.arange(4.0)
    assert_trees_equal(F.vector_grad(f)(x), jax.grad(f)(x))


def test_pytree_output():
    def f(p):
        return {"a": p["w"] * 2.0, "b": [jnp.sin(p["w"]), jnp.sum(p["v"] ** 2)]}

    p = {"w": jnp.arange(3.0), "v": jnp.ones((2, 2))}
    got = F.vector_grad(f)(p)
    want = jax.grad(lambda q: sum(jnp.sum(leaf) for leaf in jax.tree.leaves(f(q))))(p)
    assert_trees_equal(got, want)


def test_under_jit():
    f = lambda w, x: jnp.tanh(w @ x)
    w, x = jnp.ones((2, 3)), jnp.arange(3.0)
    got = jax.jit(F.vector_grad(f, argnums=(0, 1), return_value=True))(w, x)
    want_grads = raw_vector_grad(f, argnums=(0, 1))(w, x)
    assert_trees_equal(got, (want_grads, f(w, x)))


@pytest.mark.parametrize("kwarg", ["holomorphic", "allow_int", "tangent_size"])
def test_rejects_options_it_does_not_have(kwarg):
    with pytest.raises(TypeError):
        F.vector_grad(jnp.sin, **{kwarg: True})
