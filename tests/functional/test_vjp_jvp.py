"""``F.vjp`` and ``F.jvp`` against raw ``jax.vjp`` / ``jax.jvp``."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from functional_testing import (
    CASES,
    assert_trees_equal,
    case_argnums_params,
    split_static,
    with_aux,
)

import functional as F


def _fill(tree, phase=0.0):
    """A deterministic, non-trivial tree like ``tree`` (same shapes and dtypes)."""

    def leaf(x):
        if isinstance(x, float):
            return 0.7 + phase
        x = jnp.asarray(x)
        return jnp.cos(jnp.arange(x.size, dtype=x.dtype).reshape(x.shape) + phase + 0.5)

    return jax.tree.map(leaf, tree)


def _positions(argnums, n):
    return tuple(a % n for a in ((argnums,) if isinstance(argnums, int) else argnums))


def _raw_vjp(fun, args, argnums, has_aux):
    """Raw ``jax.vjp`` with respect to the (array parts of the) arguments in ``argnums``."""
    to_full, dyn = split_static(args)
    pos = _positions(argnums, len(args))

    def of_selected(*sel):
        full = list(dyn)
        for i, s in zip(pos, sel, strict=True):
            full[i] = s
        return fun(*to_full(*full))

    res = jax.vjp(of_selected, *(dyn[i] for i in pos), has_aux=has_aux)
    single = isinstance(argnums, int)
    pullback = (lambda ct: res[1](ct)[0]) if single else res[1]
    return res[0], pullback, (res[2] if has_aux else None)


@pytest.mark.parametrize("has_aux", [False, True], ids=["plain", "aux"])
@pytest.mark.parametrize(("case", "argnums"), case_argnums_params())
def test_vjp_matches_jax(case, argnums, has_aux):
    args = case.make_args()
    fun = with_aux(case.vec) if has_aux else case.vec
    result = F.vjp(fun, *args, argnums=argnums, has_aux=has_aux)
    assert type(result) is tuple and len(result) == 2 + has_aux
    out, vjp_fn = result[:2]
    want_out, want_pullback, want_aux = _raw_vjp(fun, args, argnums, has_aux)
    assert_trees_equal(out, want_out)
    if has_aux:
        assert_trees_equal(result[2], want_aux)
    for phase in (0.0, 1.0):  # reusable: two different cotangents through the same vjp_fn
        ct = _fill(out, phase)
        assert_trees_equal(vjp_fn(ct), want_pullback(ct))


def _three_out(x, y):
    return jnp.stack([jnp.sum(x * y), jnp.prod(jnp.sin(x)), x[0] * y[-1] ** 2])


XY = (jnp.array([0.3, -1.2, 2.0]), jnp.array([1.5, 0.2, -0.4]))


@pytest.mark.parametrize("argnums", [0, 1, -1, (0, 1), (1, 0)])
def test_vmap_of_vjp_fn_is_jacrev(argnums):
    out, vjp_fn = F.vjp(_three_out, *XY, argnums=argnums)
    jacobian = jax.vmap(vjp_fn)(jnp.eye(out.shape[0]))
    assert_trees_equal(jacobian, jax.jacrev(_three_out, argnums)(*XY))


def test_vjp_fn_is_linear_and_reusable():
    _, vjp_fn = F.vjp(_three_out, *XY, argnums=(0, 1))
    a, b = jnp.array([1.0, 2.0, -1.0]), jnp.array([0.5, 0.0, 3.0])
    first = vjp_fn(a)
    summed = vjp_fn(a + b)
    again = vjp_fn(a)
    assert_trees_equal(again, first)
    assert_trees_equal(summed, jax.tree.map(jnp.add, vjp_fn(a), vjp_fn(b)), rtol=1e-5, atol=1e-6)


def test_vjp_fn_out_of_jit():
    out, vjp_fn = jax.jit(lambda x, y: F.vjp(_three_out, x, y, argnums=(0, 1)))(*XY)
    want_out, want_pullback = jax.vjp(_three_out, *XY)
    ct = jnp.array([1.0, -2.0, 0.5])
    assert_trees_equal(out, want_out)
    assert_trees_equal(vjp_fn(ct), want_pullback(ct), rtol=1e-5)
    assert_trees_equal(jax.jit(vjp_fn)(ct), want_pullback(ct), rtol=1e-5)
    # vjp_fn is a pytree: it can be passed into a jitted function as an argument
    assert_trees_equal(jax.jit(lambda fn, c: fn(c))(vjp_fn, ct), want_pullback(ct), rtol=1e-5)


def test_vjp_fn_accepts_python_float_for_scalar_output():
    f = lambda x: jnp.sum(jnp.sin(x) * x)
    x = jnp.arange(3.0)
    out, vjp_fn = F.vjp(f, x)
    assert out.dtype == jnp.float32 and out.shape == ()
    assert_trees_equal(vjp_fn(1.0), jax.grad(f)(x))
    assert_trees_equal(vjp_fn(1.0), vjp_fn(jnp.float32(1.0)))
    np.testing.assert_allclose(vjp_fn(2.0), 2 * jax.grad(f)(x), rtol=1e-6)


def _dict_out(x):
    return {"a": x * 2.0, "b": jnp.sum(x)}


@pytest.mark.parametrize(
    ("fun", "cotangent", "error", "match"),
    [
        (_three_out, (jnp.ones(3),), TypeError, "structure"),
        (_dict_out, {"a": jnp.ones(3)}, TypeError, "structure"),
        (_dict_out, [jnp.ones(3), jnp.ones(())], TypeError, "structure"),
        (_three_out, jnp.ones(4), ValueError, "shape"),
        (_three_out, jnp.ones((3, 1)), ValueError, "shape"),
        (_dict_out, {"a": jnp.ones(3), "b": jnp.ones(1)}, ValueError, "shape"),
        (_three_out, jnp.ones(3, jnp.int32), TypeError, "dtype"),
        (_three_out, jnp.ones(3, jnp.float16), TypeError, "dtype"),
        (_three_out, jnp.ones(3, jnp.complex64), TypeError, "dtype"),
    ],
    ids=["tuple-for-array", "missing-key", "list-for-dict", "length", "rank", "leaf-shape",
         "int32", "float16", "complex64"],
)
def test_vjp_fn_rejects_bad_cotangent(fun, cotangent, error, match):
    args = XY if fun is _three_out else XY[:1]
    _, vjp_fn = F.vjp(fun, *args)
    with pytest.raises(error, match=match):
        vjp_fn(cotangent)


def test_vjp_has_aux_non_pair_raises():
    with pytest.raises(TypeError, match="has_aux"):
        F.vjp(lambda x: x * 2, jnp.ones(2), has_aux=True)


# ----------------------------------------------------------------------------------- jvp


def _raw_jvp(fun, args, tangents, has_aux):
    to_full, dyn = split_static(args)
    _, dyn_t = split_static(tuple(tangents))
    return jax.jvp(lambda *d: fun(*to_full(*d)), dyn, dyn_t, has_aux=has_aux)


@pytest.mark.parametrize("has_aux", [False, True], ids=["plain", "aux"])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_jvp_matches_jax(case, has_aux):
    args = case.make_args()
    _, dyn = split_static(args)
    tangents = tuple(_fill(d) for d in dyn)  # None in the holes of static leaves
    fun = with_aux(case.vec) if has_aux else case.vec
    result = F.jvp(fun, args, tangents, has_aux=has_aux)
    assert type(result) is tuple and len(result) == 2 + has_aux
    assert_trees_equal(result, tuple(_raw_jvp(fun, args, tangents, has_aux)))


def test_jvp_tangent_may_carry_the_static_leaves_of_its_primal():
    """A tangent Module built by mapping over the primal (activation kept) works too."""
    mlp = eqx.nn.MLP(3, 2, 4, 1, key=jax.random.key(0))
    x = jnp.arange(3.0)
    full_tangent = jax.tree.map(lambda v: jnp.ones_like(v) if eqx.is_array(v) else v, mlp)
    holed_tangent = jax.tree.map(jnp.ones_like, eqx.filter(mlp, eqx.is_array))
    f = lambda m, x: m(x)
    got = F.jvp(f, (mlp, x), (full_tangent, jnp.zeros(3)))
    assert_trees_equal(got, F.jvp(f, (mlp, x), (holed_tangent, jnp.zeros(3))))
    assert_trees_equal(got, _raw_jvp(f, (mlp, x), (holed_tangent, jnp.zeros(3)), False))


def test_jvp_is_jacobian_times_tangent():
    t = (jnp.array([1.0, 0.0, 2.0]), jnp.array([0.5, -1.0, 0.0]))
    _, tangent_out = F.jvp(_three_out, XY, t)
    jx, jy = jax.jacfwd(_three_out, argnums=(0, 1))(*XY)
    np.testing.assert_allclose(tangent_out, jx @ t[0] + jy @ t[1], rtol=1e-5, atol=1e-6)


def test_jvp_python_floats_like_jax():
    f = lambda a, b: a**2 * b
    assert_trees_equal(F.jvp(f, (1.5, 2.0), (1.0, 0.5)), jax.jvp(f, (1.5, 2.0), (1.0, 0.5)))


def test_jvp_under_jit():
    t = (jnp.ones(3), jnp.zeros(3))
    got = jax.jit(lambda p, t: F.jvp(_three_out, p, t))(XY, t)
    assert_trees_equal(got, jax.jvp(_three_out, XY, t), rtol=1e-5)


@pytest.mark.parametrize(
    ("primals", "tangents", "error", "match"),
    [
        (XY, (jnp.ones(3),), TypeError, "tangent"),
        (XY, (jnp.ones(3), jnp.ones(3), jnp.ones(3)), TypeError, "tangent"),
        (({"a": jnp.ones(3)}, XY[1]), ({"b": jnp.ones(3)}, jnp.ones(3)), TypeError, "structure"),
        (({"a": jnp.ones(3)}, XY[1]), (jnp.ones(3), jnp.ones(3)), TypeError, "structure"),
        (([XY[0]], XY[1]), ((XY[0],), jnp.ones(3)), TypeError, "structure"),
        (XY, (jnp.ones(4), jnp.ones(3)), ValueError, "shape"),
        (XY, (jnp.ones(3), jnp.ones((1, 3))), ValueError, "shape"),
        (XY, (jnp.ones(3, jnp.int32), jnp.ones(3)), TypeError, "dtype"),
        (XY, (jnp.ones(3), jnp.ones(3, jnp.float16)), TypeError, "dtype"),
    ],
    ids=["too-few", "too-many", "dict-key", "dict-vs-array", "list-vs-tuple", "shape",
         "rank", "int32", "float16"],
)
def test_jvp_rejects_bad_tangents(primals, tangents, error, match):
    def f(a, b):
        a = a["a"] if isinstance(a, dict) else a[0] if isinstance(a, list) else a
        return _three_out(a, b)

    with pytest.raises(error, match=match):
        F.jvp(f, primals, tangents)


def test_jvp_has_aux_non_pair_raises():
    with pytest.raises(TypeError, match="has_aux"):
        F.jvp(lambda x: x * 2, (jnp.ones(2),), (jnp.ones(2),), has_aux=True)
