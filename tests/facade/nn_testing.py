"""Checks shared by the facade.nn tests (imported by basename, as tests/ has no packages).

Speed matters here: every new shape, dtype or program is an XLA compilation (a few tenths of a
second each). So the checks build their data with numpy, and ``check_layers`` compares several
layers in one compiled program per side.
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import facade

TOLERANCE = {32: dict(rtol=2e-5, atol=2e-5), 64: dict(rtol=1e-10, atol=1e-10)}
FLOAT = {32: jnp.float32, 64: jnp.float64}


@pytest.fixture(params=[32, 64], ids=["float32", "float64"])
def precision(request):
    """Run the test body at float32 and at float64 (``facade.environ`` precision)."""
    with facade.environ.context(precision=request.param):
        yield request.param


def data(shape, seed=0):
    """Normal samples at the current default float dtype (numpy's generator: no compilation)."""
    sample = np.random.default_rng(seed).standard_normal(shape)
    return jnp.asarray(sample, facade.environ.dftype())


def values_of(states):
    """``{path: value}`` of a FlatDict of states."""
    return {path: state.value for path, state in states.items()}


def assert_close(got, want, precision):
    """Same structure, the precision's float dtype everywhere, and close values."""
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert jnp.result_type(g) == jnp.result_type(w) == FLOAT[precision], (g.dtype, w.dtype)
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), **TOLERANCE[precision])


class Bundle(facade.nn.Module):
    """Several layers side by side: ``update(xs)`` applies layer i to ``xs[i]``."""

    def __init__(self, layers):
        super().__init__()
        self.layers = list(layers)

    def update(self, xs):
        return [layer(x) for layer, x in zip(self.layers, xs, strict=True)]


def check_layers(cases, precision, *, fit=None, wrt_input=True):
    """For each ``(layer, x, formula)``: ``layer(x) == formula(params, x)``, gradients too.

    ``params`` is ``{path: value}`` of the layer's ParamStates (paths within the layer). The
    gradients are those of ``sum(out * cotangent)`` w.r.t. the ParamStates (through
    ``facade.transform.grad``) and, with ``wrt_input``, w.r.t. the inputs (``argnums=0``),
    against ``jax.grad`` of the formulas. All cases are one compiled program per side; the
    outputs come back as ``aux``.
    """
    layers, xs, formulas = zip(*cases, strict=True)
    bundle = Bundle(layers)
    params = bundle.states(facade.ParamState)
    values = values_of(params)

    def formula_outputs(values, xs):
        outs = []
        for i, (formula, x) in enumerate(zip(formulas, xs, strict=True)):
            own = {p[2:]: v for p, v in values.items() if p[1] == i}
            outs.append(formula(own, x))
        return outs

    shapes = jax.eval_shape(formula_outputs, values, list(xs))
    rng = np.random.default_rng(123)
    cotangents = [jnp.asarray(rng.standard_normal(s.shape), s.dtype) for s in shapes]

    def weighted(outs):
        return sum(jnp.sum(o * c) for o, c in zip(outs, cotangents, strict=True))

    def loss(xs):
        outs = bundle(xs)
        return weighted(outs), outs

    # The reference needs no fast code, only the same numbers: compile it unoptimised (about
    # half the compile time of XLA's default).
    @functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
    def reference(values, xs):
        def ref_loss(values, xs):
            outs = formula_outputs(values, xs)
            return weighted(outs), outs

        if not wrt_input:  # e.g. integer indices
            return (jax.grad(ref_loss, has_aux=True)(values, xs)[0], None), ref_loss(values, xs)[1]
        return jax.grad(ref_loss, argnums=(0, 1), has_aux=True)(values, xs)

    (want_var, want_arg), want = reference(values, list(xs))
    ctx = facade.environ.context(fit=fit) if fit is not None else contextlib.nullcontext()
    with ctx:
        if params:
            grads, got = facade.transform.grad(
                loss, params, argnums=0 if wrt_input else None, has_aux=True
            )(list(xs))
            var_grads, arg_grads = grads if wrt_input else (grads, None)
        else:
            arg_grads, got = facade.transform.grad(loss, argnums=0, has_aux=True)(list(xs))
            var_grads = {}
    for i in range(len(cases)):
        assert_close(got[i], want[i], precision)
        if wrt_input:
            assert_close(arg_grads[i], want_arg[i], precision)
    assert set(var_grads) == set(params)
    assert_close({k: var_grads[k] for k in values}, want_var, precision)


def check_layer(layer, x, formula, precision, **options):
    """``check_layers`` for one layer."""
    check_layers([(layer, x, formula)], precision, **options)
