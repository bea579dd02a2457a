"""``argnums``: JAX's rules, checked when the transform is built (type, empty, repeats) and
when it is called (range, and repeats that appear once negative indices are resolved)."""

import jax
import jax.numpy as jnp
import pytest
from functional_testing import assert_trees_equal

import functional as F


def _f2(a, b):
    return jnp.sum(jnp.sin(a) * b**2)


A, B, C = jnp.array([0.1, 0.2]), jnp.array([1.0, -2.0]), jnp.array([3.0, 0.5])

# Each builder takes (fun, argnums); for vjp building the transform and calling it coincide.
BUILDERS = [
    pytest.param(lambda f, a: F.grad(f, a), id="grad"),
    pytest.param(lambda f, a: F.vector_grad(f, a), id="vector_grad"),
    pytest.param(lambda f, a: F.jacrev(f, a), id="jacrev"),
    pytest.param(lambda f, a: F.jacfwd(f, a), id="jacfwd"),
    pytest.param(lambda f, a: F.jacobian(f, a), id="jacobian"),
    pytest.param(lambda f, a: F.hessian(f, a), id="hessian"),
    pytest.param(lambda f, a: F.fwd_grad(f, a), id="fwd_grad"),
    pytest.param(lambda f, a: F.transform(f, jax.grad, a), id="transform"),
    pytest.param(lambda f, a: F.vjp(f, A, B, argnums=a), id="vjp"),
]


@pytest.mark.parametrize(
    "argnums",
    ["w", 1.5, True, False, ["a"], (0, "a"), (0, 1.0), (True,), None, {0: 1}],
    ids=repr,
)
@pytest.mark.parametrize("build", BUILDERS)
def test_wrong_type_is_type_error_naming_argnums_at_build(build, argnums):
    with pytest.raises(TypeError, match="argnums"):
        build(_f2, argnums)


@pytest.mark.parametrize("argnums", [(), [], (0, 0), [1, 0, 1]], ids=repr)
@pytest.mark.parametrize("build", BUILDERS)
def test_empty_or_repeated_is_value_error_at_build(build, argnums):
    with pytest.raises(ValueError, match="argnums"):
        build(_f2, argnums)


CALL_TIME_ERRORS = [2, -3, (0, 2), (-3, 0), (1, -1), (0, -2)]


@pytest.mark.parametrize("argnums", CALL_TIME_ERRORS, ids=repr)
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(F.grad, id="grad"),
        pytest.param(F.vector_grad, id="vector_grad"),
        pytest.param(F.jacrev, id="jacrev"),
        pytest.param(F.jacfwd, id="jacfwd"),
        pytest.param(F.hessian, id="hessian"),
        pytest.param(F.fwd_grad, id="fwd_grad"),
        pytest.param(lambda f, a: F.transform(f, jax.grad, a), id="transform"),
    ],
)
def test_out_of_range_or_resolved_repeat_is_value_error_at_call(make, argnums):
    g = make(_f2, argnums)  # fine to build: it depends on the number of arguments
    with pytest.raises(ValueError, match="argnums"):
        g(A, B)


@pytest.mark.parametrize("argnums", CALL_TIME_ERRORS, ids=repr)
def test_vjp_out_of_range_is_value_error(argnums):
    with pytest.raises(ValueError, match="argnums"):
        F.vjp(_f2, A, B, argnums=argnums)


def _f3(a, b, c):
    return jnp.sum(a * b + jnp.cos(c) * a)


@pytest.mark.parametrize(
    ("argnums", "equivalent"),
    [(-1, 2), (-3, 0), ((1, -1), (1, 2)), ((-1, 0), (2, 0)), ((-2, -3), (1, 0)),
     ([0, -1], (0, 2))],
    ids=repr,
)
def test_negative_argnums_count_from_the_end(argnums, equivalent):
    got = F.grad(_f3, argnums)(A, B, C)
    assert_trees_equal(got, jax.grad(_f3, equivalent)(A, B, C))
    assert_trees_equal(got, jax.grad(_f3, argnums)(A, B, C))  # JAX agrees
    assert_trees_equal(
        F.vjp(_f3, A, B, C, argnums=argnums)[1](1.0),
        F.vjp(_f3, A, B, C, argnums=equivalent)[1](1.0),
    )


@pytest.mark.parametrize("argnums", [0, 1, (0,), (1,), (0, 1), (1, 0), [1, 0]], ids=repr)
def test_result_shape_follows_argnums_like_jax(argnums):
    got = F.grad(_f2, argnums)(A, B)
    want = jax.grad(_f2, argnums)(A, B)
    assert type(got) is type(want)
    assert_trees_equal(got, want)


def test_same_transform_works_for_different_argument_counts():
    """Negative argnums are resolved per call, against that call's arguments."""
    g = F.grad(lambda *args: jnp.sum(args[-1] ** 2) + jnp.sum(args[0]), -1)
    assert_trees_equal(g(A, B), 2 * B)
    assert_trees_equal(g(A, B, C), 2 * C)
    assert_trees_equal(g(A), 2 * A + 1)
