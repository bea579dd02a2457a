"""Facade autodiff, table-driven: facade == functional (states as explicit args) == raw JAX.

Every transform x the three blocks of the spec's return table (no grad_states; grad_states
only; both, with int and tuple argnums) x grad_states given as one State, a list and a dict, and
every transform x every return combination (has_aux x return_value; see ``_table_cases``).
Values, tree structure, shapes, dtypes and weak types must agree. Below the table: write-back,
check_states, debug_nan, unit_aware, the decorator form, fwd_grad and jvp with state tangents.
"""

from __future__ import annotations

import functools
import itertools
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import facade
import functional as F
from facade import transform as T

# --- the computation ----------------------------------------------------------------------

A0 = jnp.array([0.5, -1.0, 2.0])
B0 = jnp.array([1.5, 0.25])
C0 = jnp.array(0.75)
X = jnp.array([1.0, 2.0, -0.5])
Y = jnp.array([0.3, -1.2])
Z = jnp.array(1.7)
ARGS = (X, Y, Z)


def scalar_math(a, b, c, x, y, z):
    return jnp.sum(jnp.sin(a * x)) + jnp.sum(b**2 * y) * z + c * z**2


def vector_math(a, b, c, x, y, z):
    return jnp.stack([jnp.sum(jnp.sin(a * x)) * z, jnp.sum(b * y) + c * jnp.sum(x) * z**2])


def aux_math(a, b, c, x, y, z):
    return {"m": jnp.mean(x * a), "k": z * b}


MATH = {"scalar": scalar_math, "vector": vector_math}


def make_states():
    a = facade.ParamState(A0, name="a")
    b = facade.ParamState(B0, name="b")
    c = facade.State(C0, name="c")  # read by the function, never differentiated
    return a, b, c


# grad_states kinds: how to build them from (a, b), and how a pure function unpacks the
# explicit state values that take their place.
GS_KINDS = {
    "single": (lambda a, b: a, lambda v: (v, B0)),
    "list": (lambda a, b: [a, b], lambda v: (v[0], v[1])),
    "dict": (lambda a, b: {"a": a, "b": b}, lambda v: (v["a"], v["b"])),
}
GS_VALUES = {"single": A0, "list": [A0, B0], "dict": {"a": A0, "b": B0}}


def stateful_fn(kind, has_aux, a, b, c):
    math = MATH[kind]

    def f(x, y, z):
        out = math(a.value, b.value, c.value, x, y, z)
        if has_aux:
            return out, aux_math(a.value, b.value, c.value, x, y, z)
        return out

    return f


def pure_fn(kind, has_aux, gs_kind):
    """The same computation with the grad_states' values as an explicit first argument."""
    math = MATH[kind]

    def values(*args):
        if gs_kind is None:
            return (A0, B0, C0, *args)
        va, vb = GS_KINDS[gs_kind][1](args[0])
        return (va, vb, C0, *args[1:])

    def f(*args):
        v = values(*args)
        return (math(*v), aux_math(*v)) if has_aux else math(*v)

    return f


# --- transforms ---------------------------------------------------------------------------


def _raw_vector_grad(f, argnums, has_aux):
    """Raw JAX vector_grad: the pullback of a ones cotangent."""
    positions = (argnums,) if isinstance(argnums, int) else argnums

    def g(*args):
        def of_selected(*sel):
            full = list(args)
            for i, s in zip(positions, sel, strict=True):
                full[i] = s
            return f(*full)

        out, pullback, aux = jax.vjp(of_selected, *(args[i] for i in positions), has_aux=True)
        grads = pullback(jnp.ones_like(out))
        return (grads[0] if isinstance(argnums, int) else grads), aux

    return g


# name -> (kind of output, facade factory, functional factory, raw JAX transform)
TRANSFORMS = {
    "grad": ("scalar", T.grad, F.grad, jax.grad),
    "vector_grad": ("vector", T.vector_grad, F.vector_grad, _raw_vector_grad),
    "jacrev": ("vector", T.jacrev, F.jacrev, jax.jacrev),
    "jacobian": ("vector", T.jacobian, F.jacobian, jax.jacrev),
    "jacfwd": ("vector", T.jacfwd, F.jacfwd, jax.jacfwd),
    "hessian": ("scalar", T.hessian, F.hessian, jax.hessian),
    "GradientTransform": (
        "scalar",
        lambda f, **kw: T.GradientTransform(f, jax.grad, **kw),
        lambda f, argnums, **kw: F.transform(f, jax.grad, argnums, **kw),
        jax.grad,
    ),
}

