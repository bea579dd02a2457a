"""brainstate 0.5.4 parity and the bugs found trying the facade as a user would.

Each test pins one behaviour that was wrong before: brainstate's positional order, its argnums
rules, StateFinder's read/write split, fwd_grad's checks, GradientTransform with a Jacobian
transform, jvp's state tangents as a plain dict, the whole surface of jit, and the bugs
(alternating shapes, threads, states created inside a transform, debug_nan under jit,
transforms stored on a model, pickling, aux and cotangent handling).
"""

from __future__ import annotations

import pickle
import threading
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from facade_testing import assert_no_tracer, assert_same

import facade
from facade import transform as T
from facade._core import lowering
from functional import engine

X = jnp.array([0.5, -1.0])


def _w():
    return facade.ParamState(jnp.array([1.0, 2.0]), name="w")


# --- positional order ----------------------------------------------------------------------


def test_hessian_and_fwd_grad_take_brainstates_positional_order():
    w = _w()

    def loss(x):
        return jnp.sum((w.value * x) ** 2)

    grads, value = T.hessian(loss, w, None, True)(X)  # (func, grad_states, argnums, return_value)
    assert_same(value, loss(X))
    assert_same(grads, jax.hessian(lambda wv: jnp.sum((wv * X) ** 2))(w.value))
    key = jax.random.key(3)
    estimate, value = T.fwd_grad(loss, w, None, True, False, 4000, None, key)(X)
    assert_same(value, loss(X))
    np.testing.assert_allclose(estimate, 2 * w.value * X**2, atol=0.2)


def test_jvp_takes_has_aux_fourth():
    out, tangent, aux = T.jvp(lambda x: (x**2, x + 1), (X,), (jnp.ones(2),), True)
    assert_same((out, tangent, aux), (X**2, 2 * X, X + 1))


def test_jit_takes_brainstates_positional_order():
    f = T.jit(lambda x, n: x * n, None, None, 1)  # (fun, in_shardings, out_shardings, static)
    assert_same(f(X, 3), X * 3)


# --- argnums -------------------------------------------------------------------------------


@pytest.mark.parametrize("argnums", [-1, (0, -1)])
@pytest.mark.parametrize("with_states", [False, True])
def test_negative_argnums_are_refused_at_construction(argnums, with_states):
    states = _w() if with_states else None
    with pytest.raises(ValueError, match="non-negative"):
        T.grad(lambda x, y: jnp.sum(x * y), grad_states=states, argnums=argnums)


@pytest.mark.parametrize("argnums", [0.5, True, "0", (0, 1.0)])
def test_non_integer_argnums_raise_an_error_that_is_both_type_and_value_error(argnums):
    with pytest.raises(ValueError, match="argnums"):
        T.grad(jnp.sum, argnums=argnums)
    with pytest.raises(TypeError, match="argnums"):
        T.jacrev(jnp.sum, argnums=argnums)
    assert issubclass(engine.ArgnumsError, TypeError) and issubclass(
        engine.ArgnumsError, ValueError
    )


def test_functional_keeps_jax_negative_argnums():
    import functional as F

    assert_same(F.grad(lambda x, y: jnp.sum(x * y), argnums=-1)(X, 2 * X), X)


def test_argnums_pointing_at_a_state_argument_raises():
    w = _w()
    with pytest.raises(TypeError, match="holds a State"):
        T.grad(lambda s, x: jnp.sum(s.value * x), argnums=0)(w, X)


# --- StateFinder ---------------------------------------------------------------------------


def _finder_model():
    p = facade.ParamState(jnp.ones(()), name="weights")
    b = facade.ParamState(jnp.zeros(()), name="bias")
    anon = facade.State(jnp.zeros(()))

    def forward(x):
        _ = b.value  # read only
        p.value = p.value * x  # read and written
        anon.value = x  # written only
        return p.value + b.value

    return p, b, anon, forward


def test_state_finder_read_is_read_and_not_written():
    p, b, anon, forward = _finder_model()
    assert T.StateFinder(forward, usage="read", return_type="list")(2.0) == [b]
    both = T.StateFinder(forward, usage="both", return_type="list")(2.0)
    assert both == {"read": [b], "write": [p, anon]}


