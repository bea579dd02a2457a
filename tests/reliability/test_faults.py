"""Faults: the user's function raising at every point where it runs, and at run time.

For every transform, the function is made to raise at its k-th execution for every k a
successful call needs (the first execution is discovery, the later ones the traces of the
compiled program and of nested transforms), on a cold transform and on a warm one called with a
new signature. Then: every State holds its entry value, no State holds a tracer, no facade
frame is left on the stack, and the next call returns exactly what raw JAX computes and writes
back the right values. ``jax.checking_leaks()`` is on throughout. ``KeyboardInterrupt`` is
raised the same way, and errors at run time come from a ``jax.debug.callback``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import facade
from facade import transform as T
from facade._state import active_frames

from ._support import Snapshot, assert_no_tracer


class Boom(Exception):
    pass


W0 = np.array([0.5, -1.0, 2.0], np.float32)
H0 = np.array([0.1, 0.2, -0.3], np.float32)
X = jnp.array([1.0, -0.5, 0.25])
X1 = jnp.array([0.7])  # another signature (broadcasts against the states)


class Model:
    """Three states: a parameter, a hidden state it updates, and an integer step counter."""

    def __init__(self) -> None:
        self.w = facade.ParamState(jnp.asarray(W0), name="w")
        self.h = facade.HiddenState(jnp.asarray(H0), name="h")
        self.count = facade.State(jnp.array(0, jnp.int32), name="count")
        self.executions = 0
        self.raise_at: int | None = None  # raise at this execution of the Python body
        self.exc: type[BaseException] = Boom
        self.armed = False  # raise from the run-time callback

    @property
    def states(self) -> list[facade.State]:
        return [self.w, self.h, self.count]

    def _callback(self) -> None:
        if self.armed:
            raise self.exc("boom at run time")

    def step_vec(self, x: Any) -> Any:
        self.executions += 1
        self.count.value = self.count.value + 1
        self.h.value = jnp.tanh(self.h.value + self.w.value * x)
        jax.debug.callback(self._callback)
        if self.executions == self.raise_at:
            raise self.exc(f"boom at execution {self.executions}")
        return self.h.value**2

    def step(self, x: Any) -> Any:
        return jnp.sum(self.step_vec(x))


# --- raw JAX references ----------------------------------------------------------------------


def ref_vec(w: Any, h: Any, x: Any) -> Any:
    return jnp.tanh(h + w * x) ** 2


def ref(w: Any, h: Any, x: Any) -> Any:
    return jnp.sum(ref_vec(w, h, x))


ONES3 = jnp.ones(3)

# name -> (make(model) -> call(x), expected(w, h, x) -> result). Each call runs the body once
# per call at run time, so after it ``h`` and ``count`` hold one step's update.
RUNNERS: dict[str, tuple[Callable[[Model], Callable[[Any], Any]], Callable[..., Any]]] = {
    "grad": (
        lambda m: T.grad(m.step, grad_states=m.w, argnums=0, return_value=True),
        lambda w, h, x: (jax.grad(ref, argnums=(0, 2))(w, h, x), ref(w, h, x)),
    ),
    "vector_grad": (
        lambda m: T.vector_grad(m.step_vec, grad_states=[m.w]),
        lambda w, h, x: [jax.grad(ref)(w, h, x)],
    ),
    "jacrev": (
        lambda m: T.jacrev(m.step_vec, grad_states={"w": m.w}, argnums=0),
        lambda w, h, x: (
            {"w": jax.jacrev(ref_vec)(w, h, x)},
            jax.jacrev(ref_vec, argnums=2)(w, h, x),
        ),
    ),
    "jacfwd": (
        lambda m: T.jacfwd(m.step_vec, grad_states=m.w),
        lambda w, h, x: jax.jacfwd(ref_vec)(w, h, x),
    ),
    "hessian": (
        lambda m: T.hessian(m.step, grad_states=m.w),
        lambda w, h, x: jax.hessian(ref)(w, h, x),
    ),
    "vjp": (
        lambda m: lambda x: T.vjp(m.step_vec, x, grad_states=m.w)[1](ONES3),
        lambda w, h, x: jax.vjp(lambda w, x: ref_vec(w, h, x), w, x)[1](ONES3),
    ),
    "jvp": (
        lambda m: (
            lambda x: T.jvp(
                m.step_vec, (x,), (jnp.ones_like(x),), grad_states=m.w, state_tangents=ONES3
            )
        ),
        lambda w, h, x: jax.jvp(lambda w, x: ref_vec(w, h, x), (w, x), (ONES3, jnp.ones_like(x))),
    ),
    "jit": (
        lambda m: T.jit(m.step),
        lambda w, h, x: ref(w, h, x),
    ),
    "jit(grad) nested": (
        lambda m: T.jit(lambda x: T.grad(m.step, grad_states=m.w)(x)),
        lambda w, h, x: jax.grad(ref)(w, h, x),
    ),
    "grad(jit) nested": (
        lambda m: T.grad(T.jit(m.step), grad_states=m.w),
        lambda w, h, x: jax.grad(ref)(w, h, x),
    ),
    "grad(vector_grad) nested": (
        lambda m: T.grad(
            lambda x: jnp.sum(T.vector_grad(m.step_vec, grad_states=m.w)(x) ** 2),
            grad_states=m.w,
        ),
        lambda w, h, x: jax.grad(lambda w: jnp.sum(jax.grad(ref)(w, h, x) ** 2))(w),
    ),
}


REFERENCES = {name: jax.jit(ref) for name, (_, ref) in RUNNERS.items()}


def assert_tree_close(got: Any, want: Any) -> None:
    assert jax.tree.structure(got) == jax.tree.structure(want), (got, want)
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert not isinstance(g, jax.core.Tracer)
        assert np.shape(g) == np.shape(e)
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=2e-5, atol=1e-6)


def check_good_call(model: Model, call: Callable[[Any], Any], name: str, x: Any) -> None:
    """The call returns raw JAX's result and advances the states by exactly one step."""
    model.raise_at, model.armed = None, False
    before = [np.asarray(s.value) for s in model.states]
    verify(model, before, call(x), name, x)


