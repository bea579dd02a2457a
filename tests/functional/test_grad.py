"""``F.grad`` against raw ``jax.grad`` / ``jax.value_and_grad``."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from functional_testing import (
    CASES,
    COMBO_IDS,
    COMBOS,
    assert_trees_equal,
    case_argnums_params,
    expected,
    raw_transform,
    unpack,
    with_aux,
)

import functional as F


@pytest.mark.parametrize(("has_aux", "return_value"), COMBOS, ids=COMBO_IDS)
@pytest.mark.parametrize(("case", "argnums"), case_argnums_params())
def test_grad_matches_jax(case, argnums, has_aux, return_value):
    args = case.make_args()
    fun = with_aux(case.scalar) if has_aux else case.scalar
    result = F.grad(fun, argnums, has_aux=has_aux, return_value=return_value)(*args)
    grads, value, aux = unpack(result, has_aux, return_value)
    exp_grads, exp_value, exp_aux = expected(jax.grad, case.scalar, args, argnums, has_aux)
    assert_trees_equal(grads, exp_grads)
    if return_value:
        assert_trees_equal(value, exp_value)
    if has_aux:
        assert_trees_equal(aux, exp_aux)


@pytest.mark.parametrize("has_aux", [False, True])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_value_matches_value_and_grad(case, has_aux):
    """With return_value the value is what ``jax.value_and_grad`` reports (reordered)."""
    args = case.make_args()
    argnums = case.argnums[-1]
    fun = with_aux(case.scalar) if has_aux else case.scalar
    result = F.grad(fun, argnums, has_aux=has_aux, return_value=True)(*args)
    raw = raw_transform(jax.value_and_grad, fun, args, argnums, has_aux=has_aux)
    if has_aux:
        (value, aux), grads = raw
        assert_trees_equal(result, (grads, value, aux))
    else:
        value, grads = raw
        assert_trees_equal(result, (grads, value))


def test_mlp_gradient_like_filter_grad_with_none_for_activations():
    mlp = eqx.nn.MLP(3, 2, 4, 2, key=jax.random.key(0))
    x = jnp.linspace(-1.0, 1.0, 3)

    def loss(model, x):
        return jnp.sum(model(x) ** 2)

    g = F.grad(loss)(mlp, x)
    assert isinstance(g, eqx.nn.MLP)
    assert g.activation is None and g.final_activation is None
    assert_trees_equal(g, eqx.filter_grad(loss)(mlp, x))
    assert all(leaf is not None for leaf in jax.tree.leaves(g))


def test_static_leaves_are_none_and_arguments_untouched():
    params = {"w": jnp.arange(3.0), "name": "abc", "fn": jnp.sin, "obj": object()}
    seen = {}

    def loss(p):
        seen.update(p)
        return jnp.sum(p["fn"](p["w"]))

    g = F.grad(loss)(params)
    assert g["name"] is None and g["fn"] is None and g["obj"] is None
    np.testing.assert_allclose(g["w"], jnp.cos(params["w"]), rtol=1e-6)
    # the function saw the real static leaves, not placeholders
    assert seen["name"] == "abc" and seen["fn"] is jnp.sin and seen["obj"] is params["obj"]


def test_list_argnums_gives_tuple_like_jax():
    f = CASES[3].scalar
    args = CASES[3].make_args()
    got = F.grad(f, argnums=[0, 2])(*args)
    want = jax.grad(f, argnums=[0, 2])(*args)
    assert type(got) is tuple
    assert_trees_equal(got, want)


def test_keyword_arguments_are_passed_through_undifferentiated():
    def f(x, *, scale):
        return scale * jnp.sum(x**2)

    x = jnp.arange(3.0)
    assert_trees_equal(F.grad(f)(x, scale=3.0), jax.grad(f)(x, scale=3.0))


def test_under_jit():
    case = CASES[1]
    args = case.make_args()
    got = jax.jit(F.grad(case.scalar, argnums=(0, 1), return_value=True))(*args)
    want_value, want_grads = jax.jit(jax.value_and_grad(case.scalar, argnums=(0, 1)))(*args)
    assert_trees_equal(got, (want_grads, want_value))


def test_under_filter_jit_with_module():
    mlp = eqx.nn.MLP(3, 2, 4, 1, key=jax.random.key(1))
    x = jnp.ones(3)

    def loss(m, x):
        return jnp.sum(m(x))

    got = eqx.filter_jit(F.grad(loss))(mlp, x)
    assert_trees_equal(got, eqx.filter_grad(loss)(mlp, x), rtol=1e-5, atol=1e-6)


def test_non_scalar_output_raises_type_error():
    with pytest.raises(TypeError, match="scalar"):
        F.grad(lambda x: x**2)(jnp.arange(3.0))


@pytest.mark.parametrize(
    "args",
    [
        (jnp.arange(3.0), jnp.int32(2)),
        (jnp.arange(3.0), 2),
        ({"w": jnp.arange(3.0), "n": jnp.arange(3)}, jnp.int32(2)),
        (jnp.arange(3.0), jnp.array(True)),
    ],
    ids=["int32", "python_int", "dict_with_int_leaf", "bool"],
)
def test_integer_inputs_follow_jax(args):
    def f(p, n):
        w = p["w"] if isinstance(p, dict) else p
        extra = jnp.sum(p["n"]) if isinstance(p, dict) else 0
        return jnp.sum(w**2) * n + extra

    argnums = (0, 1)
    with pytest.raises(TypeError, match="allow_int"):
        F.grad(f, argnums)(*args)
    with pytest.raises(TypeError, match="allow_int"):
        jax.grad(f, argnums)(*args)  # the oracle agrees that this is an error
    got = F.grad(f, argnums, allow_int=True)(*args)
    want = jax.grad(f, argnums, allow_int=True)(*args)
    assert_trees_equal(got, want)
    assert any(
        leaf.dtype == jax.dtypes.float0 for leaf in jax.tree.leaves(got)
    ), "integer inputs must get float0 gradients"


def _zs():
    return jnp.array([1.0 + 2.0j, 0.5 - 1.0j, -0.3 + 0.1j], dtype=jnp.complex64)


@pytest.mark.parametrize(("has_aux", "return_value"), COMBOS, ids=COMBO_IDS)
def test_holomorphic_matches_jax(has_aux, return_value):
    def f(z):
        return jnp.sum(z**2 * jnp.sin(z))

    z = _zs()
    fun = with_aux(f) if has_aux else f
    result = F.grad(fun, has_aux=has_aux, return_value=return_value, holomorphic=True)(z)
    grads, value, aux = unpack(result, has_aux, return_value)
    exp = expected(jax.grad, f, (z,), 0, has_aux, holomorphic=True)
    assert grads.dtype == jnp.complex64
    assert_trees_equal(grads, exp[0], rtol=1e-5)
    if return_value:
        assert_trees_equal(value, exp[1], rtol=1e-5)
    if has_aux:
        assert_trees_equal(aux, exp[2], rtol=1e-5)


def test_complex_output_without_holomorphic_raises_like_jax():
    def f(z):
        return jnp.sum(z**2)

    with pytest.raises(TypeError, match="holomorphic"):
        F.grad(f)(_zs())


def test_complex_input_real_output_matches_jax():
    def f(z):
        return jnp.sum(jnp.abs(z) ** 2 + jnp.real(z) * jnp.imag(z))

    assert_trees_equal(F.grad(f)(_zs()), jax.grad(f)(_zs()))


def test_holomorphic_rejects_real_input_like_jax():
    def f(x):
        return jnp.sum(x**2)

    with pytest.raises(TypeError, match="holomorphic"):
        jax.grad(f, holomorphic=True)(jnp.arange(2.0))
    with pytest.raises(TypeError, match="holomorphic"):
        F.grad(f, holomorphic=True)(jnp.arange(2.0))
