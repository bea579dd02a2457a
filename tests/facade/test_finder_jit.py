"""StateFinder (usage, return_type, key_fn, filter, errors) and the facade's jit (write-back,
static arguments, one compilation per call signature, retrace on new shapes, donation)."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import facade
from facade import transform as T

# --- StateFinder --------------------------------------------------------------------------


def _states():
    p = facade.ParamState(jnp.array([1.0, 2.0]), name="p")  # read
    h = facade.HiddenState(jnp.zeros(2), name="h")  # written, then read
    c = facade.State(jnp.array(0), name="c")  # read, then written
    o = facade.ShortTermState(jnp.zeros(2), name="o")  # written only
    q = facade.ParamState(jnp.array(3.0), name="q")  # read last
    unused = facade.State(jnp.array(1.0), name="unused")
    return p, h, c, o, q, unused


def _fn(p, h, c, o, q, unused):
    def f(x, label):
        assert label == "static"  # non-array leaves reach the function as they are
        h.value = p.value * x
        c.value = c.value + 1
        o.value = h.value * 2.0
        return jnp.sum(h.value * 2.0) * q.value

    return f


# usage -> names in order of first use
USAGE = {
    "all": ["p", "h", "c", "o", "q"],
    "read": ["p", "q"],  # read and never written, as brainstate's usage='read'
    "write": ["h", "c", "o"],
}


@pytest.mark.parametrize("return_type", ["dict", "list", "tuple"])
@pytest.mark.parametrize("usage", USAGE)
def test_state_finder_usage_and_return_type(usage, return_type):
    states = _states()
    entry = [s._value for s in states]
    found = T.StateFinder(_fn(*states), usage=usage, return_type=return_type)(jnp.ones(2), "static")
    names = USAGE[usage]
    if return_type == "dict":
        assert list(found) == list(range(len(names)))
        found = list(found.values())
    assert type(found) is {"dict": list, "list": list, "tuple": tuple}[return_type]
    assert [s.name for s in found] == names
    assert all(isinstance(s, facade.State) for s in found)
    # finding runs the function abstractly: nothing is written, nothing is left traced
    for s, v in zip(states, entry, strict=True):
        assert s._value is v


def test_state_finder_both():
    states = _states()
    found = T.StateFinder(_fn(*states), usage="both", return_type="list")(jnp.ones(2), "static")
    assert set(found) == {"read", "write"}
    assert [s.name for s in found["read"]] == USAGE["read"]
    assert [s.name for s in found["write"]] == USAGE["write"]


def test_state_finder_key_fn_and_filter():
    states = _states()
    f = _fn(*states)
    by_name = T.StateFinder(f, key_fn=lambda i, s: f"{i}:{s.name}")(jnp.ones(2), "static")
    assert list(by_name) == ["0:p", "1:h", "2:c", "3:o", "4:q"]
    assert by_name["2:c"] is states[2]

    params = T.StateFinder(f, filter=facade.ParamState)(jnp.ones(2), "static")
    assert [s.name for s in params.values()] == ["p", "q"]
    assert list(params) == [0, 1]  # positions among the kept states
    short = T.StateFinder(f, facade.ShortTermState, usage="write", return_type="tuple")(
        jnp.ones(2), "static"
    )
    assert [s.name for s in short] == ["h", "o"]  # HiddenState is a ShortTermState
    pred = T.StateFinder(f, lambda path, s: s.name in ("c", "q"), return_type="list")
    assert [s.name for s in pred(jnp.ones(2), "static")] == ["c", "q"]


def test_state_finder_feeds_grad():
    """Found states are the grad_states of the tutorial's section 2.3 pattern."""
    states = _states()
    f = _fn(*states)
    found = T.StateFinder(f, filter=facade.ParamState)(jnp.ones(2), "static")
    grads = T.grad(lambda x: f(x, "static"), grad_states=found)(jnp.array([1.0, -1.0]))
    assert set(grads) == {0, 1}
    # f = sum(2 p x) * q: d/dp = 2 x q, d/dq = sum(2 p x)
    np.testing.assert_allclose(grads[0], [6.0, -6.0])
    np.testing.assert_allclose(grads[1], -2.0)