def reference(name: str, w: Any, h: Any, x: Any) -> Any:
    """Raw JAX's result, computed outside the leak checker (which disables JAX's caches)."""
    with jax.check_tracer_leaks(False):
        return jax.tree.map(np.asarray, REFERENCES[name](jnp.asarray(w), jnp.asarray(h), x))


def verify(model: Model, before: list[np.ndarray], got: Any, name: str, x: Any) -> None:
    w, h, c = before
    assert_tree_close(got, reference(name, w, h, x))
    for s in model.states:
        assert_no_tracer(s)
    np.testing.assert_allclose(model.h.value, np.tanh(h + w * np.asarray(x)), rtol=1e-6)
    np.testing.assert_array_equal(model.w.value, w)
    assert int(model.count.value) == c + 1
    assert active_frames() == []


@pytest.fixture(autouse=True)
def _leak_checks() -> Any:
    """``jax.checking_leaks()`` around every test.

    The leak checker runs ``gc.collect()`` and ``gc.get_referrers`` at the end of every trace;
    the objects alive before the test are frozen out of the collector's view first (tracers
    made during the test are not, so a leak is found all the same), which makes it ~3x cheaper.
    """
    import gc

    gc.collect()
    gc.freeze()
    try:
        with jax.checking_leaks():
            yield
    finally:
        gc.unfreeze()


def test_facade_runs_clean_under_checking_leaks() -> None:
    """Found by this suite: discover() once kept its trace's tracers alive (fixed)."""
    model = Model()
    with jax.checking_leaks():
        check_good_call(model, RUNNERS["jit"][0](model), "jit", X)


