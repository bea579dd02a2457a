"""State-aware loops against their explicit ``jax.lax`` equivalents: forward values, dtypes,
write-back, gradients (BPTT), composition with jit/grad/random, caching, and failure paths."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from facade_testing import assert_no_tracer, assert_same

import facade
from facade import transform as T
from facade._core import lowering

XS = jnp.array([[1.0, -0.5], [0.25, 2.0], [-1.0, 0.5], [0.5, 0.5]])
W0 = jnp.array([[0.5, -0.3], [0.2, 0.8]])


class RNN(facade.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = facade.ParamState(W0, name="w")
        self.h = facade.HiddenState(jnp.zeros(2), name="h")
        self.steps = facade.State(jnp.array(0, jnp.int32), name="steps")

    def step(self, x):
        self.h.value = jnp.tanh(self.h.value @ self.w.value + x)
        self.steps.value = self.steps.value + 1
        return self.h.value


def raw_rnn(w, h, xs, reverse=False):
    def body(h, x):
        h = jnp.tanh(h @ w + x)
        return h, h

    return jax.lax.scan(body, h, xs, reverse=reverse)


# --- forward -------------------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("unroll", [1, 2, True])
def test_for_loop_carries_written_states(reverse, unroll):
    m = RNN()
    ys = T.for_loop(m.step, XS, reverse=reverse, unroll=unroll)
    h_final, raw_ys = raw_rnn(W0, jnp.zeros(2), XS, reverse=reverse)
    assert_same(ys, raw_ys)
    assert_same(m.h.value, h_final)
    assert int(m.steps.value) == len(XS)
    assert m.steps.value.dtype == jnp.int32
    assert_no_tracer(m.h, m.steps)


def test_scan_with_pytree_carry_xs_and_outputs():
    m = RNN()

    def f(carry, x):
        total, count = carry["total"], carry["count"]
        h = m.step(x["a"] * x["b"])
        return {"total": total + h.sum(), "count": count + 1}, (h, {"sq": h**2})

    xs = {"a": XS, "b": XS[::-1]}
    init = {"total": jnp.array(0.0), "count": jnp.array(0, jnp.int32)}
    carry, ys = T.scan(f, init, xs)

    def raw(carry, x):
        h = jnp.tanh(carry["h"] @ W0 + x["a"] * x["b"])
        new = {"total": carry["total"] + h.sum(), "count": carry["count"] + 1, "h": h}
        return new, (h, {"sq": h**2})

    raw_carry, raw_ys = jax.lax.scan(raw, {**init, "h": jnp.zeros(2)}, xs)
    assert_same(carry, {"total": raw_carry["total"], "count": raw_carry["count"]})
    assert_same(ys, raw_ys)
    assert_same(m.h.value, raw_carry["h"])


def test_length_without_xs_and_several_xs():
    counter = facade.State(jnp.array(1.0), name="counter")

    def double():
        counter.value = counter.value * 2
        return counter.value

    ys = T.for_loop(double, length=5)
    assert_same(ys, 2.0 ** jnp.arange(1.0, 6.0))
    assert float(counter.value) == 32.0
    out = T.for_loop(lambda a, b: a * b, jnp.arange(3.0), jnp.arange(3.0) + 1)
    assert_same(out, jnp.arange(3.0) * (jnp.arange(3.0) + 1))


def test_read_only_states_are_inputs_and_new_values_are_seen():
    scale = facade.State(jnp.array(2.0), name="scale")
    f = lambda x: x * scale.value  # noqa: E731
    assert_same(T.for_loop(f, jnp.arange(3.0)), jnp.arange(3.0) * 2)
    scale.value = jnp.array(3.0)
    assert_same(T.for_loop(f, jnp.arange(3.0)), jnp.arange(3.0) * 3)


# --- gradients: backpropagation through time -------------------------------------------------


def _bptt(loop):
    m = RNN()

    def loss(xs):
        return jnp.sum(loop(m, xs) ** 2)

    grads, value = T.grad(loss, grad_states={"w": m.w}, return_value=True)(XS)

    def raw_loss(w, xs):
        return jnp.sum(raw_rnn(w, jnp.zeros(2), xs)[1] ** 2)

    raw_value, raw_grad = jax.value_and_grad(raw_loss)(W0, XS)
    assert_same(value, raw_value, rtol=1e-5)
    assert_same(grads["w"], raw_grad, rtol=1e-5)
    # the hidden state keeps the value the loop left it with
    assert_same(m.h.value, raw_rnn(W0, jnp.zeros(2), XS)[0])
    assert_no_tracer(m.w, m.h)


LOOPS = {
    "for_loop": lambda m, xs: T.for_loop(m.step, xs),
    "scan": lambda m, xs: T.scan(lambda c, x: (c, m.step(x)), 0.0, xs)[1],
    "checkpointed_for_loop": lambda m, xs: T.checkpointed_for_loop(m.step, xs, base=2),
    "checkpointed_scan": lambda m, xs: T.checkpointed_scan(lambda c, x: (c, m.step(x)), 0, xs)[1],
    "for_loop in jit": lambda m, xs: T.jit(lambda v: T.for_loop(m.step, v))(xs),
    "checkpoint in for_loop": lambda m, xs: T.for_loop(T.checkpoint(m.step), xs),
}


@pytest.mark.parametrize("loop", LOOPS)
def test_bptt_equals_raw_jax(loop):
    _bptt(LOOPS[loop])


@pytest.mark.parametrize("n, base", [(7, 2), (16, 4), (10, 3)])
def test_checkpointed_loops_match_plain_loops(n, base):
    xs = jnp.sin(jnp.arange(n * 2.0)).reshape(n, 2)
    plain, check = RNN(), RNN()
    ys_plain = T.for_loop(plain.step, xs)
    ys_check = T.checkpointed_for_loop(check.step, xs, base=base)
    assert_same(ys_check, ys_plain)
    assert_same(check.h.value, plain.h.value)
    assert int(check.steps.value) == n  # masked padding steps write nothing


# --- composition -------------------------------------------------------------------------


def test_random_draws_anew_each_iteration_and_key_moves_on():
    facade.random.seed(7)
    start = facade.random.get_key()
    ys = T.for_loop(lambda i: facade.random.normal(size=(2,)), jnp.arange(4))
    key, expected = start, []
    for _ in range(4):
        key, sub = jax.random.split(key)
        expected.append(jax.random.normal(sub, (2,)))
    assert_same(ys, jnp.stack(expected))
    np.testing.assert_array_equal(facade.random.get_key(), key)


def test_nested_loops_and_cond_under_grad():
    w = facade.ParamState(jnp.array(0.5), name="w")
    h = facade.HiddenState(jnp.array(0.0), name="h")

    def inner(x):
        h.value = T.cond(x > 0, lambda: h.value * w.value + x, lambda: h.value - w.value)
        return h.value

    def loss(xs):
        return jnp.sum(T.for_loop(lambda row: T.for_loop(inner, row), xs))

    xs = jnp.array([[1.0, -1.0, 2.0], [0.5, -2.0, 1.0]])

    def raw(wv, xs):
        def step(hv, x):
            hv = jax.lax.cond(x > 0, lambda: hv * wv + x, lambda: hv - wv)
            return hv, hv

        return jnp.sum(jax.lax.scan(lambda hv, row: jax.lax.scan(step, hv, row), 0.0, xs)[1])

    assert_same(T.grad(loss, grad_states=w)(xs), jax.grad(raw)(0.5, xs))


def test_eager_site_is_compiled_once_even_with_a_new_lambda():
    m = RNN()
    traces = []

    def body(x):
        traces.append(1)
        return m.step(x)

    T.for_loop(body, XS)
    first, built = len(traces), lowering.BUILT[0]
    for _ in range(3):
        T.for_loop(body, XS)
        T.for_loop(lambda x: body(x), XS)  # a new lambda over the same objects
    assert len(traces) >= first + 6  # traced on every call (it sees every change) ...
    assert lowering.BUILT[0] == built  # ... and compiled once
    assert int(m.steps.value) == 7 * len(XS)


def test_arrays_closed_over_by_an_inline_body_are_inputs_not_constants():
    """``for_loop(lambda i: step(inputs[i]), ...)`` in a function called with new ``inputs``
    compiles once: the closure's arrays are arguments of the program."""
    m = RNN()

    def step(x):
        return m.step(x)

    def run(inputs):
        return T.for_loop(lambda i: step(inputs[i]), jnp.arange(len(inputs)))

    h = jnp.zeros(2)
    for k in range(4):
        inputs = XS * k
        ys = run(inputs)
        h, raw_ys = raw_rnn(W0, h, inputs)
        assert_same(ys, raw_ys)
        if k == 0:
            built = lowering.BUILT[0]
    assert lowering.BUILT[0] == built
    assert_same(m.h.value, h)

    # a branch closing over an array, and a body that rebinds a closed-over name (not lifted)
    def pick(k, offset):
        return T.cond(k > 0, lambda: offset + 1, lambda: offset - 1)

    for k in range(3):
        offset = jnp.full(2, float(k))
        assert_same(pick(k, offset), offset + (1 if k else -1))

    def counting():
        calls = jnp.zeros(())

        def body(x):
            nonlocal calls
            return x + calls

        return T.for_loop(body, jnp.arange(3.0))

    assert_same(counting(), jnp.arange(3.0))