# (grad_states kind or None, argnums): the three blocks of the return table.
BLOCKS = (
    [(None, None), (None, 1), (None, (0, 2))]
    + [(gs, None) for gs in GS_KINDS]
    + [(gs, an) for gs in GS_KINDS for an in (2, (0, 2))]
)
RETURNS = list(itertools.product([False, True], [False, True]))  # (has_aux, return_value)


def _pure_argnums(gs_kind, argnums):
    """Positions in the pure function (grad_states' values first, when there are any)."""
    if gs_kind is None:
        return 0 if argnums is None else argnums
    if argnums is None:
        return 0
    if isinstance(argnums, int):
        return (0, 1 + argnums)
    return (0, *(1 + i for i in argnums))


def _arrange(grads, gs_kind, argnums):
    """Pure-function gradients in the spec's layout: arg_grads / var_grads / (var, arg)."""
    if gs_kind is None or argnums is None:
        return grads
    return (grads[0], grads[1] if isinstance(argnums, int) else tuple(grads[1:]))


def _pack(grads, value, aux, has_aux, return_value):
    if return_value:
        return (grads, value, aux) if has_aux else (grads, value)
    return (grads, aux) if has_aux else grads


def _unpack(result, has_aux, return_value):
    if return_value:
        return result if has_aux else (*result, None)
    return (*result[:1], None, result[1]) if has_aux else (result, None, None)


def assert_same(actual, expected, what=""):
    """Same tree structure; per leaf same shape, dtype, weak type, and close values."""
    s_act, s_exp = jax.tree.structure(actual), jax.tree.structure(expected)
    assert s_act == s_exp, f"{what}: structure {s_act} != {s_exp}"
    for i, (x, y) in enumerate(
        zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True)
    ):
        where = f"{what} leaf {i}"
        assert np.shape(x) == np.shape(y), f"{where}: shape {np.shape(x)} != {np.shape(y)}"
        assert jnp.result_type(x) == jnp.result_type(y), f"{where}: dtype"
        wx, wy = getattr(x, "weak_type", None), getattr(y, "weak_type", None)
        assert wx == wy, f"{where}: weak_type {wx} != {wy}"
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


@functools.cache
def _raw_oracle(name, gs_kind, argnums, has_aux):
    """Raw JAX (grads, value, aux) on the pure function."""
    kind, _, _, raw = TRANSFORMS[name]
    pure = pure_fn(kind, has_aux, gs_kind)
    args = ARGS if gs_kind is None else (GS_VALUES[gs_kind], *ARGS)
    with_aux = pure if has_aux else (lambda *a: (pure(*a), None))
    grads, aux = raw(with_aux, argnums=_pure_argnums(gs_kind, argnums), has_aux=True)(*args)
    return _arrange(grads, gs_kind, argnums), pure(*args)[0] if has_aux else pure(*args), aux


def _table_cases():
    """``grad``: the full product blocks x return combinations. Every other transform: every
    block, with the return combinations rotated so each transform meets all four and each
    block meets all four across transforms (the packing is one code path; a full product for
    every transform would cost one XLA compilation per case for no new path)."""
    for t, name in enumerate(n for n in TRANSFORMS if n != "jacobian"):
        for b, (gs_kind, argnums) in enumerate(BLOCKS):
            combos = RETURNS if name == "grad" else [RETURNS[(b + t) % len(RETURNS)]]
            for has_aux, return_value in combos:
                yield pytest.param(
                    name,
                    gs_kind,
                    argnums,
                    has_aux,
                    return_value,
                    id=f"{name}-{gs_kind}-{argnums}-aux{has_aux:d}-value{return_value:d}",
                )


