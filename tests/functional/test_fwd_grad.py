"""``F.fwd_grad``: the forward-gradient estimator against the true gradient from ``jax.grad``.

The estimate is ``g_hat = (1/n) sum_k (g . v_k) v_k`` with ``v_k ~ N(0, I)``. Per component,
``Var[(g . v) v_i] = |g|^2 + g_i^2 <= 2 |g|^2``, so the standard deviation of the mean of ``n``
directions is at most ``|g| sqrt(2 / n)`` (about 1% of ``|g|`` for ``n = 20000``). The tests
allow 5 of those standard deviations per component: a correct estimator passes for almost
any key (and the keys are fixed, so the tests are deterministic), while a wrong scale (a
missing ``1/n``, a factor 2), a wrong sign or a dropped component is off by far more.
"""

import math

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
    raw_transform,
    unpack,
    with_aux,
)

import functional as F

N = 20000


def _case(name):
    return next(c for c in CASES if c.name == name)


def _vdot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _norm(tree):
    return float(jnp.sqrt(_vdot(tree, tree)))


def _assert_close_to_gradient(estimate, true, n):
    tol = 5 * _norm(true) * math.sqrt(2 / n)
    for est, g in zip(jax.tree.leaves(estimate), jax.tree.leaves(true), strict=True):
        np.testing.assert_allclose(est, g, rtol=0, atol=tol)


def _assert_like_gradient(estimate, true):
    """Same structure, shapes and dtypes as the true gradient (values are random)."""
    est_leaves, est_def = jax.tree.flatten(estimate, is_leaf=lambda x: x is None)
    true_leaves, true_def = jax.tree.flatten(true, is_leaf=lambda x: x is None)
    assert est_def == true_def
    for e, t in zip(est_leaves, true_leaves, strict=True):
        if t is None:
            assert e is None
        else:
            assert e.shape == t.shape and e.dtype == t.dtype


CLOSE_CASES = [("dict", (0, 1)), ("eqx_mlp", 0)]


@pytest.mark.parametrize(("name", "argnums"), CLOSE_CASES)
def test_many_directions_approach_the_gradient(name, argnums):
    case = _case(name)
    args = case.make_args()
    true = raw_transform(jax.grad, case.scalar, args, argnums)
    # under jit: one compilation instead of one per primitive (the eager path is tested below)
    est = eqx.filter_jit(
        F.fwd_grad(case.scalar, argnums, tangent_size=N, key=jax.random.key(42))
    )(*args)
    _assert_like_gradient(est, true)
    _assert_close_to_gradient(est, true, N)
    # ... and it is an estimate, not the exact gradient in disguise
    assert not all(
        np.allclose(e, g, rtol=1e-4, atol=1e-6)
        for e, g in zip(jax.tree.leaves(est), jax.tree.leaves(true), strict=True)
    )


def test_unbiased_mean_over_keys():
    """Few directions per call, many keys: the mean over keys converges to the gradient."""
    case = _case("dict")
    args = case.make_args()
    true = jax.grad(case.scalar)(*args)
    keys = jax.random.split(jax.random.key(7), 2000)
    per_key = 5

    def estimate(k):
        return F.fwd_grad(case.scalar, tangent_size=per_key, key=k)(*args)

    estimates = jax.jit(jax.vmap(estimate))(keys)
    spread = jax.tree.map(lambda e: jnp.std(e, axis=0), estimates)
    assert all(float(jnp.min(s)) > 0 for s in jax.tree.leaves(spread)), "keys must matter"
    mean = jax.tree.map(lambda e: jnp.mean(e, axis=0), estimates)
    _assert_close_to_gradient(mean, true, len(keys) * per_key)


# The eager tests below share one case and tangent sizes 1 and 8: eagerly every primitive is
# compiled once per shape, so reusing shapes keeps them fast.
SIZE = 8


def _dict_case():
    case = _case("dict")
    return case.scalar, case.make_args()


def test_single_key_is_deterministic_and_keys_differ():
    f, args = _dict_case()
    a = F.fwd_grad(f, tangent_size=SIZE, key=jax.random.key(1))(*args)
    assert_trees_equal(a, F.fwd_grad(f, tangent_size=SIZE, key=jax.random.key(1))(*args))
    b = F.fwd_grad(f, tangent_size=SIZE, key=jax.random.key(2))(*args)
    assert not np.allclose(a["w"], b["w"])


def test_default_key_is_key_zero_and_default_size_is_one():
    f, args = _dict_case()
    assert_trees_equal(
        F.fwd_grad(f)(*args), F.fwd_grad(f, tangent_size=1, key=jax.random.key(0))(*args)
    )


def test_key_as_zero_arg_callable():
    f, args = _dict_case()
    fixed = F.fwd_grad(f, tangent_size=SIZE, key=jax.random.key(5))(*args)
    by_callable = F.fwd_grad(f, tangent_size=SIZE, key=lambda: jax.random.key(5))(*args)
    assert_trees_equal(by_callable, fixed)

    calls = []

    def fresh_key():
        calls.append(None)
        return jax.random.key(100 + len(calls))

    g = F.fwd_grad(f, tangent_size=SIZE, key=fresh_key)
    first, second = g(*args), g(*args)
    assert len(calls) == 2, "the callable is called once per evaluation"
    assert not np.allclose(first["w"], second["w"])
    assert_trees_equal(first, F.fwd_grad(f, tangent_size=SIZE, key=jax.random.key(101))(*args))


