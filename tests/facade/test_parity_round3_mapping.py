"""brainstate parity, round three (issue 19), the mapping family: ``StatefulMapping``, the
``unexpected_out_state_mapping`` policies of ``vmap2``, ``pmap2``, ``vmap2_new_states``,
``pmap2_new_states``, ``in_new_state_probe``, and the messages brainstate's tests look for.

Each test states what brainstate 0.5.4 does (run in a venv with brainstate 0.5.4 and jax 0.10.2)
and asserts the same of the facade. Also the one ``discover`` of the bridge (issue 17).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import facade
from facade import transform as T
from facade._core.bridge import OUTER, discover

XS = jnp.array([1.0, 2.0, 3.0])


# --- StatefulMapping ----------------------------------------------------------------------------


def test_vmap2_returns_a_stateful_mapping_with_its_options():
    """brainstate: ``vmap2(...)(f)`` is a ``StatefulMapping``; the constructor stores
    ``static_argnums=2`` as ``(2,)``, a list of names as a tuple, None as ``()``."""
    mapped = T.vmap2(in_axes=0, out_axes=0)(lambda x: x * 2.0)
    assert isinstance(mapped, T.StatefulMapping)
    np.testing.assert_array_equal(mapped(XS), XS * 2.0)
    assert isinstance(T.pmap2(lambda x: x), T.StatefulMapping)

    sm = T.StatefulMapping(lambda x: x, static_argnums=2, static_argnames=["mode", "flag"])
    assert sm.static_argnums == (2,) and sm.static_argnames == ("mode", "flag")
    assert T.StatefulMapping(lambda x: x, static_argnums=None).static_argnums == ()
    assert sm.unexpected_out_state_mapping == "auto" and sm.mapping_fn is jax.vmap
    assert sm.in_axes == 0 and sm.axis_size is None and sm.state_in_axes == {}


def test_stateful_mapping_with_filters_batches_the_states_they_select():
    counter = facade.ShortTermState(jnp.zeros(3))

    def accumulate(x):
        counter.value = counter.value + x
        return counter.value

    sm = T.StatefulMapping(
        accumulate,
        state_in_axes={0: facade.ShortTermState},
        state_out_axes={0: facade.ShortTermState},
        name="batched_accumulate",
    )
    np.testing.assert_array_equal(sm(XS), XS)
    np.testing.assert_array_equal(counter.value, XS)


def test_static_argnums_are_closed_over_not_mapped():
    """brainstate: a static positional argument is a constant of the call (a Python bool in
    control flow works), keys the plan by value, may be negative, and its ``in_axes`` entry is
    dropped; an index out of range is a ValueError."""
    sm = T.StatefulMapping(lambda x, flag: x * (2.0 if flag else 1.0), static_argnums=(1,))
    np.testing.assert_array_equal(sm(XS, True), XS * 2.0)
    np.testing.assert_array_equal(sm(XS, False), XS)  # another static value: another program

    negative = T.StatefulMapping(lambda x, flag: x * (2.0 if flag else 1.0), static_argnums=-1)
    np.testing.assert_array_equal(negative(XS, True), XS * 2.0)

    def f(x, y, flag):
        return (x + y) * (2.0 if flag else 1.0)

    tupled = T.StatefulMapping(f, in_axes=(0, 0, None), static_argnums=(2,))
    np.testing.assert_array_equal(tupled(XS, jnp.ones(3), True), (XS + 1.0) * 2.0)

    def repeat(x, n):
        acc = x
        for _ in range(n):  # n must be a Python int
            acc = acc + x
        return acc

    np.testing.assert_array_equal(T.StatefulMapping(repeat, static_argnums=1)(XS, 3), XS * 4.0)
    with pytest.raises(ValueError, match="static_argnums"):
        T.StatefulMapping(lambda x, flag: x, static_argnums=(5,))(XS, True)


def test_mapping_kwargs_reach_jax_vmap():
    """brainstate: ``mapping_kwargs`` are forwarded to the mapping primitive; here
    ``spmd_axis_name`` to ``jax.vmap``, whose collectives then see the named axis."""
    sm = T.StatefulMapping(
        lambda x: x - jax.lax.pmean(x, "i"),
        axis_name="i",
        mapping_kwargs={"spmd_axis_name": None},
    )
    np.testing.assert_allclose(sm(XS), XS - XS.mean())
    with pytest.raises(TypeError, match="bogus"):  # jax.vmap itself refuses it
        T.StatefulMapping(lambda x: x, mapping_kwargs={"bogus": 1})(XS)


def test_static_argnames_are_broadcast():
    """brainstate: other keyword arguments are mapped over axis 0; ``static_argnames`` ones are
    constants."""
    mapped = T.StatefulMapping(lambda x, *, scale: x * scale, static_argnames=("scale",))
    np.testing.assert_array_equal(mapped(XS, scale=2.0), XS * 2.0)


def test_static_argnums_with_a_state_write():
    counter = facade.ShortTermState(jnp.zeros(3))

    def f(x, scale):
        counter.value = counter.value + x * scale
        return x

    sm = T.StatefulMapping(
        f,
        state_in_axes={0: facade.ShortTermState},
        state_out_axes={0: facade.ShortTermState},
        static_argnums=(1,),
    )
    np.testing.assert_array_equal(sm(jnp.ones(3), 5), jnp.ones(3))
    np.testing.assert_array_equal(counter.value, jnp.full(3, 5.0))


# --- unexpected_out_state_mapping -------------------------------------------------------------


def _rmw(state):
    def f(x):
        state.value = state.value + x
        return state.value

    return f


def test_auto_feeds_a_read_modify_write_state_of_the_batch_size_per_element():
    """brainstate: ``w = zeros(3)``, ``w.value = w.value + x`` over 3 elements leaves
    ``w.value == [x0, x1, x2]`` (not a (3, 3) scatter), and a second call continues per element
    (``[2 x0, 2 x1, 2 x2]``)."""
    w = facade.ShortTermState(jnp.zeros(3))
    mapped = T.vmap2(_rmw(w))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a size that fits warns nothing
        np.testing.assert_array_equal(mapped(XS), XS)
    np.testing.assert_array_equal(w.value, XS)
    np.testing.assert_array_equal(mapped(XS), 2.0 * XS)
    np.testing.assert_array_equal(w.value, 2.0 * XS)


def test_auto_scatters_a_pure_write():
    """brainstate: a State only written (``w.value = 2 x``) is scattered: () -> (3,)."""
    w = facade.ShortTermState(jnp.zeros(()))

    def f(x):
        w.value = x * 2.0
        return x

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        T.vmap2(f)(XS)
    np.testing.assert_array_equal(w.value, 2.0 * XS)


def test_auto_warns_once_when_the_size_disagrees_then_keeps_the_new_axis():
    """brainstate: ``q = zeros(2)`` read and written over 5 elements gains a batch axis, (5, 2),
    with one UserWarning; the next call finds the batch axis in place and feeds it per
    element, so the value stays (5, 2) with rows ``2 x_i``."""
    q = facade.ShortTermState(jnp.zeros(2))
    mapped = T.vmap2(_rmw(q))
    xs = jnp.arange(5.0)
    with pytest.warns(UserWarning, match="mapped size"):
        mapped(xs)
    assert q.value.shape == (5, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mapped(xs)
    assert q.value.shape == (5, 2)
    np.testing.assert_array_equal(q.value[:, 0], 2.0 * xs)


def test_the_other_policies():
    """brainstate: 'warn' scatters with a warning, 'ignore' scatters silently (both (3, 3) for
    ``w = zeros(3)``), 'raise' raises BatchAxisError."""
    w = facade.ShortTermState(jnp.zeros(3))
    with pytest.warns(UserWarning):
        out = T.vmap2(_rmw(w), unexpected_out_state_mapping="warn")(XS)
    assert out.shape == (3, 3) and w.value.shape == (3, 3)

    v = facade.ShortTermState(jnp.zeros(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert T.vmap2(_rmw(v), unexpected_out_state_mapping="ignore")(XS).shape == (3, 3)

    u = facade.ShortTermState(jnp.zeros(3))
    with pytest.raises(T.BatchAxisError):
        T.vmap2(_rmw(u), unexpected_out_state_mapping="raise")(XS)
    np.testing.assert_array_equal(u.value, jnp.zeros(3))
    with pytest.raises(ValueError, match="unexpected_out_state_mapping"):
        T.vmap2(_rmw(u), unexpected_out_state_mapping="sometimes")


def test_auto_promotion_under_jit_and_grad():
    """The per-element feed is decided while tracing, from the State's shape: under ``jit`` and
    ``grad`` it gives what the explicit ``jax.vmap`` over the State's value gives."""
    w = facade.ShortTermState(jnp.ones(3))
    p = facade.ParamState(jnp.array(2.0))

    def f(x):
        w.value = w.value * p.value + x
        return jnp.sum(w.value)

    def loss(xs):
        return jnp.sum(T.vmap2(f)(xs))

    g = T.jit(T.grad(loss, grad_states=p))(XS)
    expected = jax.grad(lambda p_: jnp.sum(jax.vmap(lambda wi, x: wi * p_ + x)(jnp.ones(3), XS)))
    np.testing.assert_allclose(g, expected(2.0))
    np.testing.assert_array_equal(w.value, 2.0 + XS)