@pytest.mark.parametrize("name,gs_kind,argnums,has_aux,return_value", list(_table_cases()))
def test_table(name, gs_kind, argnums, has_aux, return_value):
    kind, make_facade, make_functional, _ = TRANSFORMS[name]
    a, b, c = make_states()
    gs = None if gs_kind is None else GS_KINDS[gs_kind][0](a, b)
    result = make_facade(
        stateful_fn(kind, has_aux, a, b, c),
        grad_states=gs,
        argnums=argnums,
        has_aux=has_aux,
        return_value=return_value,
    )(*ARGS)

    # functional on the pure function, re-laid out like the facade's result
    pure = pure_fn(kind, has_aux, gs_kind)
    args = ARGS if gs_kind is None else (GS_VALUES[gs_kind], *ARGS)
    fres = make_functional(
        pure, argnums=_pure_argnums(gs_kind, argnums), has_aux=has_aux, return_value=return_value
    )(*args)
    g, v, x = _unpack(fres, has_aux, return_value)
    functional_result = _pack(_arrange(g, gs_kind, argnums), v, x, has_aux, return_value)

    raw_result = _pack(*_raw_oracle(name, gs_kind, argnums, has_aux), has_aux, return_value)
    assert_same(functional_result, raw_result, "functional vs raw JAX")
    assert_same(result, raw_result, "facade vs raw JAX")
    # the function only reads: every state is untouched
    for s, v0 in ((a, A0), (b, B0), (c, C0)):
        assert s.value is v0


def test_jacobian_is_jacrev():
    assert T.jacobian is T.jacrev


# --- vjp and jvp --------------------------------------------------------------------------

VJP_BLOCKS = (
    [(None, 0), (None, 1), (None, (0, 2))]
    + [(gs, None) for gs in GS_KINDS]
    + [(gs, an) for gs in GS_KINDS for an in (2, (0, 2))]
)


@pytest.mark.parametrize("has_aux", [False, True])
@pytest.mark.parametrize("gs_kind,argnums", VJP_BLOCKS)
def test_vjp_table(gs_kind, argnums, has_aux):
    a, b, c = make_states()
    gs = None if gs_kind is None else GS_KINDS[gs_kind][0](a, b)
    res = T.vjp(
        stateful_fn("vector", has_aux, a, b, c),
        *ARGS,
        grad_states=gs,
        argnums=argnums,
        has_aux=has_aux,
    )
    ct = jnp.array([0.7, -1.3])

    pure = pure_fn("vector", has_aux, gs_kind)
    args = ARGS if gs_kind is None else (GS_VALUES[gs_kind], *ARGS)
    positions = _pure_argnums(gs_kind, argnums)
    fres = F.vjp(pure, *args, argnums=positions, has_aux=has_aux)

    sel = (positions,) if isinstance(positions, int) else positions

    def of_selected(*s):
        full = list(args)
        for i, v in zip(sel, s, strict=True):
            full[i] = v
        return pure(*full)

    raw = jax.vjp(of_selected, *(args[i] for i in sel), has_aux=has_aux)
    raw_cts = raw[1](ct)
    raw_cts = raw_cts[0] if isinstance(positions, int) else raw_cts
    expected_cts = _arrange(raw_cts, gs_kind, argnums)

    assert_same(res[0], raw[0], "vjp primal out")
    assert_same(fres[0], raw[0], "functional vjp primal out")
    if has_aux:
        assert_same(res[2], raw[2], "vjp aux")
    assert_same(_arrange(fres[1](ct), gs_kind, argnums), expected_cts, "functional vjp cts")
    assert_same(res[1](ct), expected_cts, "facade vjp cts")
    assert len(res) == (3 if has_aux else 2)


def test_vjp_scalar_matches_grad():
    """The vjp page: vjp_fn(1.0) on a scalar output reproduces grad exactly."""
    a, b, c = make_states()
    f = stateful_fn("scalar", False, a, b, c)
    _, vjp_fn = T.vjp(f, *ARGS, grad_states=[a, b], argnums=(0, 2))
    g = T.grad(f, grad_states=[a, b], argnums=(0, 2))(*ARGS)
    assert_same(vjp_fn(1.0), g)