def raise_at_each_execution(name: str, warm: bool, exc: type[BaseException]) -> int:
    """Raise ``exc`` at execution k = 1, 2, ... of a fresh transform's call until a call runs
    the body fewer than k times (and so succeeds, and is checked). Returns the last k raised."""
    x = X1 if warm else X
    k = 1
    while True:
        model = Model()
        call = RUNNERS[name][0](model)
        if warm:  # compiled for another signature first
            check_good_call(model, call, name, X)
        entry = Snapshot(model.states)
        before = [np.asarray(s.value) for s in model.states]
        model.raise_at, model.exc = model.executions + k, exc
        try:
            got = call(x)
        except exc as err:
            assert f"boom at execution {model.raise_at}" in str(err)
        else:  # the body ran fewer than k times: a plain good call
            verify(model, before, got, name, x)
            return k - 1
        entry.assert_unchanged()
        check_good_call(model, call, name, x)  # the failed signature, now traced afresh
        check_good_call(model, call, name, x)  # and from the cache
        k += 1


LEAKY = ("jit(grad) nested", "grad(vector_grad) nested")


def cases(pairs: list[tuple[Any, ...]]) -> list[Any]:
    return [pytest.param(*p) for p in pairs]


@pytest.mark.parametrize("name", LEAKY)
def test_nested_transform_runs_clean_under_checking_leaks(name: str) -> None:
    """Found by this suite after 007a4cc: a nested first call kept its stale trace (fixed)."""
    model = Model()
    check_good_call(model, RUNNERS[name][0](model), name, X)


COLD = list(RUNNERS)
WARM = ["grad", "vjp", "jvp", "jit", "jit(grad) nested", "grad(jit) nested"]


@pytest.mark.parametrize(
    "name,warm", cases([(n, False) for n in COLD] + [(n, True) for n in WARM]), ids=str
)
def test_raise_at_every_execution(name: str, warm: bool) -> None:
    # At least one execution of the body: a trace (a first trace makes the States it did not
    # expect inputs as it reads them, so a cold call may run the body only once).
    assert raise_at_each_execution(name, warm, Boom) >= 1


@pytest.mark.parametrize("name", cases([(n,) for n in WARM]))
def test_keyboard_interrupt_at_every_execution(name: str) -> None:
    assert raise_at_each_execution(name, False, KeyboardInterrupt) >= 1


RUN_TIME = list(RUNNERS)


@pytest.mark.parametrize(
    "name,exc",
    cases([(n, Boom) for n in RUN_TIME] + [(n, KeyboardInterrupt) for n in ("grad", "vjp", "jit")]),
    ids=str,
)
def test_raise_at_run_time(name: str, exc: type[BaseException]) -> None:
    """A callback raising while the compiled program runs (JAX reports a JaxRuntimeError)."""
    model = Model()
    call = RUNNERS[name][0](model)
    check_good_call(model, call, name, X)  # compiled and run once
    entry = Snapshot(model.states)
    model.armed, model.exc = True, exc
    with pytest.raises(BaseException, match="boom at run time") as info:
        jax.block_until_ready(call(X))
    assert isinstance(info.value, exc | jax.errors.JaxRuntimeError), info.value
    entry.assert_unchanged()
    for s in model.states:  # the values are concrete and usable, not poisoned buffers
        np.asarray(s.value)
    check_good_call(model, call, name, X)


# --- the vjp pullback ----------------------------------------------------------------------


class PullbackModel(Model):
    """``step_vec`` whose backward rule raises (at trace or at run time) when told to."""

    def __init__(self) -> None:
        super().__init__()
        self.bwd_raise: str | None = None  # None, "trace" or "run"

        @jax.custom_vjp
        def scale(v: Any) -> Any:
            return v * 1.0

        def fwd(v: Any) -> Any:
            return v * 1.0, None

        def bwd(_: Any, g: Any) -> Any:
            if self.bwd_raise == "trace":
                raise self.exc("boom in the pullback")
            jax.debug.callback(self._bwd_callback)
            return (g * 1.0,)

        scale.defvjp(fwd, bwd)
        self.scale = scale

    def _bwd_callback(self) -> None:
        if self.bwd_raise == "run":
            raise self.exc("boom in the pullback at run time")

    def step_vec(self, x: Any) -> Any:
        return self.scale(super().step_vec(x))


