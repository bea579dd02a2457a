"""The reuse rule: a compiled program is reused only on evidence that covers its trace.

Each case changes the Python program (a rebound global, an attribute, an ``environ`` setting, a
re-created State, a new closed-over array) while the old cache keys would not have changed, and
checks the result against raw JAX over explicit values. See ``facade/_core/sites.py``.
"""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from facade_testing import assert_no_tracer

import facade as bs
from facade._core import lowering


class LIF(bs.nn.Module):
    """V += (-V + I) / tau, V a HiddenState."""

    def __init__(self, tau):
        super().__init__()
        self.tau = tau
        self.V = bs.HiddenState(jnp.zeros(()))

    def init_state(self, *args, **kwargs):
        self.V = bs.HiddenState(jnp.zeros(()))

    def update(self, current):
        self.V.value = self.V.value + (-self.V.value + current) / self.tau
        return self.V.value


def lif_trace(tau, steps, v0=0.0, current=1.0):
    """The membrane trace of LIF computed by raw ``lax.scan`` over explicit values."""

    def step(v, _):
        v = v + (-v + current) / tau
        return v, v

    return jax.lax.scan(step, jnp.asarray(v0, jnp.float32), None, length=steps)


# --- transforms called anew: traced on every call ------------------------------------------


def test_parameter_sweep_at_top_level_runs_every_model():
    models, outs = [], []
    for tau in [2.0, 5.0, 20.0]:
        net = LIF(tau)
        models.append(net)  # the old models stay alive
        # the example as written: the lambda runs at once, on this iteration's net
        outs.append(bs.transform.for_loop(lambda t: net.update(1.0), jnp.arange(20)))  # noqa: B023
    for tau, net, out in zip([2.0, 5.0, 20.0], models, outs, strict=True):
        final, trace = lif_trace(tau, 20)
        np.testing.assert_allclose(out, trace, rtol=1e-6)
        np.testing.assert_allclose(net.V.value, final, rtol=1e-6)
    np.testing.assert_allclose([float(o[-1]) for o in outs], [1.0, 0.9885, 0.6415], atol=1e-4)
    assert_no_tracer(*(m.V for m in models))


def test_environ_settings_are_read_at_every_eager_call():
    bs.environ.set(dt=0.1)
    xs = jnp.ones(2)
    np.testing.assert_allclose(bs.transform.for_loop(lambda t: t * bs.environ.get("dt"), xs), 0.1)
    with bs.environ.context(dt=0.5):
        np.testing.assert_allclose(
            bs.transform.for_loop(lambda t: t * bs.environ.get("dt"), xs), 0.5
        )


def test_dropout_follows_fit_between_eager_loops():
    drop = bs.nn.Dropout(0.5)
    xs = jnp.ones((4, 64))
    with bs.environ.context(fit=True):
        fitted = bs.transform.for_loop(lambda x: drop(x), xs)
    with bs.environ.context(fit=False):
        evaluated = bs.transform.for_loop(lambda x: drop(x), xs)
    assert set(np.unique(np.asarray(fitted))) <= {0.0, 2.0}
    assert np.any(np.asarray(fitted) == 0.0)
    np.testing.assert_array_equal(evaluated, xs)


class Gain(bs.nn.Module):
    def __init__(self):
        super().__init__()
        self.gain = 2.0
        self.inputs = jnp.arange(3.0)
        self.total = bs.State(jnp.zeros(()))

    def update(self, i):
        self.total.value = self.total.value + self.gain * self.inputs[i]
        return self.total.value


def test_module_attributes_changed_between_eager_loops_are_seen():
    m = Gain()
    idx = jnp.arange(3)
    np.testing.assert_allclose(bs.transform.for_loop(m.update, idx), [0.0, 2.0, 6.0])
    m.gain = 10.0
    m.total.value = jnp.zeros(())
    np.testing.assert_allclose(bs.transform.for_loop(m.update, idx), [0.0, 10.0, 30.0])
    m.inputs = jnp.array([1.0, 1.0, 1.0])
    m.total.value = jnp.zeros(())
    np.testing.assert_allclose(bs.transform.for_loop(m.update, idx), [10.0, 20.0, 30.0])


def test_init_all_states_with_the_old_states_still_referenced():
    net = LIF(2.0)
    history = [net.V]
    bs.transform.for_loop(lambda t: net.update(1.0), jnp.arange(5))
    old_value = net.V.value
    bs.nn.init_all_states(net)
    history.append(net.V)
    assert history[0] is not history[1]
    out = bs.transform.for_loop(lambda t: net.update(1.0), jnp.arange(5))
    final, trace = lif_trace(2.0, 5)
    np.testing.assert_allclose(out, trace, rtol=1e-6)
    np.testing.assert_allclose(net.V.value, final, rtol=1e-6)
    np.testing.assert_allclose(history[0].value, old_value)  # the old State is left alone


