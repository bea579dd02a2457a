"""Names brainpy.state reaches for (issue 18): ``random.default_rng``,
``transform.jit_error_if``, ``transform.jaxpr_to_python_code``, ``jit(Missing())``; checked
against brainstate 0.5.4's documented behaviour."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import facade
from facade.typing import Missing


def test_default_rng_is_the_global_state_or_a_new_seeded_one():
    assert facade.random.default_rng() is facade.random.DEFAULT
    a, b = facade.random.default_rng(7), facade.random.default_rng(7)
    assert a is not b and isinstance(a, facade.random.RandomState)
    np.testing.assert_array_equal(a.normal(size=4), b.normal(size=4))
    expected = facade.random.RandomState(7).uniform(size=3)
    np.testing.assert_array_equal(facade.random.default_rng(7).uniform(size=3), expected)


def test_jit_error_if_with_a_message_formats_it_as_brainstate():
    facade.transform.jit_error_if(False, "never")
    facade.transform.jit_error_if(jnp.array([False, False]), "never")
    with pytest.raises(ValueError, match="^bad 3$"):
        facade.transform.jit_error_if(True, "bad %d", 3)
    with pytest.raises(ValueError, match=r"^bad \{\} 3$|^bad 3$"):
        facade.transform.jit_error_if(jnp.array([False, True]), "bad {}", 3)
    with pytest.raises(ValueError, match="^sum is 2.0$"):
        facade.transform.jit_error_if(True, "sum is {s}", s=jnp.float32(2.0))


def test_jit_error_if_calls_an_error_function_with_the_arguments():
    seen = []

    def error(x, *, k):
        seen.append((float(x), k))
        raise RuntimeError("custom")

    with pytest.raises(RuntimeError, match="custom"):
        facade.transform.jit_error_if(jnp.bool_(True), error, 1.5, k="z")
    assert seen == [(1.5, "z")]


def test_jit_error_if_inside_a_compiled_function_checks_at_run_time():
    count = facade.State(jnp.array(0))

    @facade.transform.jit
    def step(x):
        facade.transform.jit_error_if(jnp.any(x < 0.0), "negative input: {m}", m=x.min())
        count.value = count.value + 1
        return x * 2.0

    np.testing.assert_array_equal(step(jnp.ones(2)), 2.0 * np.ones(2))
    with pytest.raises(jax.errors.JaxRuntimeError, match="negative input: -1.0"):
        step(jnp.array([1.0, -1.0]))
    assert int(count.value) == 1  # the failed call wrote nothing
    np.testing.assert_array_equal(step(jnp.full(2, 3.0)), 6.0 * np.ones(2))
    assert int(count.value) == 2


def test_jit_error_if_refuses_an_error_of_the_wrong_type():
    with pytest.raises(TypeError, match="error"):  # the parameter is named
        facade.transform.jit_error_if(True, 3)


def test_jaxpr_to_python_code_lists_every_equation():
    closed = jax.make_jaxpr(lambda x, y: jnp.sin(x) * y + 1.0)(1.0, 2.0)
    code = facade.transform.jaxpr_to_python_code(closed, "f")
    lines = code.splitlines()
    assert lines[0] == "def f(v0, v1):"
    assert [ln.split(" = ")[1].split("(")[0] for ln in lines[1:-1]] == ["sin", "mul", "add"]
    assert lines[-1] == "    return v4"
    assert facade.transform.jaxpr_to_python_code(closed.jaxpr, "f") == code
    with pytest.raises(TypeError, match="expected a Jaxpr"):
        facade.transform.jaxpr_to_python_code(lambda x: x)


def test_jit_takes_brainstates_missing_sentinel_as_the_decorator_form():
    decorate = facade.transform.jit(Missing(), static_argnums=1)

    @decorate
    def f(x, n):
        return x * n

    np.testing.assert_array_equal(f(jnp.ones(2), 3), 3.0 * np.ones(2))