# --- pmap2 --------------------------------------------------------------------------------------


def test_pmap2_writes_a_state_per_device():
    """brainstate: a State written under ``pmap2`` with ``state_out_axes`` gets the device
    axis; ``pmap2`` of ``vmap2`` nests."""
    n = jax.local_device_count()
    param = facade.ParamState(jnp.ones(4))

    @T.pmap2(in_axes=0, axis_name="d", state_out_axes={0: facade.ParamState})
    def update(delta):
        param.value = param.value + delta
        return param.value

    deltas = jnp.arange(n * 4.0).reshape(n, 4)
    np.testing.assert_array_equal(update(deltas), 1.0 + deltas)
    np.testing.assert_array_equal(param.value, 1.0 + deltas)
    nested = T.pmap2(lambda row: T.vmap2(lambda x: x * 2.0)(row))(jnp.ones((n, 3)))
    np.testing.assert_array_equal(nested, jnp.full((n, 3), 2.0))


def test_pmap2_refuses_positional_static_and_donated_arguments():
    """brainstate: NotImplementedError for ``static_broadcasted_argnums`` and
    ``donate_argnums`` (0 counts as given); the decorator form returns a StatefulMapping."""
    with pytest.raises(NotImplementedError, match="static_broadcasted_argnums"):
        T.pmap2(lambda x: x, static_broadcasted_argnums=0)
    with pytest.raises(NotImplementedError, match="donate_argnums"):
        T.pmap2(lambda x: x, donate_argnums=(0,))
    decorated = T.pmap2(axis_name="i")(lambda x: x + 1.0)
    assert isinstance(decorated, T.StatefulMapping)
    n = jax.local_device_count()
    np.testing.assert_array_equal(decorated(jnp.zeros(n)), jnp.ones(n))


