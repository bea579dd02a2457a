"""unit_aware=True: gradients carry units through brainunit's transforms; clear error without it."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import facade

u = pytest.importorskip("brainunit")
transform = facade.transform


def _conductance():
    return facade.ParamState(jnp.array([1.0, 2.0]) * u.siemens, name="g")


def test_state_gradient_has_output_over_input_unit():
    g = _conductance()

    def current(v):
        return u.math.sum(g.value * v)

    grads = transform.grad(current, grad_states=g, unit_aware=True)(3.0 * u.mV)
    # d(current)/d(g) = v: mantissa 3 per element, unit mA / S = mV.
    assert u.get_unit(grads) == u.mV
    np.testing.assert_allclose(u.get_mantissa(grads), [3.0, 3.0])


def test_argument_gradient_and_value_units():
    g = _conductance()

    def current(v):
        return u.math.sum(g.value * v)

    (state_grads, arg_grad), value = transform.grad(
        current, grad_states=g, argnums=0, unit_aware=True, return_value=True
    )(3.0 * u.mV)
    assert u.get_unit(state_grads) == u.mV
    assert u.get_unit(arg_grad) == u.siemens
    np.testing.assert_allclose(u.get_mantissa(arg_grad), 3.0)
    assert u.get_unit(value) == u.mA
    np.testing.assert_allclose(u.get_mantissa(value), 9.0)


@pytest.mark.parametrize("name", ["jacrev", "jacfwd", "vector_grad"])
def test_jacobians_carry_units(name):
    g = _conductance()
    fn = getattr(transform, name)(lambda v: g.value * v, grad_states=g, unit_aware=True)
    result = fn(3.0 * u.mV)
    assert u.get_unit(result) == u.mV
    expected = jax.jacrev(lambda m: m * 3.0)(jnp.array([1.0, 2.0]))
    if name == "vector_grad":
        expected = expected.sum(axis=0)
    np.testing.assert_allclose(u.get_mantissa(result), expected)


def test_unit_aware_matches_plain_mantissa_gradient():
    g = _conductance()
    plain = facade.ParamState(jnp.array([1.0, 2.0]))

    def loss_units(v):
        return u.math.sum((g.value * v) ** 2)

    def loss_plain(v):
        return jnp.sum((plain.value * v) ** 2)

    with_units = transform.grad(loss_units, grad_states=g, unit_aware=True)(3.0 * u.mV)
    without = transform.grad(loss_plain, grad_states=plain)(3.0)
    np.testing.assert_allclose(u.get_mantissa(with_units), without)


def test_without_brainunit_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "brainunit", None)  # makes `import brainunit` fail
    with pytest.raises(ImportError, match=r"stategrad\[units\]"):
        transform.grad(lambda x: x, argnums=0, unit_aware=True)


def test_unit_aware_must_be_bool():
    with pytest.raises(TypeError, match="unit_aware"):
        transform.grad(lambda x: x, unit_aware="yes")
