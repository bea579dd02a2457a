"""``F.transform``: the generic engine with JAX-style transforms, including the spec's custom
``scaled`` and ``clipped`` gradient transforms (written as the spec writes them)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest
from functional_testing import (
    CASES,
    COMBO_IDS,
    COMBOS,
    assert_trees_equal,
    expected,
    raw_transform,
    unpack,
    with_aux,
)

import functional as F


def scaled_grad_transform(fun, *, argnums, has_aux, scale):
    """Custom gradient transform that scales gradients (spec, section 6.1)."""
    base = jax.grad(fun, argnums=argnums, has_aux=True)

    def wrapped(*args, **kwargs):
        grads, aux = base(*args, **kwargs)
        grads = jax.tree.map(lambda g: scale * g, grads)
        return grads, aux

    return wrapped


def clipped_grad_transform(fun, *, argnums, has_aux, max_norm):
    """Custom gradient transform with gradient clipping (spec, section 6.2)."""
    base = jax.grad(fun, argnums=argnums, has_aux=True)

    def wrapped(*args, **kwargs):
        grads, aux = base(*args, **kwargs)
        global_norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(grads)))
        scale = jnp.minimum(1.0, max_norm / (global_norm + 1e-6))
        grads = jax.tree.map(lambda g: scale * g, grads)
        return grads, aux

    return wrapped


def _global_norm(tree):
    return jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(tree)))


def _case(name):
    return next(c for c in CASES if c.name == name)


TRANSFORM_CASES = [("dict", (1, 0)), ("eqx_mlp", 0), ("static_leaves", 0), ("three_args", -1)]


@pytest.mark.parametrize(("has_aux", "return_value"), COMBOS, ids=COMBO_IDS)
@pytest.mark.parametrize(("name", "argnums"), TRANSFORM_CASES)
def test_scaled_transform(name, argnums, has_aux, return_value):
    case = _case(name)
    args = case.make_args()
    fun = with_aux(case.scalar) if has_aux else case.scalar
    g = F.transform(fun, scaled_grad_transform, argnums, has_aux=has_aux,
                    return_value=return_value, transform_params={"scale": 0.5})
    grads, value, aux = unpack(g(*args), has_aux, return_value)
    exp_grads, exp_value, exp_aux = expected(jax.grad, case.scalar, args, argnums, has_aux)
    assert_trees_equal(grads, jax.tree.map(lambda x: 0.5 * x, exp_grads))
    if return_value:
        assert_trees_equal(value, exp_value)
    if has_aux:
        assert_trees_equal(aux, exp_aux)


@pytest.mark.parametrize(("has_aux", "return_value"), COMBOS, ids=COMBO_IDS)
@pytest.mark.parametrize(("name", "argnums"), TRANSFORM_CASES)
def test_clipped_transform(name, argnums, has_aux, return_value):
    case = _case(name)
    args = case.make_args()
    true = raw_transform(jax.grad, case.scalar, args, argnums)
    max_norm = 0.25 * float(_global_norm(true))
    fun = with_aux(case.scalar) if has_aux else case.scalar
    g = F.transform(fun, clipped_grad_transform, argnums, has_aux=has_aux,
                    return_value=return_value, transform_params={"max_norm": max_norm})
    grads, value, aux = unpack(g(*args), has_aux, return_value)
    scale = max_norm / (_global_norm(true) + 1e-6)
    assert_trees_equal(grads, jax.tree.map(lambda x: scale * x, true), rtol=1e-5)
    assert float(_global_norm(grads)) <= max_norm * (1 + 1e-5)
    if return_value:
        assert_trees_equal(value, case.scalar(*args))
    if has_aux:
        assert_trees_equal(aux, with_aux(case.scalar)(*args)[1])


def test_clipped_transform_leaves_small_gradients_alone():
    case = _case("dict")
    args = case.make_args()
    g = F.transform(case.scalar, clipped_grad_transform, transform_params={"max_norm": 1e6})
    assert_trees_equal(g(*args), jax.grad(case.scalar)(*args))


@pytest.mark.parametrize(
    ("ours", "raw", "kind"),
    [
        pytest.param(F.grad, jax.grad, "scalar", id="grad"),
        pytest.param(F.jacrev, jax.jacrev, "vec", id="jacrev"),
        pytest.param(F.jacfwd, jax.jacfwd, "vec", id="jacfwd"),
        pytest.param(F.hessian, jax.hessian, "scalar", id="hessian"),
    ],
)
@pytest.mark.parametrize(("has_aux", "return_value"), COMBOS, ids=COMBO_IDS)
def test_jax_transforms_through_the_engine(ours, raw, kind, has_aux, return_value):
    case = _case("dict")
    args = case.make_args()
    base = getattr(case, kind)
    fun = with_aux(base) if has_aux else base
    argnums = (1, 0)
    via_engine = F.transform(fun, raw, argnums, has_aux=has_aux, return_value=return_value)
    dedicated = ours(fun, argnums, has_aux=has_aux, return_value=return_value)
    assert_trees_equal(via_engine(*args), dedicated(*args))
    grads, _, _ = unpack(via_engine(*args), has_aux, return_value)
    assert_trees_equal(grads, expected(raw, base, args, argnums, has_aux)[0], rtol=1e-5)


def test_transform_params_are_forwarded_to_the_jax_transform():
    z = jnp.array([1.0 + 1.0j, 2.0 - 0.5j], dtype=jnp.complex64)
    f = lambda z: jnp.sum(z**3)
    g = F.transform(f, jax.grad, transform_params={"holomorphic": True})
    assert_trees_equal(g(z), jax.grad(f, holomorphic=True)(z))


@pytest.mark.parametrize("argnums", [0, -1, (0,), (1, 0)], ids=repr)
def test_transform_is_called_as_the_spec_says(argnums):
    """``transform(f, argnums=..., has_aux=True, **transform_params)``; an int argnums stays
    an int (so results are unwrapped), a sequence a tuple of the same length."""
    calls = []

    def recording(fun, *, argnums, has_aux, tag):
        calls.append({"argnums": argnums, "has_aux": has_aux, "tag": tag})
        return jax.grad(fun, argnums=argnums, has_aux=has_aux)

    f = lambda a, b: jnp.sum(a * b)
    a, b = jnp.arange(2.0), jnp.ones(2)
    g = F.transform(f, recording, argnums, transform_params={"tag": "t"})
    assert calls == []  # nothing happens until the transformed function is called
    out = g(a, b)
    assert len(calls) == 1 and calls[0]["has_aux"] is True and calls[0]["tag"] == "t"
    if isinstance(argnums, int):
        assert isinstance(calls[0]["argnums"], int)
    else:
        assert isinstance(calls[0]["argnums"], tuple) and len(calls[0]["argnums"]) == len(argnums)
    assert_trees_equal(out, jax.grad(f, argnums)(a, b))


@pytest.mark.parametrize(
    ("transform", "params"),
    [
        (scaled_grad_transform, {"factor": 2.0}),  # unknown name
        (scaled_grad_transform, {"scale": 1.0, "extra": 1}),  # one too many
        (scaled_grad_transform, None),  # a required parameter missing
        (clipped_grad_transform, {"scale": 0.5}),
        (jax.grad, {"not_an_option": True}),
    ],
    ids=["unknown", "extra", "missing", "wrong-transform", "jax.grad"],
)
def test_params_rejected_by_the_transform_fail_at_build(transform, params):
    with pytest.raises(TypeError, match="transform"):
        F.transform(jnp.sum, transform, transform_params=params)


def test_transform_accepting_any_kwargs_is_not_rejected():
    def permissive(fun, **kwargs):
        return jax.grad(fun, argnums=kwargs["argnums"], has_aux=kwargs["has_aux"])

    g = F.transform(jnp.sum, permissive, transform_params={"anything": 1})
    assert_trees_equal(g(jnp.ones(3)), jnp.ones(3))


def test_transform_must_be_callable():
    with pytest.raises(TypeError, match="transform"):
        F.transform(jnp.sum, "grad")


def test_module_through_custom_transform():
    """An equinox Module through a custom transform: ``None`` for its activation functions."""
    mlp = eqx.nn.MLP(2, 1, 3, 1, key=jax.random.key(0))
    f = lambda m, x: jnp.sum(m(x))
    x = jnp.ones(2)
    got = F.transform(f, scaled_grad_transform, transform_params={"scale": 2.0})(mlp, x)
    want = jax.tree.map(lambda g: 2.0 * g, eqx.filter_grad(f)(mlp, x))
    assert_trees_equal(got, want)
    assert got.activation is None


# has_aux=True with an output that is not an (output, aux) pair, for every transform.
HAS_AUX_USERS = [
    pytest.param(lambda f: F.grad(f, has_aux=True)(jnp.ones(3)), id="grad"),
    pytest.param(lambda f: F.vector_grad(f, has_aux=True)(jnp.ones(3)), id="vector_grad"),
    pytest.param(lambda f: F.jacrev(f, has_aux=True)(jnp.ones(3)), id="jacrev"),
    pytest.param(lambda f: F.jacfwd(f, has_aux=True)(jnp.ones(3)), id="jacfwd"),
    pytest.param(lambda f: F.hessian(f, has_aux=True)(jnp.ones(3)), id="hessian"),
    pytest.param(lambda f: F.fwd_grad(f, has_aux=True)(jnp.ones(3)), id="fwd_grad"),
    pytest.param(lambda f: F.transform(f, jax.grad, has_aux=True)(jnp.ones(3)), id="transform"),
    pytest.param(lambda f: F.vjp(f, jnp.ones(3), has_aux=True), id="vjp"),
    pytest.param(lambda f: F.jvp(f, (jnp.ones(3),), (jnp.ones(3),), has_aux=True), id="jvp"),
]


@pytest.mark.parametrize(
    "fun",
    [
        lambda x: jnp.sum(x),
        lambda x: (jnp.sum(x), x, x),
        lambda x: (jnp.sum(x),),
        lambda x: {"out": jnp.sum(x), "aux": x},
    ],
    ids=["bare", "triple", "single", "dict"],
)
@pytest.mark.parametrize("use", HAS_AUX_USERS)
def test_has_aux_requires_a_pair(use, fun):
    with pytest.raises(TypeError, match="has_aux"):
        use(fun)


@pytest.mark.parametrize(
    ("ours", "raw"),
    [
        pytest.param(lambda f, x: F.grad(f, has_aux=True)(x),
                     lambda f, x: jax.grad(f, has_aux=True)(x), id="grad"),
        pytest.param(lambda f, x: F.jacrev(f, has_aux=True)(x),
                     lambda f, x: jax.jacrev(f, has_aux=True)(x), id="jacrev"),
        pytest.param(lambda f, x: F.vjp(f, x, has_aux=True)[2],
                     lambda f, x: jax.vjp(f, x, has_aux=True)[2], id="vjp"),
        pytest.param(lambda f, x: F.jvp(f, (x,), (x,), has_aux=True)[2],
                     lambda f, x: jax.jvp(f, (x,), (x,), has_aux=True)[2], id="jvp"),
    ],
)
def test_aux_may_hold_non_arrays_where_jax_allows_it(ours, raw):
    """Reverse mode passes any aux through, as JAX does (vmapped transforms, like
    ``jax.jacfwd``, need array aux)."""

    def f(x):
        return jnp.sum(x**2), {"msg": "hello", "n": 3, "arr": x}

    x = jnp.arange(3.0)
    got, want = ours(f, x), raw(f, x)
    assert_trees_equal(got, want)
    aux = got[1] if isinstance(got, tuple) else got
    assert aux["msg"] == "hello" and aux["n"] == 3