@pytest.mark.parametrize(
    "kwargs,error",
    [
        ({"usage": "reads"}, ValueError),
        ({"return_type": "set"}, ValueError),
        # a value of the wrong type: ValueError from StateFinder, or TypeError from the
        # run-time type check when it is on (as under this test suite's jaxtyping hook)
        ({"usage": None}, (TypeError, ValueError)),
        ({"return_type": dict}, (TypeError, ValueError)),
        ({"key_fn": 3}, TypeError),
    ],
)
def test_state_finder_invalid_options(kwargs, error):
    with pytest.raises(error, match="StateFinder|usage|return_type|key_fn"):
        T.StateFinder(lambda: None, **kwargs)


def test_state_finder_invalid_fn():
    with pytest.raises(TypeError):
        T.StateFinder(3)


# --- jit ----------------------------------------------------------------------------------


class Counted:
    """A stateful function that counts how often Python runs it (each trace)."""

    def __init__(self):
        self.w = facade.ParamState(jnp.array([1.0, 2.0]), name="w")
        self.n = facade.State(jnp.array(0), name="n")
        self.runs = 0

    def __call__(self, x, scale=1.0):
        self.runs += 1
        self.n.value = self.n.value + 1
        self.w.value = self.w.value * 0.5
        return jnp.sum(self.w.value * x) * scale


def test_jit_write_back_and_result():
    m = Counted()
    f = T.jit(m)
    for i in range(1, 4):
        w0 = m.w.value
        x = jnp.array([1.0, 3.0]) * i
        np.testing.assert_allclose(f(x), jnp.sum(w0 * 0.5 * x))
        np.testing.assert_allclose(m.w.value, w0 * 0.5)
        assert int(m.n.value) == i
        assert m.n.value.dtype == jnp.asarray(0).dtype


def test_jit_compiles_once_per_signature():
    m = Counted()
    f = T.jit(m)
    f(jnp.ones(2))
    # One trace, though the first call knew none of the States: each became an input of the
    # program when the trace first read it.
    assert m.runs == 1
    for v in (2.0, 3.0, -1.0):
        m.w.value = jnp.array([v, v])  # new state values: no retrace
        f(jnp.ones(2) * v)  # (jnp.full would be weakly typed: another signature in JAX)
        np.testing.assert_allclose(m.w.value, [v * 0.5, v * 0.5])  # read as inputs, not baked
    assert m.runs == 1
    # A new argument shape or dtype is traced once more (the states it touches were
    # discovered for this argument structure already, and are checked at trace time).
    f(jnp.ones((3, 2)))
    assert m.runs == 2
    f(jnp.ones((3, 2)) * 2.0)
    f(jnp.ones(2))  # the first signature is still compiled
    assert m.runs == 2
    f(jnp.ones(2, dtype=jnp.int32))
    assert m.runs == 3
    f(jnp.ones(2), scale=2.0)  # a new argument structure, same states: traced once
    assert m.runs == 4
    f(jnp.ones(2), scale=3.0)
    assert m.runs == 4
    np.testing.assert_allclose(int(m.n.value), 10)


def test_jit_retraces_on_new_state_shape():
    m = Counted()
    f = T.jit(m)
    f(jnp.array(2.0))
    runs = m.runs
    m.w.value = jnp.array([1.0, 2.0, 3.0])  # same arguments, a state of a new shape
    out = f(jnp.array(2.0))
    np.testing.assert_allclose(out, 6.0)
    np.testing.assert_allclose(m.w.value, [0.5, 1.0, 1.5])
    assert m.runs == runs + 1  # traced again for the new shape, not discovered again