def test_a_state_created_in_the_body_leaves_no_tracer():
    def body(x):
        s = facade.State(x * 2, name="local")
        s.value = s.value + 1
        return s.value

    assert_same(T.for_loop(body, jnp.arange(3.0)), jnp.arange(3.0) * 2 + 1)

    made = []

    def keeping(x):
        s = facade.State(x * 2, name="local")
        made.append(s)  # kept after the trace: it could only ever hold a shape
        return s.value

    with pytest.raises(TypeError, match="State 'local'.*inside a transform"):
        T.for_loop(keeping, jnp.arange(3.0))
    assert made and all(
        not isinstance(leaf, jax.core.Tracer) for s in made for leaf in jax.tree.leaves(s._value)
    )


# --- while loops -----------------------------------------------------------------------------


def test_while_loop_equals_lax_while_loop():
    count = facade.State(jnp.array(0, jnp.int32), name="count")
    limit = facade.State(jnp.array(50.0), name="limit")

    def body(v):
        count.value = count.value + 1
        return v * 1.5

    out = T.while_loop(lambda v: v < limit.value, body, jnp.array(1.0))
    raw = jax.lax.while_loop(
        lambda c: c[1] < 50.0, lambda c: (c[0] + 1, c[1] * 1.5), (jnp.array(0, jnp.int32), 1.0)
    )
    assert_same(out, raw[1])
    assert_same(count.value, raw[0])