# --- States created per element -----------------------------------------------------------------


class _Ensemble(facade.nn.Module):
    def init_state(self, k=2):
        self.w = facade.ParamState(facade.random.randn(k))
        self.c = facade.ShortTermState(jnp.zeros(()))


def test_vmap2_new_states_creates_a_module_s_states_per_element():
    """brainstate: ``vmap2_new_states(m, {'k': 3}, axis_size=4, state_out_axes={None:
    ShortTermState})`` returns ``{None: [c], 0: [w]}``; ``w`` is (4, 3) with a different draw
    per element, ``c`` is shared, (); ``axis_size`` is required (ValueError)."""
    m = _Ensemble()
    groups = T.vmap2_new_states(
        m,
        init_kwargs={"k": 3},
        axis_size=4,
        state_tag="ens",
        state_out_axes={None: facade.ShortTermState},
    )
    assert list(groups) == [None, 0]
    assert groups[None] == [m.c] and groups[0] == [m.w]
    assert m.w.value.shape == (4, 3) and m.c.value.shape == ()
    assert not bool(jnp.allclose(m.w.value[0], m.w.value[1]))
    assert m.w.metadata["tag"] == "ens"
    assert not isinstance(m.w.value, jax.core.Tracer)
    with pytest.raises(ValueError, match="axis_size"):
        T.vmap2_new_states(_Ensemble(), init_kwargs={})