def test_a_closed_over_array_stays_concrete_in_the_trace():
    mask = jnp.array([1.0, 0.0, 1.0])
    out = bs.transform.for_loop(lambda x: x * np.asarray(mask), jnp.ones((2, 3)))
    np.testing.assert_array_equal(out, np.ones((2, 3)) * np.asarray(mask))


def test_a_new_closed_over_array_of_the_same_shape_does_not_recompile():
    model_total = bs.State(jnp.zeros(3))

    def run(inputs):
        def step(i):
            model_total.value = model_total.value + inputs[i]
            return model_total.value

        return bs.transform.for_loop(step, jnp.arange(4))

    run(jnp.ones((4, 3)))
    before = lowering.BUILT[0]
    for k in range(1, 4):
        model_total.value = jnp.zeros(3)
        inputs = jnp.full((4, 3), k, dtype=jnp.float32)
        out = run(inputs)
        np.testing.assert_allclose(out, jnp.cumsum(inputs, axis=0))
    assert lowering.BUILT[0] == before


def test_a_rebound_global_is_seen_by_an_eager_loop():
    global SCALE
    SCALE = 2.0
    xs = jnp.arange(3.0)
    np.testing.assert_allclose(bs.transform.for_loop(lambda x: x * SCALE, xs), xs * 2.0)
    SCALE = 3.0
    np.testing.assert_allclose(bs.transform.for_loop(lambda x: x * SCALE, xs), xs * 3.0)


