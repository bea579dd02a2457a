"""The facade's invariants (issue 3), each tested across the transforms.

* A function that raises at discovery, at tracing or at run time leaves every State at its
  entry value, no tracer in any State, no frame on the stack; the next call works.
* A State given a new value, or a value of a new shape, between calls is used.
* Dropping a model and its transformed function frees the model.
* Transforms compose with each other and with jax.jit / vmap / lax.scan.
* Threads working on different models do not interfere.
"""

from __future__ import annotations

import gc
import threading
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import facade
from facade import transform as T
from facade._state import active_frames

X = jnp.array([0.5, -1.5])


class Boom(Exception):
    pass


class _RunFailure:
    """The host callback's switch. Kept off the Model: a jaxpr that referenced the model itself
    (a bound-method callback) would keep it alive in JAX's own trace caches, exactly as
    ``jax.jit(model)`` does in raw JAX; that is JAX's behaviour, not the facade's."""

    def __init__(self):
        self.on = False

    def __call__(self, x):
        if self.on:
            raise Boom("at run time")


class Model:
    """Reads ``w`` and ``r``, writes ``w`` (after reading it) and ``count``; fails on demand.

    ``fail``: None, "discovery" (the first trace of a call signature), "trace" (the traces
    after discovery) or "run" (a host callback that raises while the compiled program runs).
    """

    def __init__(self, w=(1.0, 2.0)):
        self.w = facade.ParamState(jnp.array(w), name="w")
        self.count = facade.State(jnp.array(0.0), name="count")
        self.r = facade.State(jnp.array(3.0), name="r")
        self._run_failure = _RunFailure()
        self.fail = None
        self.calls = 0
        self.calls_at_entry = 0
        self.discovery_calls = 0

    @property
    def fail(self):
        return self._fail

    @fail.setter
    def fail(self, where):
        self._fail = where
        self._run_failure.on = where == "run"

    def states(self):
        return (self.w, self.count, self.r)

    def __call__(self, x):
        self.calls += 1
        self.count.value = self.count.value + 1.0
        w = self.w.value
        out = jnp.sum(w**2 * x) * self.r.value
        self.w.value = w + 0.5
        if self.fail == "discovery":
            raise Boom("at discovery")
        if self.fail == "trace" and self.calls - self.calls_at_entry > self.discovery_calls:
            raise Boom("while tracing")
        jax.debug.callback(self._run_failure, x)
        return out


# name -> make(model) -> function of x that runs the transform once
TRANSFORMS = {
    "grad": lambda m: T.grad(m, grad_states=m.w, argnums=0),
    "vector_grad": lambda m: T.vector_grad(m, grad_states=[m.w]),
    "jacrev": lambda m: T.jacrev(m, grad_states={"w": m.w}),
    "jacfwd": lambda m: T.jacfwd(m, grad_states=m.w),
    "hessian": lambda m: T.hessian(m, grad_states=m.w),
    "GradientTransform": lambda m: T.GradientTransform(m, jax.grad, grad_states=m.w),
    "fwd_grad": lambda m: T.fwd_grad(m, grad_states=m.w, key=jax.random.key(0)),
    "vjp": lambda m: lambda x: T.vjp(m, x, grad_states=m.w)[1](1.0),
    "jvp": lambda m: (
        lambda x: T.jvp(m, (x,), (jnp.ones_like(x),), grad_states=m.w, state_tangents=jnp.ones(2))
    ),
    "jit": lambda m: T.jit(m),
    "jit(grad)": lambda m: T.jit(T.grad(m, grad_states=m.w)),
    "grad(jit)": lambda m: T.grad(T.jit(m), grad_states=m.w),
}


def assert_clean(states, entry):
    """Each state holds exactly its entry value; nothing traced anywhere; no frame left."""
    for s, v in zip(states, entry, strict=True):
        assert s._value is v, f"{s!r} changed"
        assert not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(s._value))
    assert active_frames() == []


def _count_discovery_calls(name):
    """How many times the first call of a fresh transform runs the function before its last
    trace (the one the compiled program comes from)."""
    m = Model()
    TRANSFORMS[name](m)(X)
    assert m.calls >= 1
    return m.calls - 1


# A Python exception while tracing propagates as it is; a host callback's exception surfaces
# as JAX's runtime error when the compiled program runs.
_EXPECTED = {"discovery": Boom, "trace": Boom, "run": jax.errors.JaxRuntimeError}