def test_pmap2_new_states_defaults_to_the_device_count():
    n = jax.local_device_count()
    m = _Ensemble()
    T.pmap2_new_states(m, init_kwargs={"k": 4})
    assert m.w.value.shape == (n, 4) and m.c.value.shape == (n,)


def test_in_new_state_probe_is_true_only_in_the_probe():
    """brainstate: the function of ``vmap_new_states`` / ``vmap2_new_states`` runs twice, a
    probe then the mapped pass; ``in_new_state_probe()`` is True in the first only."""
    seen = []

    def build(x):
        seen.append(T.in_new_state_probe())
        return facade.ShortTermState(x).value

    T.vmap_new_states(build)(XS)
    assert seen == [True, False] and not T.in_new_state_probe()

    class Counter(facade.nn.Module):
        def init_state(self):
            seen.append(T.in_new_state_probe())
            self.count = facade.ShortTermState(jnp.zeros(()))

    seen.clear()
    T.vmap2_new_states(Counter(), init_kwargs={}, axis_size=2)
    assert seen == [True, False]
    T.vmap(lambda x: x)(XS)  # a mapping that creates no State runs no such probe
    assert not T.in_new_state_probe()


# --- messages brainstate's tests look for -------------------------------------------------------


def test_an_axis_size_conflict_says_conflicts():
    """brainstate: ``'conflicts with the mapped'`` and both sizes."""
    with pytest.raises(ValueError, match="conflicts with the mapped") as err:
        T.vmap2(lambda x: x * 2, axis_size=5)(jnp.arange(3.0))
    assert "5" in str(err.value) and "3" in str(err.value)
    with pytest.raises(ValueError, match="conflicts"):
        T.vmap_new_states(lambda x: facade.ShortTermState(x).value, axis_size=5)(jnp.arange(3.0))


def test_map_of_a_scalar_says_0_d():
    with pytest.raises(ValueError, match="0-d"):
        T.map(lambda x: x * 2, jnp.array(5.0))


# --- the one discover (issue 17) ----------------------------------------------------------------


def test_discover_reads_states_through_a_value_provider_and_reports_the_frame():
    """A value provider gives a State its value in the probe (here: abstract zeros of another
    shape); ``OUTER`` leaves a State to the enclosing context; ``finish`` sees the frame's
    values; ``under`` runs the probe inside a wrapping transform."""
    a = facade.State(jnp.ones(3), name="a")
    b = facade.State(jnp.ones(2), name="b")

    def f(x):
        b.value = b.value + x.sum()
        return a.value * x

    def provide(s, value):
        return jnp.zeros(5) if s is a else OUTER

    seen = {}

    def finish(frame, out):
        seen["b"] = frame.values[b].shape

    d, out = discover(f, (jnp.ones(5),), {}, values=provide, finish=finish)
    assert [s.name for s in d.states] == ["b", "a"] and d.writes == (b,)
    assert out.shape == (5,) and seen == {"b": (2,)}

    def under(probe):
        return lambda args, kwargs: jax.vmap(lambda x: probe((x,), kwargs))(args[0])

    d2, out2 = discover(lambda x: a.value * x, (jnp.ones((4, 3)),), {}, under=under)
    assert d2.states == (a,) and out2.shape == (4, 3)
    np.testing.assert_array_equal(a.value, jnp.ones(3))  # nothing written