def test_bounded_while_loop_equals_while_loop_and_differentiates():
    def run(x, loop, **kw):
        return loop(lambda v: v < 10.0, lambda v: v * x, x, **kw)

    x = jnp.array(1.7)
    bounded = run(x, T.bounded_while_loop, max_steps=32, base=4)
    assert_same(bounded, run(x, T.while_loop))
    # the loop runs k = 4 times (1.7 ** 5 > 10): d/dx x ** (k + 1) = (k + 1) x ** k
    g = T.grad(lambda v: run(v, T.bounded_while_loop, max_steps=32, base=4))(x)
    np.testing.assert_allclose(g, 5 * x**4, rtol=1e-5)
    # and stops after max_steps
    assert_same(T.bounded_while_loop(lambda v: True, lambda v: v + 1, 0, max_steps=7), jnp.array(7))


def test_reverse_mode_through_while_loop_points_to_bounded_while_loop():
    def f(x):
        return T.while_loop(lambda v: v < 10.0, lambda v: v * 2, x)

    with pytest.raises(ValueError, match="bounded_while_loop"):
        T.grad(f)(1.0)
    np.testing.assert_allclose(T.jacfwd(f)(1.0), 16.0)  # forward mode works


# --- progress bar ----------------------------------------------------------------------------


def test_progress_bar_reports_from_inside_the_compiled_loop(monkeypatch):
    from facade.transform import _progress

    bars = []

    class Recorder:
        def __init__(self, total, desc="", **kw):
            self.total, self.n, self.descs, self.closed = total, 0, [], False
            bars.append(self)

        def set_description_str(self, d):
            self.descs.append(d)

        def refresh(self):
            pass

        def close(self):
            self.closed = True

    monkeypatch.setattr(_progress, "_new_bar", Recorder)
    acc = facade.State(jnp.array(0.0), name="acc")

    def step(x):
        acc.value = acc.value + x
        return x**2

    bar = T.ProgressBar(freq=2, desc=("i={i} y={y:.0f} acc={carry:.0f}", lambda d: d))
    ys = T.for_loop(step, jnp.arange(6.0), pbar=bar)
    jax.effects_barrier()
    assert_same(ys, jnp.arange(6.0) ** 2)
    (rec,) = bars
    assert rec.total == 6 and rec.n == 6 and rec.closed
    assert rec.descs[-1] == "i=5 y=25 acc=15"
    T.scan(lambda c, x: (c + x, c), 0.0, jnp.arange(5.0), pbar=3)
    jax.effects_barrier()
    assert len(bars) == 2 and bars[1].n == 5


