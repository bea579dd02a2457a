"""brainstate parity, round three (issue 19, part A): StatefulFunction, the ``compile`` alias,
``Module.init_all_states``, ``jit``'s ahead-of-time stages, exception types, ``ifelse`` with one
branch and ``scan(reverse=True)`` under ``jax.disable_jit()``.

Each test says what brainstate 0.5.4 does (run in a venv with brainstate 0.5.4 and jax 0.10.2)
and checks the facade's behaviour against raw JAX where there is a value to compare.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import facade
from facade import transform as T

# --- StatefulFunction ---------------------------------------------------------------------


def _model():
    s = facade.State(jnp.array([1.0, 2.0]), name="s")
    r = facade.State(jnp.array(3.0), name="r")

    def f(x, n):
        s.value = s.value + x * r.value
        scratch = facade.State(x * 2.0)  # created by the call: local, not one of its States
        return s.value * n + jnp.sum(scratch.value)

    return s, r, f


def test_stateful_function_states_reads_writes():
    """brainstate: ``get_states`` in order of first use, ``get_read_states`` the ones only
    read, ``get_write_states`` the written ones; States the call creates are not listed."""
    s, r, f = _model()
    sf = T.StatefulFunction(f, static_argnums=1)
    x = jnp.ones(2)
    assert sf.get_states(x, 2) == (s, r)
    assert sf.get_read_states(x, 2) == (r,)
    assert sf.get_write_states(x, 2) == (s,)
    trace = sf.get_state_trace(x, 2)
    assert trace.states == [s, r] and trace.been_writen == [True, False]
    key = sf.get_arg_cache_key(x, 2)
    assert sf.get_states_by_cache(key) == (s, r)
    assert sf.get_write_states_by_cache(key) == (s,)
    np.testing.assert_array_equal(s.value, [1.0, 2.0])  # inspecting writes nothing


def test_stateful_function_jaxpr_and_calls_match_raw_jax():
    """The jaxpr takes the dynamic arguments, then one value per State, and returns the result
    then the new State values (None for a State not written, as brainstate's
    ``return_only_write=True``); ``jaxpr_call`` assigns nothing, ``__call__`` writes back."""
    s, r, f = _model()
    sf = T.StatefulFunction(f, static_argnums=1)
    x = jnp.array([0.5, 1.5])
    assert sf.make_jaxpr(x, 2) is sf
    jaxpr = sf.get_jaxpr(x, 2)
    assert len(jaxpr.jaxpr.invars) == 3  # x, s, r
    assert len(jaxpr.jaxpr.outvars) == 2  # result, new s

    def raw(x, s_val, r_val):
        new_s = s_val + x * r_val
        return new_s * 2 + jnp.sum(x * 2.0), new_s

    want_out, want_s = raw(x, s.value, r.value)
    new, out = sf.jaxpr_call([s.value, r.value], x, 2)
    np.testing.assert_allclose(out, want_out)
    np.testing.assert_allclose(new[0], want_s)
    assert new[1] is None
    np.testing.assert_array_equal(s.value, [1.0, 2.0])

    np.testing.assert_allclose(sf(x, 2), want_out)
    np.testing.assert_allclose(s.value, want_s)
    out_shapes, state_shapes = sf.get_out_shapes(x, 2)
    assert out_shapes.shape == (2,) and state_shapes[0].shape == (2,) and state_shapes[1] is None

    every = T.StatefulFunction(f, static_argnums=1, return_only_write=False)
    new, _ = every.jaxpr_call([s.value, r.value], x, 2)
    np.testing.assert_array_equal(new[1], r.value)


def test_stateful_function_static_argnames_and_keys():
    """Static keyword arguments key the trace by value; dynamic ones by shape and dtype."""
    s = facade.State(jnp.zeros(()), name="s")

    def f(x, *, power):
        s.value = s.value + 1.0
        return x**power

    sf = T.StatefulFunction(f, static_argnames="power")
    k2 = sf.get_arg_cache_key(jnp.ones(2), power=2)
    k3 = sf.get_arg_cache_key(jnp.ones(2), power=3)
    assert k2 != k3
    assert sf.get_arg_cache_key(jnp.zeros(2), power=2) == k2
    assert sf.get_arg_cache_key(jnp.zeros(3), power=2) != k2
    np.testing.assert_array_equal(sf(jnp.full(2, 2.0), power=3), [8.0, 8.0])
    assert float(s.value) == 1.0


def test_stateful_function_traces_again_when_a_state_changes_shape():
    """brainstate treats a State whose shape changed since the trace as a cache miss."""
    st = facade.State(jnp.ones(3), name="st")
    sf = T.StatefulFunction(lambda x: st.value.sum() / st.value.shape[0] + x)
    assert float(sf(0.0)) == 1.0
    key = sf.get_arg_cache_key(0.0)
    assert sf.validate_states(key)
    st.value = jnp.ones(6)
    with pytest.raises(ValueError, match="st"):
        sf.validate_states(key)
    assert float(sf(0.0)) == 1.0
    assert sf.get_jaxpr(0.0).jaxpr.invars[1].aval.shape == (6,)


def test_stateful_function_nested_in_jit_writes_into_the_outer_trace():
    s, r, f = _model()
    sf = T.StatefulFunction(f, static_argnums=1)
    out = T.jit(lambda x: sf(x, 3))(jnp.ones(2))
    np.testing.assert_allclose(s.value, [4.0, 5.0])
    np.testing.assert_allclose(out, jnp.array([4.0, 5.0]) * 3 + 4.0)


def test_stateful_function_errors():
    """brainstate: a State passed in or returned is a TypeError; ``jaxpr_call`` with the wrong
    number of State values, or a None one, a ValueError; static_argnums out of range too."""
    s = facade.State(jnp.zeros(2), name="s")
    with pytest.raises(TypeError, match="s"):
        T.StatefulFunction(lambda st: st.value).make_jaxpr(s)
    with pytest.raises(TypeError, match="result"):
        T.StatefulFunction(lambda: s).make_jaxpr()
    sf = T.StatefulFunction(lambda x: s.value + x)
    with pytest.raises(ValueError, match="expected 1 state value"):
        sf.jaxpr_call([], jnp.ones(2))
    with pytest.raises(ValueError, match="None"):
        sf.jaxpr_call([None], jnp.ones(2))
    with pytest.raises(ValueError, match="static_argnums"):
        T.StatefulFunction(lambda x, n: x, static_argnums=1).make_jaxpr(jnp.ones(2))
    with pytest.raises(ValueError, match="make_jaxpr"):
        sf.get_jaxpr_by_cache("no such key")


# --- brainstate.compile -------------------------------------------------------------------


def test_compile_alias_warns_then_forwards():
    """brainstate 0.5.4: ``brainstate.compile.jit`` warns (DeprecationWarning) and is
    ``brainstate.transform.jit``; a name it does not serve is an AttributeError."""
    with pytest.warns(DeprecationWarning, match="brainstate.transform.jit"):
        assert facade.compile.jit is T.jit
    with pytest.warns(DeprecationWarning):
        assert facade.compile.StatefulFunction is T.StatefulFunction
    with pytest.warns(DeprecationWarning):
        assert facade.compile.for_loop is T.for_loop
    with pytest.raises(AttributeError, match="brainstate.transform"):
        facade.compile.grad  # noqa: B018


def test_compile_alias_through_the_brainstate_name():
    from facade.compat import BRAINSTATE_MODULES

    assert BRAINSTATE_MODULES["brainstate.compile"] == "facade.compile"


# --- Module.init_all_states ---------------------------------------------------------------


def test_module_init_all_states_method():
    """brainstate's ``Module.init_all_states(*args, **kwargs)`` runs every sub-module's
    ``init_state`` (children first), as the function ``nn.init_all_states`` does."""
    calls = []

    class Leaf(facade.nn.Module):
        def init_state(self, batch_size=None):
            calls.append("leaf")
            self.h = facade.ShortTermState(jnp.zeros((batch_size, 2)))

    class Net(facade.nn.Module):
        def __init__(self):
            super().__init__()
            self.leaf = Leaf()

        def init_state(self, batch_size=None):
            calls.append("net")

    net = Net()
    assert net.init_all_states(batch_size=4) is net
    assert calls == ["leaf", "net"]
    assert net.leaf.h.value.shape == (4, 2)


# --- jit: trace, compile, brainstate's attributes -----------------------------------------


def test_jit_trace_and_compile_stages():
    """JAX's jit has ``trace(...)`` (a Traced with ``jaxpr`` and ``lower``) and the facade's
    object now does too; ``compile(...)`` is ``lower(...).compile()``. Nothing is written."""
    count = facade.State(jnp.array(0.0), name="count")

    def step(x):
        count.value = count.value + 1.0
        return x * 2.0

    jf = T.jit(step)
    traced = jf.trace(jnp.ones(3))
    assert traced.jaxpr is not None
    assert traced.lower().compile() is not None
    compiled = jf.compile(jnp.ones(3))
    assert compiled is not None
    assert float(count.value) == 0.0
    np.testing.assert_array_equal(jf(jnp.ones(3)), jnp.full(3, 2.0))
    assert float(count.value) == 1.0


def test_jit_brainstate_attributes():
    """brainstate's jitted object has ``origin_fun``, ``stateful_fun`` (a StatefulFunction whose
    keys find a trace) and ``jitted_fun``."""
    a = facade.State(jnp.zeros(2), name="a")

    def f(x):
        a.value = a.value + x
        return a.value

    jf = T.jit(f)
    assert jf.origin_fun is f
    assert callable(jf.jitted_fun)
    jf(jnp.ones(2))
    sf = jf.stateful_fun
    assert isinstance(sf, T.StatefulFunction)
    key = sf.get_arg_cache_key(jnp.ones(2))
    assert sf.get_states_by_cache(key) == (a,)
    assert sf.get_jaxpr_by_cache(key) is sf.get_jaxpr_by_cache(sf.get_arg_cache_key(jnp.ones(2)))


@pytest.mark.parametrize("stage", ["eval_shape", "lower", "trace"])
def test_jit_inspection_inside_a_trace_writes_nothing(stage):
    """brainstate: ``jf.eval_shape``/``jf.lower`` inside another trace do not mark the States
    ``jf`` writes as written there (nothing ran)."""
    st = facade.State(jnp.zeros(3), name="st")

    @T.jit
    def inner(x):
        st.value = st.value + x
        return st.value

    inner(jnp.zeros(3))

    def outer(x):
        getattr(inner, stage)(x)
        return x * 1.0

    sf = T.StatefulFunction(outer)
    assert st not in sf.get_write_states(jnp.zeros(3))
    np.testing.assert_array_equal(st.value, jnp.zeros(3))


# --- exception types ----------------------------------------------------------------------


def _both(excinfo):
    return isinstance(excinfo.value, TypeError) and isinstance(excinfo.value, ValueError)


def test_checkpointed_scan_f_return_errors_are_type_and_value_errors():
    """brainstate raises ValueError for an ``f`` not returning ``(carry, y)``; the facade
    raised TypeError; now an error that is both."""
    for bad in (lambda c, x: c + x, lambda c, x: (c + x, x, x)):
        with pytest.raises(ValueError, match=r"pair \(carry, y\)") as e:
            T.checkpointed_scan(bad, 0.0, jnp.arange(4.0))
        assert _both(e)


@pytest.mark.parametrize("loop", ["checkpointed_scan", "checkpointed_for_loop", "bounded"])
def test_base_true_is_a_value_error_too(loop):
    """brainstate: ``base=True`` is a ValueError mentioning ``base`` (a bool is not a base)."""
    with pytest.raises(ValueError, match="base") as e:
        if loop == "checkpointed_scan":
            T.checkpointed_scan(lambda c, x: (c + x, c), 0.0, jnp.arange(5.0), base=True)
        elif loop == "checkpointed_for_loop":
            T.checkpointed_for_loop(lambda x: x, jnp.arange(5.0), base=True)
        else:
            T.bounded_while_loop(lambda v: v < 3, lambda v: v + 1, 0, max_steps=5, base=True)
    assert _both(e)


@pytest.mark.parametrize("loop", ["while_loop", "bounded_while_loop"])
def test_cond_fun_writing_a_state_is_a_value_error_too(loop):
    """brainstate: a ``cond_fun`` that writes a State raises ValueError; the message names it."""
    st = facade.State(jnp.array(0.0), name="flag")

    def cond_fun(v):
        st.value = st.value + 1.0
        return v < 3

    kwargs = {"max_steps": 5} if loop == "bounded_while_loop" else {}
    with pytest.raises(ValueError, match="'flag'") as e:
        getattr(T, loop)(cond_fun, lambda v: v + 1, 0, **kwargs)
    assert _both(e)
    assert float(st.value) == 0.0


@pytest.mark.parametrize("pred", [None, 1 + 2j, jnp.array(1 + 1j), object()])
def test_cond_bad_predicate_is_a_type_error_too(pred):
    """brainstate: a None, complex or non-numeric predicate is a TypeError."""
    with pytest.raises(TypeError, match="pred") as e:
        T.cond(pred, lambda: 1, lambda: 2)
    assert _both(e)


def test_cond_accepts_bool_int_and_float_predicates_as_jax_does():
    for pred, want in [(True, 1), (0, 2), (jnp.array(2.5), 1), (np.float32(0.0), 2)]:
        assert int(T.cond(pred, lambda: 1, lambda: 2)) == want


# --- ifelse -------------------------------------------------------------------------------


def test_ifelse_with_a_single_branch_runs_it():
    """brainstate: ``ifelse([True], [f], x)`` runs ``f(x)``; no branches is a ValueError, and
    a condition count that differs from the branch count too."""
    count = facade.State(jnp.array(0), name="count")

    def up(x):
        count.value = count.value + 1
        return x + 1

    assert int(T.ifelse([True], [up], 5)) == 6
    assert int(count.value) == 1
    with pytest.raises(ValueError):
        T.ifelse([], [])
    with pytest.raises(ValueError):
        T.ifelse([True, False], [lambda: 42.0])


def test_ifelse_check_cond_failing_in_a_compiled_program_is_a_jax_runtime_error():
    """The check runs inside XLA (a host callback), so under ``jit`` it cannot be a Python
    ValueError: it is JAX's JaxRuntimeError, carrying the check's message (documented)."""

    @T.jit
    def f(a):
        return T.ifelse([a > 0, a > 1], [lambda: 1.0, lambda: 2.0])

    with pytest.raises(jax.errors.JaxRuntimeError, match="exactly one condition"):
        f(jnp.array(5.0))
    assert float(f(jnp.array(0.5))) == 1.0


# --- loops under jax.disable_jit() --------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_under_disable_jit_runs_a_python_loop(reverse):
    """Under ``jax.disable_jit()`` brainstate (and ``jax.lax.scan``) run the body as a Python
    loop on concrete values, last slice first with ``reverse=True``."""
    w = facade.State(jnp.array(0.0), name="w")
    order, raw_order = [], []

    def f(carry, x):
        order.append(float(x))  # concrete only in a Python loop
        w.value = w.value + x
        return carry + x, carry * x

    def raw(carry, x):
        raw_order.append(float(x))
        return carry + x, carry * x

    xs = jnp.arange(1.0, 5.0)
    with jax.disable_jit():
        carry, ys = T.scan(f, 0.0, xs, reverse=reverse)
        want_carry, want_ys = jax.lax.scan(raw, 0.0, xs, reverse=reverse)
    assert order == raw_order == ([4.0, 3.0, 2.0, 1.0] if reverse else [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(carry, want_carry)
    np.testing.assert_allclose(ys, want_ys)
    assert float(w.value) == 10.0


def test_for_loop_under_disable_jit_runs_a_python_loop():
    seen = []

    def f(x, y):
        seen.append((float(x), float(y)))
        return x * y

    with jax.disable_jit():
        ys = T.for_loop(f, jnp.arange(3.0), jnp.arange(3.0) + 1, reverse=True)
    assert seen == [(2.0, 3.0), (1.0, 2.0), (0.0, 1.0)]
    np.testing.assert_allclose(ys, [0.0, 2.0, 6.0])


def test_scan_of_zero_steps_under_disable_jit_is_a_value_error_as_in_jax():
    """``jax.lax.scan`` refuses zero steps under ``disable_jit()`` (the output type is
    unknown without a trace); brainstate raises ValueError too."""
    with jax.disable_jit():
        with pytest.raises(ValueError, match="zero-length"):
            jax.lax.scan(lambda c, x: (c + x, x), 0.0, jnp.zeros((0,)))
        with pytest.raises(ValueError):
            T.scan(lambda c, x: (c + x, x), 0.0, jnp.zeros((0,)))


def test_no_warning_from_transform_names():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert T.StatefulFunction is facade.transform.StatefulFunction


def test_batch_axis_error_at_the_top_level():
    """brainstate exports ``BatchAxisError`` at its top level (its tests import it from
    ``brainstate._error``; the public name is ``brainstate.BatchAxisError``)."""
    assert facade.BatchAxisError is T.BatchAxisError
    assert issubclass(facade.BatchAxisError, ValueError)


def test_scalar_xs_message_says_0_d():
    """brainstate's tests look for "0-d" in the error for a scalar mapped input."""
    with pytest.raises(ValueError, match="0-d"):
        T.scan(lambda c, x: (c, x), 0.0, jnp.array(1.0))