@pytest.mark.parametrize("where", ["discovery", "trace", "run"])
@pytest.mark.parametrize("name", TRANSFORMS)
def test_failure_leaves_states_untouched(name, where):
    m = Model()
    m.discovery_calls = _count_discovery_calls(name) if where == "trace" else 0
    fn = TRANSFORMS[name](m)
    entry = [s._value for s in m.states()]
    m.fail = where
    with pytest.raises(_EXPECTED[where], match=f"at {where}|while tracing|at run time"):
        fn(X)
    assert_clean(m.states(), entry)

    # the next call works and writes; derivatives at the entry value
    m.fail = None
    fn(X)
    np.testing.assert_allclose(m.w.value, entry[0] + 0.5)
    np.testing.assert_allclose(m.count.value, 1.0)
    # and a failure after a success (cached signature) is clean too
    entry = [s._value for s in m.states()]
    if where == "run":  # a cached signature is neither discovered nor traced again
        m.calls_at_entry, m.fail = m.calls, where
        m.discovery_calls = 0
        with pytest.raises(jax.errors.JaxRuntimeError, match="at run time"):
            fn(X)
        assert_clean(m.states(), entry)


def test_failure_on_retrace_with_new_shape():
    m = Model()
    g = T.grad(m, grad_states=m.w, argnums=0)
    g(X)
    entry = [s._value for s in m.states()]
    m.fail = "discovery"
    with pytest.raises(Boom):
        g(jnp.ones(2) * jnp.array([[1.0], [2.0]]))  # new signature: discovered again
    assert_clean(m.states(), entry)
    m.fail = None
    gw, gx = g(X)
    np.testing.assert_allclose(gw, 2 * entry[0] * X * 3.0)


def test_state_finder_failure_is_clean():
    m = Model()
    entry = [s._value for s in m.states()]
    m.fail = "discovery"
    with pytest.raises(Boom):
        T.StateFinder(m)(X)
    assert_clean(m.states(), entry)


def test_debug_nan_failure_is_clean():
    m = Model()
    g = T.grad(m, grad_states=m.w, debug_nan=True)
    entry = [s._value for s in m.states()]
    with pytest.raises(RuntimeError, match="NaN"):
        g(jnp.array([jnp.nan, 1.0]))
    assert_clean(m.states(), entry)


# --- no stale results ---------------------------------------------------------------------


def _pure_grad(w, x):
    return jax.grad(lambda w: jnp.sum(w**2) * x)(w)


NEW_VALUE = {
    "grad": lambda f, s: T.grad(f, grad_states=s),
    "jacrev": lambda f, s: T.jacrev(f, grad_states=s),
    "vjp": lambda f, s: lambda x: T.vjp(f, x, grad_states=s)[1](1.0)[0],
    "jit(grad)": lambda f, s: T.jit(T.grad(f, grad_states=s)),
}


@pytest.mark.parametrize("name", NEW_VALUE)
def test_new_value_and_new_shape_between_calls(name):
    w = facade.State(jnp.array([1.0, 2.0]), name="w")

    def f(x):
        return jnp.sum(w.value**2) * x

    g = NEW_VALUE[name](f, w)
    x = jnp.array(1.5)
    for value in ([1.0, 2.0], [3.0, -1.0], [1.0, 2.0, 3.0], [[1.0], [4.0]], [5.0, 6.0]):
        w.value = jnp.array(value)
        np.testing.assert_allclose(g(x), _pure_grad(w.value, x), rtol=1e-6)


def test_new_shape_changes_the_states_touched():
    """A function whose state accesses depend on a state's shape is lowered again."""
    w = facade.State(jnp.array([1.0, 2.0]), name="w")
    extra = facade.State(jnp.array(10.0), name="extra")
    log = facade.State(jnp.array(0.0), name="log")

    def f(x):
        out = jnp.sum(w.value**2) * x
        if w.value.shape[0] > 2:
            out = out + extra.value * x
            log.value = log.value + 1.0
        return out

    g = T.grad(f, grad_states=w, argnums=0, return_value=True)
    (gw, gx), v = g(2.0)
    np.testing.assert_allclose(gx, 5.0)
    w.value = jnp.array([1.0, 2.0, 3.0])
    (gw, gx), v = g(2.0)
    np.testing.assert_allclose(gx, 14.0 + 10.0)
    np.testing.assert_allclose(gw, [4.0, 8.0, 12.0])
    assert float(log.value) == 1.0
    w.value = jnp.array([1.0, 1.0])
    (gw, gx), v = g(2.0)
    np.testing.assert_allclose(gx, 2.0)
    assert float(log.value) == 1.0


# --- no leaks -----------------------------------------------------------------------------

LEAK_CASES = {
    **{k: TRANSFORMS[k] for k in ("grad", "hessian", "jit", "jit(grad)", "grad(jit)")},
    "vjp": lambda m: T.vjp(m, X, grad_states=m.w)[1],
    "jvp": TRANSFORMS["jvp"],
    "StateFinder": lambda m: T.StateFinder(m),
}


