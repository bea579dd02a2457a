"""State-aware batching against the explicit ``jax.vmap`` / ``jax.lax.map`` programs over the
States' values: forward values, dtypes, write-back, per-example gradients, random draws,
composition with jit/grad/for_loop, caching, and failure paths (every State as it was)."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from facade_testing import assert_no_tracer, assert_same
from jax.sharding import PartitionSpec as P

import facade
from facade import transform as T
from facade._core import lowering

W0 = jnp.array([[0.5, -0.3, 0.1], [0.2, 0.8, -0.4]])
XS = jnp.array([[1.0, -0.5], [0.25, 2.0], [-1.0, 0.5], [0.5, 0.5]])
YS = jnp.array([[0.1, 0.2, 0.3], [0.0, -0.1, 0.4], [0.3, 0.3, 0.3], [-0.2, 0.1, 0.0]])


def raw_loss(w, x, y):
    return jnp.sum((jnp.tanh(x @ w) - y) ** 2)


class Model:
    """A parameter, a per-element hidden state and a shared call counter."""

    def __init__(self, batch=4):
        self.w = facade.ParamState(W0, name="w")
        self.h = facade.HiddenState(jnp.zeros((batch, 3)), name="h")
        self.calls = facade.State(jnp.array(0, jnp.int32), name="calls")

    def loss(self, x, y):
        return jnp.sum((jnp.tanh(x @ self.w.value) - y) ** 2)

    def step(self, x):
        self.h.value = jnp.tanh(x @ self.w.value + self.h.value)
        self.calls.value = self.calls.value + 1
        return self.h.value.sum()


class Cell(facade.nn.Module):
    """A module whose hidden state is created (randomly) by ``init_state``."""

    def init_state(self, *args, **kwargs):
        self.h = facade.HiddenState(facade.random.normal(size=(2,)))


def raw_step(w, h, x):
    h = jnp.tanh(x @ w + h)
    return h.sum(), h


# --- forward and write-back ------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1])
def test_vmap_with_batched_states_equals_jax_vmap(axis):
    m = Model()
    h0 = jnp.arange(12.0).reshape(4, 3) / 10
    h0 = h0 if axis == 0 else h0.T
    m.h.value = h0
    f = T.vmap(m.step, in_states={axis: m.h}, out_states={axis: [m.h]})
    out = f(XS)
    step = jax.vmap(raw_step, in_axes=(None, axis, 0), out_axes=(0, axis))
    raw_out, raw_h = step(W0, h0, XS)
    assert_same(out, raw_out)
    assert_same(m.h.value, raw_h)
    assert int(m.calls.value) == 1  # a shared State written with an unbatched value: once
    assert m.calls.value.dtype == jnp.int32
    assert_no_tracer(m.w, m.h, m.calls)


def test_shared_states_and_out_states_written_without_the_batch():
    w = facade.ParamState(jnp.array(2.0), name="w")
    fresh = facade.State(jnp.ones(2), name="fresh")
    untouched = facade.State(jnp.ones(2), name="untouched")

    def f(x):
        fresh.value = fresh.value * w.value  # declared: gets the batch axis (broadcast)
        return x * w.value

    out = T.vmap(f, out_states=[fresh, untouched])(jnp.arange(3.0))
    raw_out, raw_fresh = jax.vmap(lambda x: (x * 2.0, jnp.ones(2) * 2.0), out_axes=(0, 0))(
        jnp.arange(3.0)
    )
    assert_same(out, raw_out)
    assert_same(fresh.value, raw_fresh)
    assert_same(untouched.value, jnp.ones(2))  # declared but never written: left as it was
    assert_same(w.value, jnp.array(2.0))


def test_keyword_arguments_are_mapped_over_axis_0_and_in_axes_pytrees():
    def f(d, scale, *, shift):
        return d["a"] * scale + d["b"] + shift

    d = {"a": jnp.arange(6.0).reshape(3, 2), "b": jnp.ones(2)}
    got = T.vmap(f, in_axes=({"a": 0, "b": None}, None), out_axes=1)(d, 2.0, shift=jnp.arange(3.0))
    want = jax.vmap(f, in_axes=({"a": 0, "b": None}, None), out_axes=1)(
        d, 2.0, shift=jnp.arange(3.0)
    )
    assert_same(got, want)


def test_vmap_decorates_a_method():
    class Scaled(facade.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = facade.ParamState(jnp.array([1.0, -2.0]), name="w")

        @T.vmap
        def __call__(self, x):
            return x * self.w.value

    assert_same(Scaled()(XS), XS * jnp.array([1.0, -2.0]))


def test_nested_vmap_and_axis_name():
    q = facade.State(jnp.zeros((2, 3)), name="q")

    def inner(x):
        q.value = q.value + x
        return jax.lax.psum(q.value, "i")

    f = T.vmap(T.vmap(inner, in_states=q, axis_name="i"), in_states=q)
    xs = jnp.arange(6.0).reshape(2, 3)
    want = jax.vmap(jax.vmap(lambda q, x: jax.lax.psum(q + x, "i"), axis_name="i"))(
        jnp.zeros((2, 3)), xs
    )
    assert_same(f(xs), want)
    assert_same(q.value, xs)


def test_eager_calls_compile_once_per_signature():
    m = Model()
    traces = []

    def f(x):
        traces.append(1)
        return m.step(x)

    g = T.vmap(f, in_states=m.h)
    g(XS)
    first, built = len(traces), lowering.BUILT[0]
    for _ in range(3):
        g(XS)  # held: no new trace
    assert len(traces) == first
    for _ in range(3):
        T.vmap(f, in_states=m.h)(XS)  # a new vmap object: traced again, not compiled again
    assert len(traces) > first
    assert lowering.BUILT[0] == built
    assert int(m.calls.value) == 7


# --- BatchAxisError --------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["eager", "jit"])
def test_a_batched_write_to_an_undeclared_state_raises(where):
    m = Model()
    before = m.h.value

    def f(x):
        return m.step(x)  # writes m.h with a value that depends on x

    g = T.vmap(f) if where == "eager" else T.jit(T.vmap(f))
    with pytest.raises(T.BatchAxisError, match="HiddenState 'h'.*out_states") as info:
        g(XS)
    assert isinstance(info.value, ValueError)
    assert "test_mapping.py" in str(info.value)  # where the State was created
    assert_same(m.h.value, before)
    assert int(m.calls.value) == 0
    assert_no_tracer(m.h, m.calls, m.w)


# --- autodiff, jit, loops ----------------------------------------------------------------------


@pytest.mark.parametrize("jitted", [False, True])
def test_per_example_gradients_and_gradient_of_vmap(jitted):
    m = Model()
    per_example = T.vmap(T.grad(m.loss, grad_states=m.w))
    if jitted:
        per_example = T.jit(per_example)
    raw = jax.vmap(jax.grad(raw_loss), in_axes=(None, 0, 0))(W0, XS, YS)
    assert_same(per_example(XS, YS), raw)
    total = T.grad(lambda x, y: T.vmap(m.loss)(x, y).sum(), grad_states=m.w)
    raw_total = jax.grad(lambda w: jax.vmap(raw_loss, in_axes=(None, 0, 0))(w, XS, YS).sum())
    assert_same(total(XS, YS), raw_total(W0), rtol=1e-5)
    assert_no_tracer(m.w, m.h)


def test_vmap_of_a_for_loop_simulation_with_a_batched_hidden_state():
    m = Model(batch=3)
    x0 = jnp.arange(6.0).reshape(3, 2) / 6
    drive = jnp.linspace(-1.0, 1.0, 5)

    def simulate(x):
        return T.for_loop(lambda d: m.step(x * d), drive)

    ys = T.vmap(simulate, in_states=m.h, out_states=m.h)(x0)

    def raw_sim(h, x):
        h, ys = jax.lax.scan(lambda h, d: raw_step(W0, h, x * d)[::-1], h, drive)
        return ys, h

    raw_ys, raw_h = jax.vmap(raw_sim)(jnp.zeros((3, 3)), x0)
    assert_same(ys, raw_ys)
    assert_same(m.h.value, raw_h)
    assert int(m.calls.value) == len(drive)

    # and a for_loop over time whose body is vmapped over the batch
    m.h.value = jnp.zeros((3, 3))
    ys = T.for_loop(lambda d: T.vmap(m.step, in_states=m.h)(x0 * d), drive)
    assert_same(ys, raw_ys.T)
    assert_same(m.h.value, raw_h)
    assert_no_tracer(m.h, m.calls)


# --- random ----------------------------------------------------------------------------------


def test_random_draws_are_independent_per_element_and_equal_a_loop():
    facade.random.seed(7)
    key = facade.random.DEFAULT.value
    noise = facade.State(jnp.zeros(()), name="noise")

    def f(x):
        return x + facade.random.normal(size=(2,)) + noise.value

    got = T.vmap(f)(jnp.zeros((3, 2)))
    new, *lanes = jax.random.split(key, 4)
    want = []
    for lane in lanes:
        facade.random.DEFAULT.set_key(lane)
        want.append(facade.random.normal(size=(2,)))
    assert_same(got, jnp.stack(want))
    assert not np.allclose(got[0], got[1])
    facade.random.DEFAULT.set_key(new)
    assert_same(facade.random.DEFAULT.value, new)
    facade.random.seed(7)
    T.vmap(f)(jnp.zeros((3, 2)))
    assert_same(facade.random.DEFAULT.value, new)  # the global key has moved on
    again = T.vmap(f)(jnp.zeros((3, 2)))
    assert not np.allclose(again, got)


# --- vmap2 -------------------------------------------------------------------------------------


def test_vmap2_selects_states_by_filter_and_infers_undeclared_axes():
    m = Model()
    got = T.vmap2(m.step, state_in_axes={0: facade.HiddenState}, state_out_axes=facade.HiddenState)(
        XS
    )
    raw_out, raw_h = jax.vmap(raw_step, in_axes=(None, 0, 0))(W0, jnp.zeros((4, 3)), XS)
    assert_same(got, raw_out)
    assert_same(m.h.value, raw_h)

    acc = facade.State(jnp.zeros(()), name="acc")

    def f(x):
        acc.value = acc.value + x.sum()
        return x

    T.vmap2(f)(XS)  # 'auto': the undeclared batched write gets a batch axis 0
    assert_same(acc.value, XS.sum(axis=1))
    with pytest.warns(UserWarning, match="State 'acc'"):
        T.vmap2(f, unexpected_out_state_mapping="warn")(XS)
    before = acc.value
    with pytest.raises(T.BatchAxisError, match="State 'acc'.*state_out_axes"):
        T.vmap2(f, unexpected_out_state_mapping="raise")(XS)
    assert_same(acc.value, before)
    with pytest.raises(ValueError, match="unexpected_out_state_mapping"):
        T.vmap2(f, unexpected_out_state_mapping="sometimes")


# --- vmap_new_states ---------------------------------------------------------------------------


def test_vmap_new_states_gives_created_states_the_batch_axis():
    facade.random.seed(3)
    key = facade.random.DEFAULT.value
    made = []

    def build(x):
        p = facade.ParamState(facade.random.normal(size=(2,)), name="p")
        shared = facade.LongTermState(jnp.ones(2), name="shared")
        made.append((p, shared))
        return p.value + x

    out = T.vmap_new_states(build, state_to_exclude=facade.LongTermState, state_tag="ens")(
        jnp.arange(3.0)
    )
    p, shared = made[-1]
    _, *lanes = jax.random.split(key, 4)
    want = jnp.stack([jax.random.normal(jax.random.split(k)[1], (2,)) for k in lanes])
    assert_same(p.value, want)
    assert_same(out, want + jnp.arange(3.0)[:, None])
    assert_same(shared.value, jnp.ones(2))
    assert p.metadata["tag"] == "ens"
    assert isinstance(p.value, jax.Array)
    assert_no_tracer(p, shared)

    cell = facade.nn.vmap_init_all_states(Cell(), axis_size=3)
    assert cell.h.value.shape == (3, 2)
    assert not np.allclose(cell.h.value[0], cell.h.value[1])
    assert_no_tracer(cell.h)
    with pytest.raises(ValueError, match="in_states"):
        T.vmap_new_states(build, in_states=cell.h)
    with pytest.raises(ValueError, match="axis_size must be a positive int"):
        facade.nn.vmap_init_all_states(cell)
    with pytest.raises(T.BatchAxisError, match="LongTermState 'late'"):

        def bad(x):
            facade.LongTermState(x, name="late")

        T.vmap_new_states(bad, state_to_exclude=facade.LongTermState)(jnp.arange(3.0))


# --- map ---------------------------------------------------------------------------------------


def test_map_sequential_carries_states_like_lax_map():
    total = facade.State(jnp.array(0.0), name="total")

    def f(x):
        total.value = total.value + x.sum()
        return total.value * x

    xs = jnp.arange(12.0).reshape(4, 3)
    ys = T.map(f, xs)
    raw_total, raw_ys = jax.lax.scan(lambda t, x: (t + x.sum(), (t + x.sum()) * x), 0.0, xs)
    assert_same(ys, raw_ys)
    assert_same(total.value, raw_total)


def test_map_in_batches_equals_lax_map():
    w = facade.ParamState(W0, name="w")
    xs = jnp.arange(14.0).reshape(7, 2)  # batch_size 3: two full batches and a remainder

    def f(x):  # may read States and draw random numbers, not write other States
        return jnp.tanh(x @ w.value), x + facade.random.uniform(size=(2,))

    facade.random.seed(0)
    got, draws = T.map(f, xs, batch_size=3)
    assert_same(got, jax.lax.map(lambda x: jnp.tanh(x @ W0), xs), rtol=1e-5)
    assert draws.shape == (7, 2) and len(np.unique(np.asarray(draws - xs))) == 14
    total = facade.State(jnp.zeros(()), name="total")

    def writes(x):
        total.value = total.value + x.sum()
        return x

    with pytest.raises(ValueError, match="State 'total'.*without batch_size"):
        T.map(writes, xs, batch_size=3)
    assert_same(total.value, jnp.zeros(()))


# --- unvmap ------------------------------------------------------------------------------------


def test_unvmap_reduces_over_the_batch():
    xs = jnp.array([[1.0, 5.0], [3.0, -2.0]])

    def reductions(r):
        ops = (T.unvmap(r, "max"), T.unvmap(r > 0, "all"), T.unvmap(r > 4, "any"))
        return (*ops, T.unvmap(r, "none"))

    want = (
        jnp.array([5.0, 5.0]),
        jnp.array([False] * 2),
        jnp.array([True] * 2),
        jnp.stack([xs] * 2),
    )
    assert_same(T.vmap(reductions)(xs), want)  # as under jax.vmap
    assert bool(T.unvmap(xs > -3, "all"))
    with pytest.raises(ValueError, match="op must be one of"):
        T.unvmap(xs, "sum")


# --- shard_map on this process's devices (8 devices: tests/reliability/test_shard_map.py) -----


def test_shard_map_with_states_on_one_device():
    mesh = jax.make_mesh((jax.device_count(),), ("x",))
    total = facade.State(jnp.zeros(()), name="total")
    scale = facade.State(jnp.array(3.0), name="scale")

    def fun(data):
        total.value = total.value + jax.lax.psum(data.sum(), "x")
        return data * scale.value

    f = T.shard_map(fun, mesh, in_specs=P("x"), out_specs=P("x"))
    data = jnp.arange(4.0 * jax.device_count())
    assert_same(f(data), data * 3.0)
    assert_same(total.value, data.sum())
    with pytest.raises(ValueError, match="in_specs has 2 entries"):
        T.shard_map(fun, mesh, in_specs=(P("x"), P()), out_specs=P("x"))(data)
    assert_same(total.value, data.sum())
    assert_no_tracer(total, scale)


# --- failure paths: a clear error, every State as it was, no tracer ----------------------------


def _boom(h):
    def f(x):
        h.value = h.value + x
        raise RuntimeError("boom inside the function")

    return f


def _adds(h):
    def f(x):
        h.value = h.value + x
        return x

    return f


FAILURES = [
    (
        "batch sizes",
        lambda h: T.vmap(_adds(h), in_states=h)(jnp.zeros((3, 2))),
        ValueError,
        r"different sizes \(args\[0\]: 3, HiddenState 'h' .*: 4\)",
    ),
    (
        "in_axes length",
        lambda h: T.vmap(_adds(h), in_axes=(0, 0), in_states=h)(XS),
        ValueError,
        "in_axes has 2 entries but the function was called with 1",
    ),
    (
        "in_axes structure",
        lambda h: T.vmap(lambda d: d["a"], in_axes=({"b": 0},))({"a": XS}),
        ValueError,
        r"in_axes\[0\] = \{'b': 0\} does not match the structure of argument 0",
    ),
    (
        "axis out of range",
        lambda h: T.vmap(_adds(h), in_axes=2, in_states=h)(XS),
        ValueError,
        r"args\[0\] has shape \(4, 2\), which has no axis 2",
    ),
    (
        "state axis out of range",
        lambda h: T.vmap(_adds(h), in_states={2: h})(XS),
        ValueError,
        r"HiddenState 'h' .* \(declared batched on axis 2\) has shape \(4, 2\)",
    ),
    (
        "declared twice",
        lambda h: T.vmap(_adds(h), in_states={0: h, 1: [h]}),
        T.BatchAxisError,
        "HiddenState 'h' .* is declared in in_states twice, with axes 0 and 1",
    ),
    (
        "in and out axes",
        lambda h: T.vmap(_adds(h), in_states=h, out_states={1: h}),
        T.BatchAxisError,
        "axis 0 in in_states but 1 in out_states",
    ),
    (
        "raises inside",
        lambda h: T.vmap(_boom(h), in_states=h, out_states=h)(XS),
        RuntimeError,
        "boom inside the function",
    ),
    (
        "nothing mapped",
        lambda h: T.vmap(lambda x: x, in_axes=None)(XS),
        ValueError,
        "nothing to map over",
    ),
    (
        "axis_size conflict",
        lambda h: T.vmap(lambda x: x, axis_size=3)(XS),
        ValueError,
        r"axis_size: 3, args\[0\]: 4",
    ),
    (
        "scalar kwarg",
        lambda h: T.vmap(lambda x, *, s: x * s)(XS, s=1.0),
        ValueError,
        r"kwargs\['s'\] has shape \(\).*mapped over axis 0",
    ),
    ("not callable", lambda h: T.vmap(3), TypeError, "fn"),
    ("bad in_states", lambda h: T.vmap(_adds(h), in_states=3), TypeError, "in_states must be"),
]


@pytest.mark.parametrize("case", FAILURES, ids=[c[0] for c in FAILURES])
def test_bad_input_is_reported_and_leaves_every_state_as_it_was(case):
    _, call, error, message = case
    h = facade.HiddenState(jnp.ones((4, 2)), name="h")
    with pytest.raises(error, match=message):
        call(h)
    assert_same(h.value, jnp.ones((4, 2)))
    assert_no_tracer(h)


def test_batch_axis_error_inside_nested_transforms_leaves_no_tracer():
    m = Model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(T.BatchAxisError):
            T.grad(lambda x: T.vmap(m.step)(x).sum(), grad_states=m.w)(XS)
    assert_same(m.h.value, jnp.zeros((4, 3)))
    assert_no_tracer(m.h, m.w, m.calls)