def test_vjp_without_primals_and_errors():
    a, b, c = make_states()

    def loss():
        return jnp.sum(a.value * X) + b.value[0]

    out, vjp_fn = T.vjp(loss, grad_states={"a": a, "b": b})
    assert_same(vjp_fn(1.0), {"a": X, "b": jnp.array([1.0, 0.0])})
    with pytest.raises(ValueError, match="nothing to differentiate"):
        T.vjp(loss)
    with pytest.raises(ValueError, match="out of range"):
        T.vjp(lambda x: jnp.sum(x), X, argnums=3)
    with pytest.raises(ValueError, match="never reads"):
        T.vjp(lambda x: jnp.sum(x), X, grad_states=c)


def test_vjp_pullback_reusable():
    a, b, c = make_states()
    _, vjp_fn = T.vjp(stateful_fn("vector", False, a, b, c), *ARGS, grad_states=a)
    s1, x1 = vjp_fn(jnp.array([1.0, 0.0]))
    s2, x2 = vjp_fn(jnp.array([0.0, 1.0]))
    s12, x12 = vjp_fn(jnp.array([1.0, 1.0]))
    assert_same(s1 + s2, s12)
    assert_same(x1 + x2, x12)


JVP_CASES = [None, *GS_KINDS]
TANGENTS = (jnp.array([0.1, -0.2, 0.3]), jnp.array([1.0, 0.5]), jnp.array(-0.4))
STATE_TANGENTS = {
    "single": jnp.array([0.2, 0.0, -1.0]),
    "list": [jnp.array([0.2, 0.0, -1.0]), jnp.array([0.3, 0.7])],
    "dict": {"a": jnp.array([0.2, 0.0, -1.0]), "b": jnp.array([0.3, 0.7])},
}


@pytest.mark.parametrize("has_aux", [False, True])
@pytest.mark.parametrize("gs_kind", JVP_CASES)
def test_jvp_table(gs_kind, has_aux):
    a, b, c = make_states()
    gs = None if gs_kind is None else GS_KINDS[gs_kind][0](a, b)
    st = None if gs_kind is None else STATE_TANGENTS[gs_kind]
    res = T.jvp(
        stateful_fn("vector", has_aux, a, b, c),
        ARGS,
        TANGENTS,
        grad_states=gs,
        state_tangents=st,
        has_aux=has_aux,
    )
    pure = pure_fn("vector", has_aux, gs_kind)
    primals = ARGS if gs_kind is None else (GS_VALUES[gs_kind], *ARGS)
    tangents = TANGENTS if gs_kind is None else (st, *TANGENTS)
    raw = jax.jvp(pure, primals, tangents, has_aux=has_aux)
    fres = F.jvp(pure, primals, tangents, has_aux=has_aux)
    assert_same(fres, raw, "functional jvp")
    assert_same(res, raw, "facade jvp")


def test_jvp_state_tangents_errors():
    a, b, c = make_states()
    f = stateful_fn("vector", False, a, b, c)
    with pytest.raises(ValueError, match="state_tangents"):
        T.jvp(f, ARGS, TANGENTS, grad_states=a)
    with pytest.raises(ValueError, match="state_tangents"):
        T.jvp(f, ARGS, TANGENTS, state_tangents=A0)


# --- weak types ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["grad", "jacrev", "jacfwd", "hessian", "vector_grad"])
def test_weak_types_follow_jax(name):
    """Python-scalar arguments are weakly typed in JAX; the facade keeps JAX's weak types."""
    kind, make_facade, _, raw = TRANSFORMS[name]
    w = facade.State(jnp.array([1.0, 2.0]))
    math = (lambda w, x: jnp.sum(w * x) ** 2) if kind == "scalar" else (lambda w, x: w * x**2)
    got = make_facade(lambda x: math(w.value, x), grad_states=w, argnums=0, return_value=True)(3.0)

    def pure(wv, x):
        return math(wv, x), None

    grads, _ = raw(pure, argnums=(0, 1), has_aux=True)(jnp.array([1.0, 2.0]), 3.0)
    expected = ((grads[0], grads[1]), math(jnp.array([1.0, 2.0]), 3.0))
    assert_same(got, expected)


# --- write-back ---------------------------------------------------------------------------