def test_unchanged_eager_calls_compile_once():
    compiles = []

    def listen(event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        w = bs.State(jnp.zeros(4))

        def step(x):
            w.value = w.value * 0.5 + x
            return w.value

        xs = jnp.ones((8, 4))
        bs.transform.for_loop(step, xs)
        first = len(compiles)
        assert first >= 1
        expected = np.asarray(w.value)
        for _ in range(100):
            bs.transform.for_loop(lambda x: step(x), xs)  # a new lambda every call
        assert len(compiles) == first
        for _ in range(100 * 8):  # the same recurrence over explicit values
            expected = expected * 0.5 + 1.0
        np.testing.assert_allclose(w.value, expected, rtol=1e-5)
    finally:
        jax.monitoring.clear_event_listeners()


def test_callbacks_are_compared_by_their_python_function():
    seen_a, seen_b = [], []
    xs = jnp.arange(3.0)
    bs.transform.for_loop(lambda x: jax.debug.callback(seen_a.append, x) or x, xs)
    bs.transform.for_loop(lambda x: jax.debug.callback(seen_b.append, x) or x, xs)
    jax.effects_barrier()
    assert [float(v) for v in seen_a] == [0.0, 1.0, 2.0]
    assert [float(v) for v in seen_b] == [0.0, 1.0, 2.0]


def test_a_grad_built_anew_every_step_sees_a_rebound_global():
    global FACTOR
    w = bs.ParamState(jnp.array([1.0, 2.0]))
    FACTOR = 1.0
    g1 = bs.transform.grad(lambda: jnp.sum(FACTOR * w.value**2), grad_states=w)()
    FACTOR = 3.0
    g2 = bs.transform.grad(lambda: jnp.sum(FACTOR * w.value**2), grad_states=w)()
    np.testing.assert_allclose(g1, jax.grad(lambda v: jnp.sum(1.0 * v**2))(w.value))
    np.testing.assert_allclose(g2, jax.grad(lambda v: jnp.sum(3.0 * v**2))(w.value))


# --- transforms held and called again ------------------------------------------------------


def test_a_held_jit_retraces_when_an_environ_setting_it_read_changes():
    bs.environ.set(dt=0.1)

    @bs.transform.jit
    def scaled(x):
        return x * bs.environ.get("dt")

    np.testing.assert_allclose(scaled(1.0), 0.1)
    with bs.environ.context(dt=0.5):
        np.testing.assert_allclose(scaled(1.0), 0.5)
    np.testing.assert_allclose(scaled(1.0), 0.1)
    with bs.environ.context(unrelated=1):  # a setting the trace did not read: same program
        np.testing.assert_allclose(scaled(1.0), 0.1)


class Scaled(bs.nn.Module):
    def __init__(self):
        super().__init__()
        self.k = 2.0
        self.w = bs.ParamState(jnp.ones(2))

    @bs.transform.jit
    def __call__(self, x):
        return self.k * x * self.w.value


def test_a_jitted_method_sees_its_modules_plain_attributes():
    m = Scaled()
    np.testing.assert_allclose(m(1.0), [2.0, 2.0])
    m.k = 7.0
    np.testing.assert_allclose(m(1.0), [7.0, 7.0])
    m.w = bs.ParamState(jnp.array([1.0, 3.0]))  # a re-created State behind the attribute
    np.testing.assert_allclose(m(1.0), [7.0, 21.0])


def test_a_module_argument_is_keyed_by_its_attributes():
    @bs.transform.jit
    def apply(module, x):
        return module.gain * x + module.total.value

    m = Gain()
    np.testing.assert_allclose(apply(m, 1.0), 2.0)
    m.gain = 5.0
    np.testing.assert_allclose(apply(m, 1.0), 5.0)
    m.total = bs.State(jnp.array(1.0))
    np.testing.assert_allclose(apply(m, 1.0), 6.0)
    other = Gain()
    np.testing.assert_allclose(apply(other, 1.0), 2.0)


def test_a_held_jit_bakes_in_a_captured_global_as_jax_jit_does():
    global OFFSET
    OFFSET = 1.0

    def f(x):
        return x + OFFSET

    held = bs.transform.jit(f)
    raw = jax.jit(f)
    assert float(held(1.0)) == float(raw(1.0)) == 2.0
    OFFSET = 5.0
    assert float(held(1.0)) == float(raw(1.0)) == 2.0  # jax.jit's documented contract
    assert float(bs.transform.jit(f)(1.0)) == 6.0  # the fix: build the transform anew


def test_a_held_jit_retraces_when_a_state_changes_shape():
    s = bs.State(jnp.ones(2))

    @bs.transform.jit
    def total():
        return jnp.sum(s.value)

    assert float(total()) == 2.0
    s.value = jnp.ones(5)
    assert float(total()) == 5.0
    s.value = jnp.ones(2) * 3.0
    assert float(total()) == 6.0


def test_a_held_transform_with_one_program_checks_each_calls_inputs():
    """The held fast path (one traced signature, plain arguments) lets jax.jit check shapes,
    dtypes and weak types: every other call signature still gets its own trace."""
    w = bs.ParamState(jnp.array([1.0, 2.0]))

    def f(*xs):
        return w.value * sum(xs)

    raw = jax.jit(lambda w, *xs: w * sum(xs))
    others = [
        (jnp.ones(2, jnp.int32),),  # same shape, other dtype
        (2.0,),  # a Python number: weakly typed
        (jnp.float32(2.0),),  # the same value as an array: not weakly typed
        (jnp.ones(2), 3.0),  # another number of arguments
        (np.full(2, 4.0, np.float32),),
    ]
    for other in others:
        held = bs.transform.jit(f)  # one program so far: the fast path
        for args in [(jnp.ones(2),), other, (jnp.ones(2) * 5.0,)]:
            got, want = held(*args), raw(w.value, *args)
            assert got.dtype == want.dtype and got.weak_type == want.weak_type
            np.testing.assert_allclose(got, want)
    g = bs.transform.grad(lambda x: jnp.sum(w.value * x), grad_states=w)
    for x in (jnp.ones(2), jnp.ones(2) * 3.0, jnp.ones((3, 2))):
        np.testing.assert_allclose(g(x), jnp.sum(x.reshape(-1, 2), axis=0))
    # A first call with a keyword argument is no plain signature: a later plain call of the
    # same number of positional arguments is keyed (it failed in jax.jit's input check).
    h = bs.transform.jit(lambda x, scale=1.0: w.value * x * scale)
    np.testing.assert_allclose(h(jnp.ones(2), scale=3.0), w.value * 3.0)
    np.testing.assert_allclose(h(jnp.ones(2)), w.value)
    np.testing.assert_allclose(h(jnp.ones(2), scale=3.0), w.value * 3.0)


def test_a_held_grad_inside_jit_is_traced_once_on_the_first_call():
    """The held grad inside a jit is traced once on the jit's first call (the jit learns its
    States as its one trace reads them)."""
    w = bs.ParamState(jnp.array([1.0, 2.0]))
    traces = []

    def loss(x):
        traces.append(1)
        return jnp.sum(jnp.sin(w.value * x))

    g = bs.transform.grad(loss, grad_states=w)
    step = bs.transform.jit(lambda x: g(x))
    x = jnp.array([0.5, 3.0])
    np.testing.assert_allclose(step(x), jax.grad(lambda w: jnp.sum(jnp.sin(w * x)))(w.value))
    assert len(traces) == 1
    w.value = jnp.array([3.0, 4.0])
    np.testing.assert_allclose(step(x), jax.grad(lambda w: jnp.sum(jnp.sin(w * x)))(w.value))
    assert len(traces) == 1


def test_a_held_grad_reused_in_the_second_trace_still_reports_its_reads():
    """jvp's first trace finds a State it did not guess (w1) and traces again, reusing the held
    grad's program: the reads that grad made must still reach jvp's discovery."""
    w1 = bs.ParamState(jnp.array([0.5, -1.0]))
    w2 = bs.ParamState(jnp.array([2.0, 3.0]))

    def loss():
        return jnp.sum(jnp.sin(w1.value * w2.value) ** 2)

    bs.transform.hessian(loss, grad_states=w2)()  # leaves the guess of grad's next trace
    grad_fn = bs.transform.grad(loss, grad_states=w2)
    v = jnp.array([1.0, -2.0])
    _, hvp = bs.transform.jvp(grad_fn, (), (), grad_states=w2, state_tangents=v)

    def explicit(b):
        return jnp.sum(jnp.sin(w1.value * b) ** 2)

    _, want = jax.jvp(jax.grad(explicit), (w2.value,), (v,))
    np.testing.assert_allclose(hvp, want, rtol=1e-5)


def test_explain_retrace_names_the_cause(caplog):
    bs.environ.set(dt=0.1)
    s = bs.State(jnp.ones(2), name="s")

    @bs.transform.jit
    def f(x):
        return x * bs.environ.get("dt") + jnp.sum(s.value)

    with caplog.at_level(logging.WARNING, logger="facade.transform"):
        with bs.environ.context(explain_retrace=True):
            f(jnp.ones(2))
            f(jnp.ones(2))
            f(jnp.ones(3))
            with bs.environ.context(dt=0.2):
                f(jnp.ones(3))
                s.value = jnp.ones(4)
                f(jnp.ones(3))
    lines = [r.getMessage() for r in caplog.records if r.name == "facade.transform"]
    assert len(lines) == 4, lines
    assert "new function" in lines[0]
    assert "array argument 0 is float32[3] (was float32[2])" in lines[1]
    assert "environ setting 'dt' changed" in lines[2]
    assert "State 's'" in lines[3] and "float32[4]" in lines[3]


# --- failures found the same way ------------------------------------------------------------


def test_a_loop_helper_called_twice_with_a_flag_inside_one_jit():
    a = bs.State(jnp.zeros(()))
    b = bs.State(jnp.zeros(()))

    def accumulate(xs, into_a):
        def body(x):
            if into_a:
                a.value = a.value + x
            else:
                b.value = b.value + x

        bs.transform.for_loop(body, xs)

    @bs.transform.jit
    def step(xs):
        accumulate(xs, True)
        accumulate(xs * 10.0, False)

    step(jnp.arange(4.0))
    assert float(a.value) == 6.0
    assert float(b.value) == 60.0


class Lazy(bs.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = bs.ParamState(jnp.ones(2))

    def __call__(self, x):
        if not hasattr(self, "h"):
            self.h = bs.HiddenState(jnp.zeros(2))
        self.h.value = self.h.value + x * self.w.value
        return jnp.sum(self.h.value)


def test_a_state_created_lazily_inside_grad_fails_at_once():
    m = Lazy()
    with pytest.raises(TypeError, match=r"created inside a transform") as info:
        bs.transform.grad(m, grad_states=m.w)(jnp.ones(2))
    message = str(info.value)
    assert "HiddenState" in message and "test_reuse_rule.py" in message
    assert "before the transform" in message
    np.testing.assert_array_equal(m.w.value, jnp.ones(2))
    assert_no_tracer(m.w)


def test_errors_from_a_loop_under_raw_jit_name_the_users_function():
    s = bs.State(jnp.zeros(()))

    def my_body(x):
        s.value = s.value + x
        return s.value

    with pytest.raises(Exception) as info:
        jax.jit(lambda xs: bs.transform.for_loop(my_body, xs))(jnp.ones(3))
    message = str(info.value)
    assert "_for_loop_traced" not in message and "_lowering.py" not in message
    assert "my_body" in message or "State" in message
    assert float(s.value) == 0.0


def test_a_progress_bar_made_per_call_does_not_recompile():
    xs = jnp.arange(6.0)
    total = bs.State(jnp.zeros(()))

    def body(x):
        total.value = total.value + x
        return total.value

    bar = bs.transform.ProgressBar(freq=2, disable=True)
    bs.transform.for_loop(body, xs, pbar=bar)
    built = lowering.BUILT[0]
    bs.transform.for_loop(body, xs, pbar=bs.transform.ProgressBar(freq=2, disable=True))
    assert lowering.BUILT[0] == built  # an equal bar: the same program
    bs.transform.for_loop(body, xs, pbar=bs.transform.ProgressBar(freq=3, disable=True))
    assert lowering.BUILT[0] == built + 1  # another frequency: another program
    np.testing.assert_allclose(total.value, 3 * 15.0)
