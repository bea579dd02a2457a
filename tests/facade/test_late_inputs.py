"""A first trace that meets States it did not expect makes them inputs as it goes.

A held ``jit`` knows no States before its first call. Its trace gives each State it reads a new
input of the program at the point of the read (``_state.late_input``), and outputs the ones it
writes, so the user's function runs once, not twice. Each case checks the values against raw
JAX over explicit values on later calls with changed State values (a State baked in as a
constant would keep its first value), and counts the traces.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from facade_testing import assert_no_tracer

import facade as bs


class Counter:
    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1


def test_a_held_jit_runs_the_users_python_once_on_its_first_call():
    w = bs.ParamState(jnp.array([1.0, 2.0]), name="w")
    h = bs.HiddenState(jnp.zeros(2), name="h")
    runs = Counter()

    @bs.transform.jit
    def step(x):
        runs()
        h.value = jnp.tanh(w.value * x + h.value)
        return jnp.sum(h.value)

    hv = np.zeros(2, np.float32)
    for i, scale in enumerate([1.0, 2.0, -0.5]):
        w.value = jnp.array([1.0, 2.0]) * scale  # a new value: read as an input, not baked
        x = jnp.array([0.5, -1.0]) * (i + 1)
        want_h = np.tanh(np.asarray(w.value) * np.asarray(x) + hv)
        np.testing.assert_allclose(step(x), want_h.sum(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(h.value, want_h, rtol=1e-5, atol=1e-6)
        hv = want_h
    assert runs.n == 1
    assert_no_tracer(w, h)


def test_a_state_only_written_is_an_output():
    out = bs.State(jnp.zeros(3), name="out")
    runs = Counter()

    @bs.transform.jit
    def put(x):
        runs()
        out.value = x * 2.0

    for v in (1.0, 4.0):
        put(jnp.full(3, v, jnp.float32))
        np.testing.assert_allclose(out.value, np.full(3, 2.0 * v))
    assert runs.n == 1


def test_tree_and_python_number_values_become_inputs():
    tree = bs.State({"a": jnp.ones(2), "b": (jnp.zeros(()), jnp.arange(3.0))}, name="tree")
    gain = bs.State(2.0, name="gain")  # a Python float: weakly typed
    runs = Counter()

    @bs.transform.jit
    def f(x):
        runs()
        t = tree.value
        tree.value = {"a": t["a"] + x, "b": (t["b"][0] + 1.0, t["b"][1] * gain.value)}
        return jnp.sum(t["a"]) * gain.value

    for k in range(3):
        a0, b0, c0 = (np.asarray(v) for v in (tree.value["a"], *tree.value["b"]))
        g = 2.0 + k
        gain.value = g  # still a Python float: same signature
        np.testing.assert_allclose(f(jnp.ones(2)), a0.sum() * g)
        np.testing.assert_allclose(tree.value["a"], a0 + 1.0)
        np.testing.assert_allclose(tree.value["b"][0], b0 + 1.0)
        np.testing.assert_allclose(tree.value["b"][1], c0 * g)
    assert runs.n == 1


def test_a_state_read_in_a_raw_scan_body_and_in_a_facade_loop():
    w = bs.ParamState(jnp.array(0.5), name="w")
    acc = bs.HiddenState(jnp.zeros(()), name="acc")
    runs = Counter()

    @bs.transform.jit
    def run(xs):
        runs()

        def raw_body(c, x):
            return c + x * w.value, None  # a State read inside jax.lax.scan

        c, _ = jax.lax.scan(raw_body, jnp.zeros(()), xs)

        def body(x):
            acc.value = acc.value + x * w.value

        bs.transform.for_loop(body, xs)
        return c

    xs = jnp.arange(4.0)
    total = 0.0
    for wv in (0.5, 3.0):
        w.value = jnp.array(wv)
        want = jax.lax.scan(lambda c, x, wv=wv: (c + x * wv, None), 0.0, xs)[0]
        np.testing.assert_allclose(run(xs), want)
        total += float(want)
        np.testing.assert_allclose(acc.value, total)
    assert runs.n == 1


def test_a_jit_inside_a_jit_gives_the_inner_program_its_own_input():
    w = bs.ParamState(jnp.array([1.0, -1.0]), name="w")
    inner_runs, outer_runs = Counter(), Counter()

    @bs.transform.jit
    def inner(x):
        inner_runs()
        return w.value * x

    @bs.transform.jit
    def outer(x):
        outer_runs()
        return jnp.sum(inner(x) ** 2)

    x = jnp.array([2.0, 3.0])
    for wv in ([1.0, -1.0], [0.5, 2.0]):
        w.value = jnp.array(wv)
        np.testing.assert_allclose(outer(x), np.sum((np.array(wv) * np.asarray(x)) ** 2))
        np.testing.assert_allclose(inner(x), np.array(wv) * np.asarray(x))
    assert outer_runs.n == 1
    assert inner_runs.n == 2  # once inside outer's trace, once for its own eager program


def test_python_control_flow_on_a_state_value_still_fails():
    """A late input is a tracer, as a State the trace expected is: branching on its value in
    Python cannot be baked into the program."""
    flag = bs.State(jnp.array(1.0), name="flag")

    @bs.transform.jit
    def f(x):
        return x if flag.value > 0 else -x

    with pytest.raises(jax.errors.TracerBoolConversionError):
        f(jnp.ones(2))
    assert_no_tracer(flag)


def test_an_anew_eager_loop_over_new_states_traces_once():
    traces = Counter()

    class Leaky(bs.nn.Module):
        def __init__(self, tau):
            super().__init__()
            self.tau = tau
            self.v = bs.HiddenState(jnp.zeros(()))

        def update(self, i):
            traces()
            self.v.value = self.v.value + (1.0 - self.v.value) / self.tau
            return self.v.value

    for tau in (2.0, 5.0):
        m = Leaky(tau)  # new States every time: the last call's guess does not cover them
        before = traces.n
        ys = bs.transform.for_loop(m.update, jnp.arange(6))

        def step(v, _, tau=tau):
            v = v + (1.0 - v) / tau
            return v, v

        _, want = jax.lax.scan(step, jnp.zeros(()), None, length=6)
        np.testing.assert_allclose(ys, want, rtol=1e-6)
        np.testing.assert_allclose(m.v.value, want[-1], rtol=1e-6)
        # The loop discovers its body once and traces it once; the call's program is not
        # traced a second time for the States its guess did not hold (it was: 3).
        assert traces.n - before == 2


def test_a_late_state_that_changes_shape_retraces():
    s = bs.State(jnp.ones(2), name="s")
    runs = Counter()

    @bs.transform.jit
    def f():
        runs()
        return jnp.sum(s.value)

    np.testing.assert_allclose(f(), 2.0)
    s.value = jnp.ones(5)
    np.testing.assert_allclose(f(), 5.0)
    assert runs.n == 2