def test_state_finder_key_fn_falls_back_to_name_and_str():
    p, b, anon, forward = _finder_model()
    by_none = T.StateFinder(forward, usage="write", key_fn=lambda i, s: None)(2.0)
    assert by_none == {"weights": p, 1: anon}  # no name: its index
    unhashable = T.StateFinder(forward, usage="write", key_fn=lambda i, s: [i])(2.0)
    assert unhashable == {"[0]": p, "[1]": anon}


def test_state_finder_inside_a_facade_transform():
    p, b, anon, forward = _finder_model()
    seen = []

    def f(x):
        seen.append(T.StateFinder(forward, usage="write", return_type="list")(x))
        return forward(x)

    T.jit(f)(jnp.array(2.0))  # traced twice: the first trace guessed no states
    assert seen and all(found == [p, anon] for found in seen)
    assert_no_tracer(p, b, anon)


# --- fwd_grad ------------------------------------------------------------------------------


def test_fwd_grad_checks():
    with pytest.raises(TypeError, match="inexact"):
        T.fwd_grad(lambda n: jnp.sum(n * 1.0))(jnp.arange(3))
    with pytest.raises(ValueError, match="scalar"):
        T.fwd_grad(lambda x: x * 2)(X)
    with pytest.raises(ValueError, match="scalar"):
        T.fwd_grad(lambda x: x * 2, tangent_size=3)(X)
    seeded = T.fwd_grad(lambda x: jnp.sum(x**2), key=np.array([42]))(X)
    assert_same(seeded, T.fwd_grad(lambda x: jnp.sum(x**2), key=42)(X))


# --- GradientTransform -----------------------------------------------------------------------


def test_gradient_transform_repr():
    w = _w()
    g = T.GradientTransform(
        lambda x: jnp.sum(w.value * x), jax.grad, grad_states={"w": w}, argnums=0
    )
    text = repr(g)
    assert text.startswith("GradientTransform(target=<lambda>, transform=grad,")
    assert "grad_states={'w': ParamState}" in text and "argnums=0" in text


@pytest.mark.parametrize("out", ["dict", "tuple"])
def test_gradient_transform_with_jacrev_groups_var_grads_then_arg_grads(out):
    w = _w()

    def f(x, y):
        a, b = w.value * x, w.value * y
        return {"a": a, "b": b} if out == "dict" else (a, b)

    generic = T.GradientTransform(f, jax.jacrev, grad_states=w, argnums=(0, 1))(X, 2 * X)
    named = T.jacrev(f, grad_states=w, argnums=(0, 1))(X, 2 * X)
    assert_same(generic, named)
    # raw JAX nests output first: {"a": (J_w, J_x, J_y), ...}; the table wants argnum first
    raw = jax.jacrev(lambda wv, x, y: f_raw(wv, x, y, out), argnums=(0, 1, 2))(w.value, X, 2 * X)
    out_tree = jax.tree.structure(f_raw(w.value, X, 2 * X, out))
    per_output = out_tree.flatten_up_to(raw)

    def block(i):
        return out_tree.unflatten([p[i] for p in per_output])

    assert_same(generic, (block(0), (block(1), block(2))))


def f_raw(wv, x, y, out):
    a, b = wv * x, wv * y
    return {"a": a, "b": b} if out == "dict" else (a, b)


# --- jvp -----------------------------------------------------------------------------------


def test_jvp_state_tangents_as_a_plain_dict():
    m = facade.nn.Module()
    m.w = _w()
    params = m.states(facade.ParamState)

    def f(x):
        return jnp.sum(m.w.value * x)

    out, tangent = T.jvp(
        f, (X,), (jnp.zeros(2),), grad_states=params, state_tangents={("w",): jnp.ones(2)}
    )
    assert_same(tangent, jnp.sum(X))


# --- jit -----------------------------------------------------------------------------------


def test_jit_static_values_of_different_types_get_separate_programs():
    f = T.jit(lambda x, n: (x * n) if isinstance(n, float) else (x + n), static_argnums=1)
    assert_same(f(jnp.ones(2), 1), jnp.ones(2) + 1)
    assert_same(f(jnp.ones(2), 1.0), jnp.ones(2) * 1.0)
    assert f(jnp.ones(2, jnp.int32), True).dtype == jnp.int32