@pytest.mark.parametrize("when", ["trace", "run"])
@pytest.mark.parametrize("exc", [Boom, KeyboardInterrupt])
def test_raise_inside_the_pullback(when: str, exc: type[BaseException]) -> None:
    model = PullbackModel()
    model.exc = exc
    out, vjp_fn = T.vjp(model.step_vec, X, grad_states=model.w)
    want = reference("vjp", W0, H0, X)
    after_forward = Snapshot(model.states)
    if when == "run":
        assert_tree_close(vjp_fn(ONES3), want)  # the pullback compiled and ran once
    model.bwd_raise = when
    with pytest.raises(BaseException, match="boom in the pullback") as info:
        jax.block_until_ready(vjp_fn(ONES3))
    assert isinstance(info.value, exc | jax.errors.JaxRuntimeError), info.value
    after_forward.assert_unchanged()  # the pullback writes nothing, even failing
    model.bwd_raise = None
    assert_tree_close(vjp_fn(ONES3), want)  # the same pullback works afterwards
    after_forward.assert_unchanged()
    check_good_call(model, RUNNERS["vjp"][0](model), "vjp", X)


def test_bad_cotangent_then_good_one() -> None:
    model = Model()
    out, vjp_fn = T.vjp(model.step_vec, X, grad_states=model.w)
    after_forward = Snapshot(model.states)
    with pytest.raises(ValueError, match="cotangent"):
        vjp_fn(jnp.ones(4))
    after_forward.assert_unchanged()
    want = reference("vjp", W0, H0, X)
    assert_tree_close(vjp_fn(ONES3), want)


# --- a tracer must never reach a State, whichever transform is outside ---------------------------


def test_facade_transform_inside_a_raw_jax_transform_leaks_no_tracer() -> None:
    """A facade transform that writes States, called under raw ``jax.jit``, fails loudly naming
    a written State, and leaves no tracer in any State (found by this suite; fixed)."""
    model = Model()
    g = T.grad(model.step, grad_states=model.w)
    entry = Snapshot(model.states)
    try:
        with pytest.raises(Exception, match=r"State '(count|h)' \(created at .*test_faults\.py"):
            jax.jit(g)(X)
        for s in model.states:
            assert_no_tracer(s)
        entry.assert_unchanged()
    finally:
        entry.restore()
    check_good_call(model, RUNNERS["grad"][0](model), "grad", X)


def test_read_only_facade_transform_inside_raw_jax_jit() -> None:
    """Reading States only, a facade transform traces through a raw ``jax.jit``."""
    model = Model()
    entry = Snapshot(model.states)
    g = T.grad(lambda x: jnp.sum(jnp.tanh(model.w.value * x) ** 2), grad_states=model.w)
    got = jax.jit(g)(X)
    with jax.check_tracer_leaks(False):
        want = jax.grad(lambda w: jnp.sum(jnp.tanh(w * X) ** 2))(jnp.asarray(W0))
    assert_tree_close(got, want)
    entry.assert_unchanged()


def test_assigning_a_tracer_outside_facade_transforms_is_refused() -> None:
    """Assigning a tracer to a State under a raw JAX transform raises, naming the State."""
    model = Model()
    entry = Snapshot(model.states)
    try:
        with pytest.raises(TypeError, match=r"'h'"):
            jax.jit(lambda x: setattr(model.h, "value", x))(X)
        entry.assert_unchanged()
    finally:
        entry.restore()


def test_checking_leaks_is_on() -> None:
    """The autouse fixture really turns the leak checker on: a deliberate leak is caught."""
    leaked = []
    with pytest.raises(Exception, match="[Ll]eak"):
        jax.jit(lambda x: leaked.append(x) or x)(1.0)