# --- failures ---------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
    m = RNN()
    with pytest.raises(ValueError, match="different leading axes"):
        T.for_loop(lambda a, b: a + b, jnp.ones(3), jnp.ones(4))
    with pytest.raises(ValueError, match="length=5"):
        T.for_loop(lambda a: a, jnp.ones(3), length=5)
    with pytest.raises(ValueError, match="give xs"):
        T.for_loop(lambda: 1.0)
    with pytest.raises(TypeError, match="carry"):
        T.scan(lambda c, x: (jnp.stack([c, c]), x), 0.0, jnp.ones(3))
    with pytest.raises(TypeError, match="pair"):
        T.scan(lambda c, x: c, 0.0, jnp.ones(3))
    grow = facade.State(jnp.zeros(2), name="grow")
    with pytest.raises(
        TypeError, match=r"State 'grow' \(created at .*test_loops.py:\d+\).*float32\[3\]"
    ):
        T.for_loop(lambda x: setattr(grow, "value", jnp.zeros(3)), jnp.ones(2))
    with pytest.raises(TypeError, match="unroll"):
        T.for_loop(m.step, XS, unroll=0.5)
    with pytest.raises(TypeError, match="cond_fun"):
        T.while_loop(lambda v: jnp.ones(2) > 0, lambda v: v, 1.0)
    assert grow.value.shape == (2,)


def test_exception_in_body_keeps_entry_values_and_next_call_works():
    m = RNN()
    T.for_loop(m.step, XS)
    entry = (m.h.value, m.steps.value)

    def broken(x):
        m.step(x)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        T.for_loop(broken, XS)
    with pytest.raises(RuntimeError, match="boom"):
        T.grad(lambda xs: jnp.sum(T.for_loop(broken, xs)), grad_states=m.w)(XS)
    assert m.h.value is entry[0] and m.steps.value is entry[1]
    assert_no_tracer(m.w, m.h, m.steps)
    ys = T.for_loop(m.step, XS)
    assert_same(ys, raw_rnn(W0, entry[0], XS)[1])