def test_jit_static_argnames_and_keyword_negative_static_argnums():
    traces = []

    def f(x, n, mode="add"):
        traces.append((n, mode))
        return x + n if mode == "add" else x * n

    g = T.jit(f, static_argnames=("mode",), static_argnums=-2)  # -2: n, as jax.jit counts
    assert_same(g(X, 2, mode="mul"), X * 2)
    assert_same(g(X, 2, mode="add"), X + 2)
    assert_same(g(X, 2, mode="add"), X + 2)
    assert traces == [(2, "mul"), (2, "add")]
    by_name = T.jit(f, static_argnames="n")  # found among the positional parameters
    assert_same(by_name(X, 3), X + 3)


def test_jit_shardings_donation_and_options():
    dev = jax.devices()[0]
    sharding = jax.sharding.SingleDeviceSharding(dev)
    s = facade.State(jnp.zeros(2), name="s")

    def f(x, y):
        s.value = s.value + x
        return x * y

    g = T.jit(
        f,
        in_shardings=sharding,
        out_shardings=sharding,
        donate_argnames="y",
        keep_unused=True,
        inline=True,
        name="named_program",
    )
    assert_same(g(X, 2 * X), 2 * X**2)
    assert_same(s.value, X)
    assert g(X, X).sharding == sharding
    assert "named_program" in g.lower(X, X).as_text()
    shape = g.eval_shape(X, X)
    assert (shape.shape, shape.dtype) == ((2,), jnp.float32)
    before = s.value
    g.clear_cache()
    assert s.value is before  # lower/eval_shape/clear_cache run nothing
    with warnings.catch_warnings():  # jax.jit deprecates backend=; the facade passes it on
        warnings.simplefilter("ignore", DeprecationWarning)
        assert_same(T.jit(f, backend="cpu")(X, X), X**2)


def test_jit_on_a_method_binds_to_each_instance():
    class Acc(facade.nn.Module):
        def __init__(self, start):
            super().__init__()
            self.total = facade.State(jnp.array(start))

        @T.jit
        def add(self, x):
            self.total.value = self.total.value + x
            return self.total.value

    a, b = Acc(1.0), Acc(10.0)
    assert float(a.add(1.0)) == 2.0 and float(b.add(1.0)) == 11.0 and float(a.add(1.0)) == 3.0


# --- bugs ----------------------------------------------------------------------------------


def test_alternating_shapes_that_read_different_states_do_not_retrace():
    small, big = facade.State(jnp.ones(()), name="small"), facade.State(jnp.ones(()), name="big")
    traces = []

    def f(x):
        traces.append(x.shape)
        return x * (small.value if x.shape[0] < 3 else big.value)

    g = T.jit(f)
    for i in range(20):
        g(jnp.ones(2 if i % 2 else 4))
    assert len(traces) <= 4  # each shape traced once (twice for the one that changes states)


def test_threads_with_shapes_that_pick_different_states():
    small, big = (
        facade.State(jnp.ones(()) * 2, name="small"),
        facade.State(jnp.ones(()) * 3, name="big"),
    )
    g = T.grad(lambda x: jnp.sum(x * (small.value if x.shape[0] < 3 else big.value)))
    errors, results = [], []

    def work(n):
        try:
            for _ in range(30):
                results.append((n, float(g(jnp.ones(n))[0])))
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in (2, 4, 2, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {r for r in results} == {(2, 2.0), (4, 3.0)}


@pytest.mark.parametrize("transform", ["grad", "jit", "for_loop"])
def test_a_state_created_inside_a_transform_works_and_leaves_no_tracer(transform):
    made = []

    def f(x, keep=False):
        local = facade.State(x * 2.0, name="local")
        local.value = local.value + 1.0
        if keep:
            made.append(local)
        return jnp.sum(local.value)

    def run(g):
        if transform == "grad":
            return T.grad(g)(X)
        if transform == "jit":
            return T.jit(g)(X)
        return T.for_loop(g, jnp.stack([X, X]))

    expected = {
        "grad": jnp.full(2, 2.0),
        "jit": jnp.sum(X * 2 + 1),
        "for_loop": jnp.full(2, jnp.sum(X * 2 + 1)),
    }
    assert_same(run(f), expected[transform])
    # Kept after the trace, it could only ever hold a shape: refused at once, naming it.
    with pytest.raises(TypeError, match="State 'local'.*inside a transform"):
        run(lambda x: f(x, keep=True))
    assert made
    for s in made:
        assert not any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves(s._value))