@pytest.mark.parametrize("name", LEAK_CASES)
def test_dropped_model_is_freed(name):
    def make():
        m = Model()
        fn = LEAK_CASES[name](m)
        fn(X) if name != "vjp" else fn(1.0)
        return weakref.ref(m.w), weakref.ref(m), fn

    ref_state, ref_model, fn = make()
    gc.collect()
    if name != "vjp":  # a pullback holds only residual arrays, never the model
        assert ref_state() is not None  # still reachable through fn
    del fn
    gc.collect()
    assert ref_model() is None
    assert ref_state() is None


def test_plain_function_with_vjp_cache_is_freed():
    """vjp keeps its lowering on the function object: dropping both frees the state."""

    def make():
        w = facade.State(jnp.array([1.0, 2.0]))

        def f(x):
            return jnp.sum(w.value * x)

        _, vjp_fn = T.vjp(f, X, grad_states=w)
        vjp_fn(1.0)
        return weakref.ref(w)

    ref = make()
    gc.collect()
    assert ref() is None


def _loss_of(w, x):  # long-lived (module-level) functions; models come and go
    return jnp.sum(w.value * x)


_CURRENT: dict = {}


def _loss_of_current(x):
    return jnp.sum(_CURRENT["w"].value * x)


@pytest.mark.parametrize("how", ["state as argument", "global model replaced"])
def test_long_lived_function_does_not_keep_dropped_states(how):
    def make():
        w = facade.State(jnp.ones(2))
        if how == "state as argument":
            _, vjp_fn = T.vjp(_loss_of, w, X, grad_states=w, argnums=1)
        else:
            _CURRENT["w"] = w
            _, vjp_fn = T.vjp(_loss_of_current, X, grad_states=w)
        vjp_fn(1.0)
        return weakref.ref(w)

    ref = make()
    _CURRENT.clear()
    gc.collect()
    assert ref() is None


# --- composition --------------------------------------------------------------------------


def test_grad_of_grad():
    w = facade.ParamState(jnp.array([1.0, -2.0]), name="w")

    def f(x):
        return jnp.sum(w.value**2 * x**3)

    inner = T.grad(f, grad_states=w, argnums=0)  # (2 w x^3, 3 w^2 x^2)
    d2x = T.grad(lambda x: jnp.sum(inner(x)[1]))(X)  # 6 w^2 x
    d2w = T.grad(lambda x: jnp.sum(inner(x)[0]), grad_states=w)(X)  # 2 x^3
    mixed = T.grad(lambda x: jnp.sum(inner(x)[0]), argnums=0)(X)  # 6 w x^2

    def pure(w, x):
        return jnp.sum(w**2 * x**3)

    wv = w.value
    np.testing.assert_allclose(d2x, jax.grad(lambda x: jnp.sum(jax.grad(pure, 1)(wv, x)))(X))
    np.testing.assert_allclose(d2w, jax.grad(lambda w: jnp.sum(jax.grad(pure, 0)(w, X)))(wv))
    np.testing.assert_allclose(mixed, jax.grad(lambda x: jnp.sum(jax.grad(pure, 0)(wv, x)))(X))
    np.testing.assert_allclose(d2x, 6 * wv**2 * X, rtol=1e-6)


def _read_only():
    w = facade.ParamState(jnp.array([1.0, -2.0]), name="w")

    def f(x):
        return jnp.sum(jnp.sin(w.value * x))

    def pure_grads(x):
        return jax.grad(lambda wv, x: jnp.sum(jnp.sin(wv * x)), argnums=(0, 1))(w.value, x)

    return w, f, pure_grads


def test_facade_grad_inside_jax_jit_vmap_scan():
    w, f, pure_grads = _read_only()
    g = T.grad(f, grad_states=w, argnums=0)
    xs = jnp.array([[0.5, 1.0], [2.0, -1.0], [0.0, 3.0]])

    for got, want in [
        (jax.jit(g)(X), pure_grads(X)),
        (jax.vmap(g)(xs), jax.vmap(pure_grads)(xs)),
        (jax.lax.scan(lambda c, x: (c, g(x)), 0.0, xs)[1], jax.vmap(pure_grads)(xs)),
        (jax.jit(jax.vmap(g))(xs), jax.vmap(pure_grads)(xs)),
    ]:
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    assert not isinstance(w._value, jax.core.Tracer)