WRITE_BACK = ["grad", "vector_grad", "jacrev", "jacfwd", "hessian", "GradientTransform"]


@pytest.mark.parametrize("name", WRITE_BACK)
def test_write_back_and_entry_value(name):
    """Written states keep their new values; derivatives are w.r.t. the entry value."""
    kind, make_facade, _, raw = TRANSFORMS[name]
    w = facade.State(jnp.array([1.0, 2.0]), name="w")
    counter = facade.State(jnp.array(0), name="counter")

    def f(x):
        v = w.value
        w.value = v * 10.0  # read, then written: the gradient is w.r.t. the entry value
        counter.value = counter.value + 1
        out = v**3 * x
        return jnp.sum(out) if kind == "scalar" else out

    def pure(v, x):
        out = v**3 * x
        return (jnp.sum(out) if kind == "scalar" else out), None

    g = make_facade(f, grad_states=w, argnums=0)
    x = jnp.array([0.5, -1.0])
    for step in range(2):
        entry = w.value
        got = g(x)
        expected = raw(pure, argnums=(0, 1), has_aux=True)(entry, x)[0]
        assert_same(got, tuple(expected))
        assert_same(w.value, entry * 10.0)
        assert int(counter.value) == step + 1


def test_vjp_jvp_write_back():
    w = facade.State(jnp.array([1.0, 2.0]))
    n = facade.State(jnp.array(0.0))

    def f(x):
        v = w.value
        w.value = v + x
        n.value = n.value + 1.0
        return jnp.sum(v**2 * x)

    x = jnp.array([3.0, 4.0])
    out, vjp_fn = T.vjp(f, x, grad_states=w)
    assert_same(vjp_fn(1.0), (2 * jnp.array([1.0, 2.0]) * x, jnp.array([1.0, 4.0])))
    assert_same(w.value, jnp.array([4.0, 6.0]))
    out, tan = T.jvp(f, (x,), (jnp.ones(2),), grad_states=w, state_tangents=jnp.zeros(2))
    assert_same(out, jnp.sum(jnp.array([4.0, 6.0]) ** 2 * x))
    assert_same(tan, jnp.sum(jnp.array([16.0, 36.0])))
    assert_same(w.value, jnp.array([7.0, 10.0]))
    assert float(n.value) == 2.0


# --- check_states, debug_nan, unit_aware --------------------------------------------------


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_check_states_unread(name):
    kind, make_facade, _, _ = TRANSFORMS[name]
    a, b, c = make_states()
    unread = facade.State(jnp.array([1.0, 2.0]), name="never_read")
    line = unread.source.rsplit(":", 1)[1]
    f = stateful_fn(kind, False, a, b, c)
    with pytest.raises(ValueError) as info:
        make_facade(f, grad_states=[a, unread])(*ARGS)
    msg = str(info.value)
    assert "never_read" in msg
    assert re.search(rf"test_autodiff\.py:{line}\b", msg), msg
    assert a.value is A0

    got = make_facade(f, grad_states=[a, unread], check_states=False)(*ARGS)
    zero = [jnp.zeros((2, 2) if name in ("jacrev", "jacobian", "jacfwd") else 2)]
    if name == "hessian":
        zero = [[jnp.zeros((2, 3)), jnp.zeros((2, 2))]]
        assert_same(got[0][1], jnp.zeros((3, 2)))
    assert_same(got[1:], zero)


NAN_CASES = {
    # name -> (function of x, operation expected in the message)
    "log": (lambda w, x: jnp.sum(jnp.log(w * x) * w), "log"),
    "div": (lambda w, x: jnp.sum((w + x) / (w + x)), "div"),  # 0/0 where x == -w
    "sqrt": (lambda w, x: jnp.sum(jnp.sqrt(w - x)), "sqrt"),
}