def test_jit_static_argnums_and_argnames():
    traces = []

    def f(x, n, *, mode="sum"):
        traces.append((n, mode))
        y = jnp.concatenate([x] * n)  # n must be static: it decides a shape
        return jnp.sum(y) if mode == "sum" else jnp.max(y)

    g = T.jit(f, static_argnums=1, static_argnames="mode")
    x = jnp.array([1.0, 2.0])
    np.testing.assert_allclose(g(x, 3), 9.0)
    np.testing.assert_allclose(g(x, 2, mode="max"), 2.0)
    n_traces = len(traces)
    np.testing.assert_allclose(g(x * 2, 3), 18.0)
    np.testing.assert_allclose(g(x, 2, mode="max"), 2.0)
    assert len(traces) == n_traces  # cached per static value
    np.testing.assert_allclose(g(x, 4), 12.0)
    assert len(traces) > n_traces
    with pytest.raises(Exception):  # noqa: B017 (n is traced without static_argnums)
        T.jit(f)(x, 3)


def test_jit_decorator_form_with_options():
    s = facade.State(jnp.array(1.0))

    @T.jit(static_argnums=(1,))
    def f(x, power):
        s.value = s.value * 2.0
        return x**power * s.value

    np.testing.assert_allclose(f(jnp.array(3.0), 2), 18.0)
    np.testing.assert_allclose(f(jnp.array(3.0), 3), 108.0)
    np.testing.assert_allclose(s.value, 4.0)


def test_jit_list_static_argument_is_keyed_by_its_contents():
    """Unlike jax.jit, a list is accepted as a static value: equal contents share a program,
    and a list is not the tuple with the same items."""
    traces = []

    def f(x, shape):
        traces.append(shape)
        return jnp.reshape(x, shape)

    g = T.jit(f, static_argnums=1)
    np.testing.assert_allclose(g(jnp.arange(4.0), (2, 2)), jnp.arange(4.0).reshape(2, 2))
    n = len(traces)
    g(jnp.arange(4.0), (2, 2))
    assert len(traces) == n
    for shape in ([2, 2], [4, 1], [2, 2]):
        np.testing.assert_allclose(g(jnp.arange(4.0), shape), jnp.arange(4.0).reshape(shape))
    assert traces[n:] == [[2, 2], [4, 1]]


def test_jit_unhashable_static_argument():
    """An unhashable static value (a set) is accepted: that call is lowered afresh."""
    traces = []

    def f(x, axes):
        traces.append(axes)
        return jnp.sum(x, axis=tuple(sorted(axes)))

    g = T.jit(f, static_argnums=1)
    for _ in range(2):
        np.testing.assert_allclose(g(jnp.ones((2, 3)), {0}), jnp.full(3, 2.0))
    assert len(traces) == 2


def test_jit_donate_argnums_accepted():
    s = facade.State(jnp.zeros(3))

    def f(buf, x):
        s.value = s.value + x
        return buf + x

    g = T.jit(f, donate_argnums=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CPU may not implement donation and say so
        out = g(jnp.ones(3), jnp.arange(3.0))
        out2 = g(out, jnp.arange(3.0))
    np.testing.assert_allclose(out2, 1.0 + 2 * jnp.arange(3.0))
    np.testing.assert_allclose(s.value, 2 * jnp.arange(3.0))


def test_jit_matches_raw_jax_and_kwargs():
    w = facade.State(jnp.array([[1.0, 2.0], [3.0, 4.0]]))

    def f(x, *, b):
        return jnp.tanh(x @ w.value + b)

    x, b = jnp.array([0.5, -0.25]), jnp.array([0.1, 0.2])
    got = T.jit(f)(x, b=b)
    want = jax.jit(lambda x, b, w: jnp.tanh(x @ w + b))(x, b, w.value)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got.dtype == want.dtype and got.shape == want.shape


@pytest.mark.parametrize("bad", [{"static_argnums": "0"}, {"static_argnames": 1}])
def test_jit_invalid_static_options(bad):
    with pytest.raises(TypeError):
        T.jit(lambda x: x, **bad)