def test_int_seed_key_matches_typed_key():
    f, args = _dict_case()
    assert_trees_equal(
        F.fwd_grad(f, tangent_size=SIZE, key=5)(*args),
        F.fwd_grad(f, tangent_size=SIZE, key=jax.random.key(5))(*args),
    )


def test_legacy_uint32_key_matches_typed_key():
    f, args = _dict_case()
    raw = jax.random.PRNGKey(3)
    assert_trees_equal(
        F.fwd_grad(f, tangent_size=SIZE, key=raw)(*args),
        F.fwd_grad(f, tangent_size=SIZE, key=jax.random.wrap_key_data(raw))(*args),
    )


def test_clip_with_one_direction():
    """With one direction ``u = d v`` and ``u . g = d^2``, so clipping ``d`` to ``[-c, c]``
    must give ``u * min(1, c / |d|)``; ``d`` is recovered from the unclipped estimate."""
    f, args = _dict_case()
    key = jax.random.key(11)
    true = jax.grad(f)(*args)
    u = F.fwd_grad(f, tangent_size=1, key=key)(*args)
    d_abs = math.sqrt(float(_vdot(u, true)))
    assert d_abs > 1e-3
    for factor in (0.25, 0.9):
        clipped = F.fwd_grad(f, tangent_size=1, key=key, drct_der_clip=factor * d_abs)(*args)
        scaled = jax.tree.map(lambda v, s=factor: s * v, u)
        assert_trees_equal(clipped, scaled, rtol=1e-4, atol=1e-6)
    loose = F.fwd_grad(f, tangent_size=1, key=key, drct_der_clip=2.0 * d_abs)(*args)
    assert_trees_equal(loose, u)


def test_clip_bounds_many_directions():
    """``|g_hat| <= (1/n) sum_k |clip(d_k)| |v_k| <= c * mean_k |v_k|``; ``|v_k|`` has mean
    about ``sqrt(dim)`` (8 here) and standard deviation about 0.7, so the mean of 8 of them
    stays below ``1.5 sqrt(dim)`` with a margin of several standard deviations."""
    f, args = _dict_case()
    dim = sum(x.size for x in jax.tree.leaves(args[0]))
    c = 1e-3
    bound = 1.5 * c * math.sqrt(dim)
    clipped = F.fwd_grad(f, tangent_size=SIZE, key=jax.random.key(4), drct_der_clip=c)(*args)
    unclipped = F.fwd_grad(f, tangent_size=SIZE, key=jax.random.key(4))(*args)
    assert _norm(clipped) <= bound
    assert _norm(unclipped) > 10 * bound  # so the bound above is not vacuous


@pytest.mark.parametrize(("has_aux", "return_value"), COMBOS, ids=COMBO_IDS)
@pytest.mark.parametrize(("name", "argnums"), [("dict", 0), ("three_args", (-1, 0)),
                                              ("static_leaves", (0, 1))])
def test_return_combinations(name, argnums, has_aux, return_value):
    case = _case(name)
    args = case.make_args()
    key = jax.random.key(9)
    fun = with_aux(case.scalar) if has_aux else case.scalar
    result = F.fwd_grad(fun, argnums, has_aux=has_aux, return_value=return_value,
                        tangent_size=SIZE, key=key)(*args)
    grads, value, aux = unpack(result, has_aux, return_value)
    # the same directions as without aux/value
    plain = F.fwd_grad(case.scalar, argnums, tangent_size=SIZE, key=key)(*args)
    assert_trees_equal(grads, plain, rtol=1e-5, atol=1e-6)
    _assert_like_gradient(grads, raw_transform(jax.grad, case.scalar, args, argnums))
    if return_value:
        assert_trees_equal(value, case.scalar(*args))
    if has_aux:
        assert_trees_equal(aux, with_aux(case.scalar)(*args)[1])


def test_under_jit_equals_eager():
    f, args = _dict_case()
    g = F.fwd_grad(f, return_value=True, tangent_size=SIZE, key=jax.random.key(2))
    assert_trees_equal(jax.jit(g)(*args), g(*args), rtol=1e-5, atol=1e-6)


def test_non_scalar_output_raises_value_error():
    with pytest.raises(ValueError, match="scalar"):
        F.fwd_grad(lambda x: x * 2)(jnp.ones(3))


@pytest.mark.parametrize(
    "kwargs", [{"tangent_size": 0}, {"tangent_size": -3}, {"drct_der_clip": 0.0},
               {"drct_der_clip": -1.0}],
    ids=["size0", "size-3", "clip0", "clip-1"],
)
def test_bad_values_raise_value_error_at_build(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        F.fwd_grad(jnp.sum, **kwargs)


def test_integer_clip_is_accepted_and_bool_tangent_size_rejected():
    f = lambda x: jnp.sum(x**2)  # noqa: E731
    x = jnp.array([1.0, 2.0])
    by_int = F.fwd_grad(f, drct_der_clip=1, key=jax.random.key(0))(x)
    by_float = F.fwd_grad(f, drct_der_clip=1.0, key=jax.random.key(0))(x)
    np.testing.assert_array_equal(by_int, by_float)
    with pytest.raises(TypeError, match="tangent_size"):
        F.fwd_grad(f, tangent_size=True)