@pytest.mark.parametrize("case", NAN_CASES)
def test_debug_nan(case):
    math, op = NAN_CASES[case]
    w = facade.State(jnp.array([1.0, 2.0]), name="w")
    side = facade.State(jnp.array(5.0), name="side")

    def f(x):
        side.value = side.value + 1.0
        return math(w.value, x)

    g = T.grad(f, grad_states=w, argnums=0, debug_nan=True)
    with pytest.raises(RuntimeError, match=op):
        g(jnp.array([-1.0, 3.0]))
    assert float(side.value) == 5.0  # nothing written on failure
    assert_same(w.value, jnp.array([1.0, 2.0]))
    # the same function on good inputs works, and writes
    g(jnp.array([0.5, 0.25]))
    assert float(side.value) == 6.0
    # without debug_nan: NaNs come back silently
    grads = T.grad(f, grad_states=w, argnums=0)(jnp.array([-1.0, 3.0]))
    assert not bool(jnp.all(jnp.isfinite(jnp.concatenate(grads))))


def test_debug_nan_from_inputs():
    w = facade.State(jnp.array([1.0, jnp.nan]), name="w")
    g = T.grad(lambda x: jnp.sum(w.value * x), grad_states=w, debug_nan=True)
    with pytest.raises(RuntimeError, match="NaN"):
        g(jnp.array([1.0, 2.0]) * jnp.nan)


@pytest.mark.parametrize("name", ["grad", "vector_grad", "jacrev", "jacfwd", "hessian"])
def test_unit_aware_without_brainunit(name, monkeypatch):
    monkeypatch.setitem(sys.modules, "brainunit", None)  # what an absent package looks like
    with pytest.raises(ImportError):
        import brainunit  # noqa: F401
    make = TRANSFORMS[name][1]
    with pytest.raises(ImportError, match=re.escape("stategrad[units]")):
        make(lambda x: x, unit_aware=True)


# --- decorator form, fwd_grad ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["grad", "vector_grad", "jacrev", "jacfwd", "hessian"])
def test_decorator_form(name):
    kind, make_facade, _, _ = TRANSFORMS[name]
    a, b, c = make_states()
    f = stateful_fn(kind, False, a, b, c)
    decorated = make_facade(grad_states={"a": a}, argnums=1, return_value=True)(f)
    direct = make_facade(f, grad_states={"a": a}, argnums=1, return_value=True)
    assert isinstance(decorated, T.GradientTransform)
    assert_same(decorated(*ARGS), direct(*ARGS))


def test_fwd_grad_approaches_gradient():
    """Forward gradients with facade states: the error shrinks towards the true gradient."""
    a, b, c = make_states()
    f = stateful_fn("scalar", False, a, b, c)
    exact = _raw_oracle("grad", "dict", 2, False)[0]

    def error(n):
        est = T.fwd_grad(
            f, grad_states={"a": a, "b": b}, argnums=2, tangent_size=n, key=jax.random.key(3)
        )(*ARGS)
        assert jax.tree.structure(est) == jax.tree.structure(exact)
        return sum(
            float(jnp.sum((g - e) ** 2))
            for g, e in zip(jax.tree.leaves(est), jax.tree.leaves(exact), strict=True)
        )

    norm = sum(float(jnp.sum(e**2)) for e in jax.tree.leaves(exact))
    many, few = error(5000), error(1)
    assert many < 0.01 * norm  # E[error] = (d + 1) * norm / n, about 1e-3 * norm here
    assert many < few


def test_a_gradient_transform_on_a_class_binds_like_jax_grad():
    """Every transform object binds as a method (one base, ``sites.Transformed``): the
    instance is the first argument, as for the function ``jax.grad`` returns."""

    class Model(facade.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = facade.ParamState(jnp.array([1.0, 2.0]))

        def loss(self, x):
            return jnp.sum(self.w.value * x**2)

        dloss = T.grad(loss, argnums=1)
        dloss_w = T.grad(loss, grad_states=None, argnums=1, return_value=True)

    class Raw:
        w = jnp.array([1.0, 2.0])

        def loss(self, x):
            return jnp.sum(self.w * x**2)

        dloss = jax.grad(loss, argnums=1)

    m, x = Model(), jnp.array([3.0, -1.0])
    np.testing.assert_allclose(m.dloss(x), Raw().dloss(x))
    g, value = m.dloss_w(x)
    np.testing.assert_allclose(g, Raw().dloss(x))
    np.testing.assert_allclose(value, Raw().loss(x))
    assert len(facade.graph.states(m)) == 1  # the stored transforms add no state paths