@pytest.mark.parametrize("outer", ["jax.jit", "jax.lax.scan"])
def test_write_inside_foreign_trace_is_refused(outer):
    """A state written inside jax.jit / lax.scan cannot be threaded: a clear error, no tracer."""
    m = Model()
    g = T.grad(m, grad_states=m.w)
    entry = [s._value for s in m.states()]
    run = {
        "jax.jit": lambda: jax.jit(g)(X),
        "jax.lax.scan": lambda: jax.lax.scan(lambda c, x: (c, g(x)), 0.0, jnp.stack([X, X])),
    }[outer]
    with pytest.raises(RuntimeError, match=r"writes State 'count'.*facade\.transform\.jit"):
        run()
    assert_clean(m.states(), entry)


@pytest.mark.parametrize("outer", [jax.jit, jax.vmap, jax.grad])
def test_assigning_a_tracer_outside_facade_transforms_is_refused(outer):
    h = facade.State(jnp.array(0.0), name="h")
    entry = h._value
    with pytest.raises(TypeError, match="State 'h'.*tracer"):
        outer(lambda x: (setattr(h, "value", x * 2.0), jnp.sum(x))[1])(jnp.array([1.0]))
    assert h._value is entry


@pytest.mark.parametrize("name", list(TRANSFORMS) + ["StateFinder"])
def test_no_trace_leaks(name):
    """Under jax.checking_leaks, no facade transform keeps a tracer past its trace."""
    m = Model()
    make = (lambda m: T.StateFinder(m)) if name == "StateFinder" else TRANSFORMS[name]
    with jax.checking_leaks():
        make(m)(X)
    for s in m.states():
        assert not isinstance(s._value, jax.core.Tracer)


def test_inside_facade_jit_writes_back():
    m_eager, m_jit = Model(), Model()
    g_eager = T.grad(m_eager, grad_states=m_eager.w, argnums=0)
    g = T.grad(m_jit, grad_states=m_jit.w, argnums=0)

    @T.jit
    def step(x):
        gw, gx = g(x)
        return gw * 2.0, gx

    for _ in range(3):
        gw_e, gx_e = g_eager(X)
        gw, gx = step(X)
        np.testing.assert_allclose(gw, 2 * gw_e, rtol=1e-6)
        np.testing.assert_allclose(gx, gx_e, rtol=1e-6)
        for a, b in zip(m_jit.states(), m_eager.states(), strict=True):
            np.testing.assert_allclose(a.value, b.value)
    assert float(m_jit.count.value) == 3.0


def test_jit_of_grad_equals_grad_of_jit():
    results = []
    for make in (
        lambda m: T.jit(T.grad(m, grad_states=m.w, argnums=0)),
        lambda m: T.grad(T.jit(m), grad_states=m.w, argnums=0),
        lambda m: T.grad(m, grad_states=m.w, argnums=0),
    ):
        m = Model()
        fn = make(m)
        results.append([fn(X), fn(X), m.w.value, m.count.value])
    w0 = jnp.array([1.0, 2.0])
    expected0 = jax.grad(lambda w, x: jnp.sum(w**2 * x) * 3.0, argnums=(0, 1))(w0, X)
    for r in results:
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), r, results[-1])
    for a, b in zip(results[-1][0], expected0, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(results[-1][2], w0 + 1.0)


def test_vmap_over_vjp_pullback_with_states():
    w = facade.ParamState(jnp.array([1.0, 2.0, 3.0]), name="w")

    def f(x):
        return jnp.stack([jnp.sum(w.value * x), jnp.sum(w.value**2 * x**2)])

    x = jnp.array([0.5, -1.0, 2.0])
    _, vjp_fn = T.vjp(f, x, grad_states=w)
    jac_w, jac_x = jax.vmap(vjp_fn)(jnp.eye(2))

    def pure(wv, x):
        return jnp.stack([jnp.sum(wv * x), jnp.sum(wv**2 * x**2)])

    ej_w, ej_x = jax.jacrev(pure, argnums=(0, 1))(w.value, x)
    np.testing.assert_allclose(jac_w, ej_w, rtol=1e-6)
    np.testing.assert_allclose(jac_x, ej_x, rtol=1e-6)


# --- threads ------------------------------------------------------------------------------


def _train(m, steps=4):
    g = T.grad(m, grad_states=m.w, return_value=True)
    step = T.jit(lambda x: m(x) * 2.0)
    out = []
    for i in range(steps):
        gw, v = g(X * (i + 1))
        m.w.value = m.w.value - 0.1 * gw
        out.append((gw, v, step(X), m.w.value, m.count.value))
    return out


def test_threads_on_different_models():
    inits = [(1.0, 2.0), (-1.0, 0.5), (3.0, 3.0), (0.25, -2.0)]
    sequential = [_train(Model(w)) for w in inits]

    results: list = [None] * len(inits)
    errors: list = []
    barrier = threading.Barrier(len(inits))

    def work(i):
        try:
            m = Model(inits[i])
            barrier.wait()
            results[i] = _train(m)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inits))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), results, sequential)
