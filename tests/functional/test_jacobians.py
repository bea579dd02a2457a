"""``F.jacrev``, ``F.jacfwd``, ``F.jacobian`` and ``F.hessian`` against raw JAX."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest
from functional_testing import (
    CASES,
    COMBO_IDS,
    COMBOS,
    assert_trees_equal,
    case_argnums_params,
    expected,
    unpack,
    with_aux,
)

import functional as F


def _check(result, exp, has_aux, return_value):
    grads, value, aux = unpack(result, has_aux, return_value)
    exp_grads, exp_value, exp_aux = exp
    assert_trees_equal(grads, exp_grads, rtol=1e-5, atol=1e-6)
    if return_value:
        assert_trees_equal(value, exp_value)
    if has_aux:
        assert_trees_equal(aux, exp_aux)


def _eager(ours, raw, kind, case, argnums, has_aux, return_value):
    args = case.make_args()
    base = getattr(case, kind)
    fun = with_aux(base) if has_aux else base
    result = ours(fun, argnums, has_aux=has_aux, return_value=return_value)(*args)
    _check(result, expected(raw, base, args, argnums, has_aux), has_aux, return_value)


@pytest.mark.parametrize(("has_aux", "return_value"), COMBOS, ids=COMBO_IDS)
@pytest.mark.parametrize(("case", "argnums"), case_argnums_params())
def test_jacrev_matches_jax(case, argnums, has_aux, return_value):
    _eager(F.jacrev, jax.jacrev, "vec", case, argnums, has_aux, return_value)


# Forward mode and the Hessian are slow to compile op by op (eagerly, every primitive is
# compiled on its own, and they have many), so they are compared under one ``filter_jit`` per
# (case, argnums) that evaluates ours and the oracle for all four combinations at once, for the
# last argnums of each case. The same comparison runs eagerly on one case in the test after.
@functools.cache
def _jitted(name, case_name, argnums):
    ours, raw, kind = {
        "jacfwd": (F.jacfwd, jax.jacfwd, "vec"),
        "hessian": (F.hessian, jax.hessian, "scalar"),
    }[name]
    case = next(c for c in CASES if c.name == case_name)
    base = getattr(case, kind)

    @eqx.filter_jit
    def run(*args):
        results = {}
        for has_aux, return_value in COMBOS:
            fun = with_aux(base) if has_aux else base
            got = ours(fun, argnums, has_aux=has_aux, return_value=return_value)(*args)
            results[has_aux, return_value] = (got, expected(raw, base, args, argnums, has_aux))
        return results

    return run(*case.make_args())


FORWARD_MODE = [
    pytest.param(name, *p.values, id=f"{name}-{p.id}")
    for name in ("jacfwd", "hessian")
    for p in case_argnums_params(reduced=True)
]


@pytest.mark.parametrize(("has_aux", "return_value"), COMBOS, ids=COMBO_IDS)
@pytest.mark.parametrize(("name", "case", "argnums"), FORWARD_MODE)
def test_forward_mode_matches_jax_under_jit(name, case, argnums, has_aux, return_value):
    result, exp = _jitted(name, case.name, argnums)[has_aux, return_value]
    _check(result, exp, has_aux, return_value)


@pytest.mark.parametrize(("has_aux", "return_value"), COMBOS, ids=COMBO_IDS)
def test_jacfwd_and_hessian_eager(has_aux, return_value):
    case, argnums = next(c for c in CASES if c.name == "dict"), (-1, 0)
    _eager(F.jacfwd, jax.jacfwd, "vec", case, argnums, has_aux, return_value)
    _eager(F.hessian, jax.hessian, "scalar", case, argnums, has_aux, return_value)


def test_hessian_of_mlp_has_none_blocks_for_activations():
    mlp_type = type(next(c for c in CASES if c.name == "eqx_mlp").make_args()[0])
    got = _jitted("hessian", "eqx_mlp", (1, 0))[False, False][0]
    # got[1]: an MLP whose leaves are (d/dx, d/dmlp) pairs; d/dmlp is an MLP again
    assert isinstance(got[1], mlp_type) and got[1].activation is None
    block = got[1].layers[0].weight[1]
    assert isinstance(block, mlp_type)
    assert block.activation is None and block.final_activation is None
    assert block.layers[0].weight.shape == (4, 3, 4, 3)


def test_jacobian_is_jacrev():
    assert F.jacobian is F.jacrev


def test_spec_example_jacrev_equals_jacfwd():
    def multi_output(x):
        return jnp.array([x[0] * x[1], jnp.sin(x[0]), jnp.exp(x[1])])

    x0 = jnp.array([1.0, 2.0])
    rev, fwd = F.jacrev(multi_output)(x0), F.jacfwd(multi_output)(x0)
    assert_trees_equal(rev, jax.jacrev(multi_output)(x0))
    assert_trees_equal(fwd, jax.jacfwd(multi_output)(x0))
    assert_trees_equal(rev, fwd)


def test_hessian_of_quadratic_is_twice_identity_like_jax():
    x0 = jnp.array([1.0, 2.0])
    got = F.hessian(lambda x: jnp.dot(x, x))(x0)
    assert_trees_equal(got, jax.hessian(lambda x: jnp.dot(x, x))(x0))
    assert_trees_equal(got, 2 * jnp.eye(2))


def _complex_input():
    return jnp.array([1.0 + 2.0j, 0.5 - 1.0j], dtype=jnp.complex64)


def _holo(z):
    return jnp.sin(z) * z[::-1]


@pytest.mark.parametrize(
    ("ours", "raw", "fun"),
    [
        pytest.param(F.jacrev, jax.jacrev, _holo, id="jacrev"),
        pytest.param(F.jacfwd, jax.jacfwd, _holo, id="jacfwd"),
        pytest.param(F.hessian, jax.hessian, lambda z: jnp.sum(_holo(z)), id="hessian"),
    ],
)
@pytest.mark.parametrize(("has_aux", "return_value"), COMBOS, ids=COMBO_IDS)
def test_holomorphic_matches_jax(ours, raw, fun, has_aux, return_value):
    z = _complex_input()
    target = with_aux(fun) if has_aux else fun
    result = ours(target, has_aux=has_aux, return_value=return_value, holomorphic=True)(z)
    grads, value, aux = unpack(result, has_aux, return_value)
    exp_grads, exp_value, exp_aux = expected(raw, fun, (z,), 0, has_aux, holomorphic=True)
    assert_trees_equal(grads, exp_grads, rtol=1e-5)
    if return_value:
        assert_trees_equal(value, exp_value)
    if has_aux:
        assert_trees_equal(aux, exp_aux)


@pytest.mark.parametrize(
    ("ours", "raw"),
    [
        pytest.param(F.jacrev, jax.jacrev, id="jacrev"),
        pytest.param(F.jacfwd, jax.jacfwd, id="jacfwd"),
    ],
)
def test_holomorphic_false_on_complex_matches_jax_behaviour(ours, raw):
    """Without holomorphic, complex inputs with a complex output are an error, as in JAX."""
    with pytest.raises(TypeError, match="holomorphic"):
        raw(_holo)(_complex_input())
    with pytest.raises(TypeError, match="holomorphic"):
        ours(_holo)(_complex_input())


def test_jacrev_allow_int_matches_jax():
    def f(x, n):
        return x * n

    args = (jnp.arange(3.0), jnp.int32(4))
    with pytest.raises(TypeError, match="allow_int"):
        F.jacrev(f, argnums=(0, 1))(*args)
    got = F.jacrev(f, argnums=(0, 1), allow_int=True)(*args)
    want = jax.jacrev(f, argnums=(0, 1), allow_int=True)(*args)
    assert_trees_equal(got, want)


@pytest.mark.parametrize("ours", [F.jacfwd, F.hessian], ids=["jacfwd", "hessian"])
def test_forward_mode_transforms_reject_integer_inputs(ours):
    f = (lambda x: x * 2) if ours is F.jacfwd else (lambda x: jnp.sum(x * 2))
    with pytest.raises(TypeError):
        jax.jacfwd(f)(jnp.arange(3))  # the oracle's behaviour
    with pytest.raises(TypeError):
        ours(f)(jnp.arange(3))


def test_jacrev_under_plain_jit():
    case = CASES[1]
    args = case.make_args()
    got = jax.jit(F.jacrev(case.vec, argnums=(0, 1)))(*args)
    assert_trees_equal(got, jax.jit(jax.jacrev(case.vec, argnums=(0, 1)))(*args), rtol=1e-5)