def test_debug_nan_reports_under_jit():
    w = facade.ParamState(jnp.array([1.0, -1.0]), name="w")
    g = T.grad(lambda x: jnp.sum(jnp.log(w.value * x)), grad_states=w, debug_nan=True)
    with pytest.raises(RuntimeError, match="NaN or Inf"):
        g(jnp.array([1.0, 0.0]))
    with pytest.raises(Exception, match="NaN or Inf"):
        jax.block_until_ready(T.jit(lambda x: g(x))(jnp.array([1.0, 0.0])))
    assert_same(T.jit(lambda x: g(x))(jnp.array([1.0, -1.0])), 1 / w.value)


class _Model(facade.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = facade.ParamState(jnp.array([1.0, 2.0]))
        self.h = facade.HiddenState(jnp.zeros(2))
        self.grad_fn = T.grad(self.loss, grad_states=self.w)
        self.step = T.jit(self.loss)

    def loss(self, x):
        self.h.value = self.h.value + x
        return jnp.sum(self.w.value * self.h.value)


def test_transforms_stored_on_a_model_add_no_state_paths_and_models_pickle():
    m = _Model()
    m.grad_fn(X)
    m.step(X)
    T.for_loop(m.loss, jnp.stack([X, X]))
    T.vjp(m.loss, X, grad_states=m.w)[1](1.0)
    assert list(m.states()) == [("h",), ("w",)]
    state = pickle.loads(pickle.dumps(m.w))
    assert_same(state.value, m.w.value) and state.name == m.w.name
    plain = facade.nn.Module()
    plain.w, plain.h = m.w, m.h
    copy = pickle.loads(pickle.dumps(plain))
    assert_same(copy.h.value, m.h.value)


def test_aux_and_cotangent_handling():
    with pytest.raises(TypeError, match="single array of shape"):
        T.grad(lambda x: jnp.sum(x), has_aux=True)(X)
    with pytest.raises(TypeError, match="auxiliary output .* str"):
        T.grad(lambda x: (jnp.sum(x), "label"), has_aux=True)(X)
    out, vjp_fn = T.vjp(lambda x: jnp.sum(x**2), X)
    assert_same(vjp_fn(1), 2 * X)  # a Python int cotangent, as the docstring allows


def test_a_transform_built_anew_follows_its_arguments():
    """Built on every call (brainstate's habit), grad reuses its program but always follows
    the function and the States it is given now."""
    a, b = facade.ParamState(jnp.array(2.0), name="a"), facade.ParamState(jnp.array(3.0), name="b")
    params = {"a": a}

    def loss(x):
        return sum(s.value * x for s in params.values())

    traces = []

    def counted(x):
        traces.append(1)
        return loss(x)

    built = None
    for _ in range(3):
        assert_same(T.grad(counted, grad_states=params)(1.0), {"a": jnp.array(1.0)})
        built = lowering.BUILT[0] if built is None else built
    assert len(traces) == 3  # traced on every call (a new transform), compiled once
    assert lowering.BUILT[0] == built
    params["b"] = b  # the same dict, now holding two States
    assert_same(
        T.grad(counted, grad_states=params)(2.0), {"a": jnp.array(2.0), "b": jnp.array(2.0)}
    )
    assert_same(T.grad(lambda x: loss(x) * 2, grad_states=params)(1.0), {"a": 2.0, "b": 2.0})
    # The same dict and the same States under other keys: the gradients follow the new keys.
    params.clear()
    params.update(z=a, y=b)
    assert_same(
        T.grad(counted, grad_states=params)(1.0), {"z": jnp.array(1.0), "y": jnp.array(1.0)}
    )
    # A list that now holds the States in the other order.
    order = [a, b]
    assert_same(T.grad(counted, grad_states=order)(1.0), [jnp.array(1.0), jnp.array(1.0)])
    order.reverse()
    weights = T.grad(lambda: a.value * 5.0 + b.value, grad_states=order)
    assert_same(weights(), [jnp.array(1.0), jnp.array(5.0)])
