"""Run-time type checking: bad parameters fail when the transform is built, with a
``TypeError`` naming the parameter; jaxtyping-annotated user functions stay checked when
called through every transform."""

import jax
import jax.numpy as jnp
import jaxtyping
import pytest
from beartype import beartype
from functional_testing import assert_trees_equal
from jaxtyping import Array, Float, jaxtyped

import functional as F


def _f(x):
    return jnp.sum(x**2)


BAD_PARAMETERS = [
    # (builder, its arguments, the parameter that is wrong)
    (F.grad, ((3,), {}), "fun"),
    (F.grad, ((_f,), {"has_aux": "yes"}), "has_aux"),
    (F.grad, ((_f,), {"return_value": 1}), "return_value"),
    (F.grad, ((_f,), {"holomorphic": "no"}), "holomorphic"),
    (F.grad, ((_f,), {"allow_int": None}), "allow_int"),
    (F.vector_grad, (("f",), {}), "fun"),
    (F.vector_grad, ((_f,), {"has_aux": 1}), "has_aux"),
    (F.jacrev, ((None,), {}), "fun"),
    (F.jacrev, ((_f,), {"return_value": "True"}), "return_value"),
    (F.jacfwd, ((_f,), {"has_aux": []}), "has_aux"),
    (F.jacfwd, ((_f,), {"holomorphic": 0}), "holomorphic"),
    (F.hessian, ((3.0,), {}), "fun"),
    (F.hessian, ((_f,), {"has_aux": "yes"}), "has_aux"),
    (F.fwd_grad, ((3,), {}), "fun"),
    (F.fwd_grad, ((_f,), {"tangent_size": "x"}), "tangent_size"),
    (F.fwd_grad, ((_f,), {"tangent_size": 2.5}), "tangent_size"),
    (F.fwd_grad, ((_f,), {"drct_der_clip": "big"}), "drct_der_clip"),
    (F.fwd_grad, ((_f,), {"key": "k"}), "key"),
    (F.fwd_grad, ((_f,), {"key": 1.5}), "key"),
    (F.fwd_grad, ((_f,), {"has_aux": "yes"}), "has_aux"),
    (F.transform, ((3, jax.grad), {}), "fun"),
    (F.transform, ((_f, 3), {}), "transform"),
    (F.transform, ((_f, jax.grad), {"transform_params": [1]}), "transform_params"),
    (F.transform, ((_f, jax.grad), {"transform_params": {1: True}}), "transform_params"),
    (F.transform, ((_f, jax.grad), {"has_aux": "yes"}), "has_aux"),
    (F.vjp, ((3, jnp.ones(2)), {}), "fun"),
    (F.vjp, ((_f, jnp.ones(2)), {"has_aux": "yes"}), "has_aux"),
    (F.jvp, ((3, (jnp.ones(2),), (jnp.ones(2),)), {}), "fun"),
    (F.jvp, ((_f, (jnp.ones(2),), (jnp.ones(2),)), {"has_aux": "yes"}), "has_aux"),
    (F.jvp, ((_f, jnp.ones(2), (jnp.ones(2),)), {}), "primals"),
    (F.jvp, ((_f, (jnp.ones(2),), 1.0), {}), "tangents"),
]


@pytest.mark.parametrize(
    ("builder", "arguments", "name"),
    BAD_PARAMETERS,
    ids=[f"{b.__name__}-{n}-{i}" for i, (b, _, n) in enumerate(BAD_PARAMETERS)],
)
def test_bad_parameter_is_type_error_naming_it_at_build(builder, arguments, name):
    args, kwargs = arguments
    with pytest.raises(TypeError) as info:
        builder(*args, **kwargs)
    # jaxtyping's message lists every parameter of the call after "Called with parameters";
    # the part before it must single out the wrong one.
    head = str(info.value).split("Called with parameters")[0]
    assert name in head, head


# --------------------------------------------------- user functions annotated with jaxtyping


@jaxtyped(typechecker=beartype)
def _loss(x: Float[Array, " n"]) -> Float[Array, ""]:
    return jnp.sum(jnp.sin(x) ** 2)


@jaxtyped(typechecker=beartype)
def _vec(x: Float[Array, " n"]) -> Float[Array, " n"]:
    return jnp.sin(x) * x


@jaxtyped(typechecker=beartype)
def _paired(w: Float[Array, " n"], x: Float[Array, " n"]) -> Float[Array, ""]:
    return jnp.sum(w * x**2)


# (name, call(fun, x) using our transform, the annotated function, raw JAX equivalent)
THROUGH = [
    ("grad", lambda f, x: F.grad(f)(x), _loss, lambda f, x: jax.grad(f)(x)),
    ("vector_grad", lambda f, x: F.vector_grad(f)(x), _vec, None),
    ("jacrev", lambda f, x: F.jacrev(f)(x), _vec, lambda f, x: jax.jacrev(f)(x)),
    ("jacfwd", lambda f, x: F.jacfwd(f)(x), _vec, lambda f, x: jax.jacfwd(f)(x)),
    ("hessian", lambda f, x: F.hessian(f)(x), _loss, lambda f, x: jax.hessian(f)(x)),
    ("fwd_grad", lambda f, x: F.fwd_grad(f, tangent_size=2)(x), _loss, None),
    ("transform", lambda f, x: F.transform(f, jax.grad)(x), _loss, lambda f, x: jax.grad(f)(x)),
    ("vjp", lambda f, x: F.vjp(f, x)[1](jnp.ones_like(f(x))), _vec,
     lambda f, x: jax.vjp(f, x)[1](jnp.ones_like(f(x)))[0]),
    ("jvp", lambda f, x: F.jvp(f, (x,), (jnp.ones_like(x),)), _vec,
     lambda f, x: jax.jvp(f, (x,), (jnp.ones_like(x),))),
]


@pytest.mark.parametrize(("name", "call", "fun", "raw"), THROUGH, ids=[t[0] for t in THROUGH])
def test_annotated_function_checked_through_transform(name, call, fun, raw):
    good = jnp.array([0.5, -1.0, 2.0])
    result = call(fun, good)  # a right argument passes ...
    if raw is not None:
        assert_trees_equal(result, raw(fun, good))
    with pytest.raises(jaxtyping.TypeCheckError):  # ... a wrongly-shaped one does not
        call(fun, jnp.ones((2, 3)))
    with pytest.raises(jaxtyping.TypeCheckError):  # nor a scalar where a vector is expected
        call(fun, jnp.float32(1.0))


@pytest.mark.parametrize("argnums", [0, 1, (0, 1)], ids=repr)
def test_shared_dimension_checked_for_differentiated_and_other_arguments(argnums):
    w, x = jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    assert_trees_equal(F.grad(_paired, argnums)(w, x), jax.grad(_paired, argnums)(w, x))
    with pytest.raises(jaxtyping.TypeCheckError):
        F.grad(_paired, argnums)(w, jnp.ones(3))
    with pytest.raises(jaxtyping.TypeCheckError):
        F.vjp(_paired, w, jnp.ones(3), argnums=argnums)


def test_wrong_return_annotation_is_caught_through_transform():
    @jaxtyped(typechecker=beartype)
    def lies(x: Float[Array, " n"]) -> Float[Array, ""]:
        return x * 2.0  # not a scalar

    with pytest.raises(jaxtyping.TypeCheckError):
        F.vector_grad(lies)(jnp.ones(3))


def test_dtype_annotation_checked_for_non_differentiated_argument():
    w = jnp.array([1.0, 2.0])
    with pytest.raises(jaxtyping.TypeCheckError):
        F.grad(_paired)(w, jnp.array([1, 2]))


def test_annotated_pytree_parameters():
    @jaxtyped(typechecker=beartype)
    def loss(params: dict[str, Float[Array, " n"]], x: Float[Array, " n"]) -> Float[Array, ""]:
        return jnp.sum(params["w"] * x + params["b"])

    params, x = {"w": jnp.ones(3), "b": jnp.zeros(3)}, jnp.arange(3.0)
    assert_trees_equal(F.grad(loss)(params, x), jax.grad(loss)(params, x))
    with pytest.raises(jaxtyping.TypeCheckError):
        F.grad(loss)({"w": jnp.ones(3), "b": jnp.zeros(2)}, x)
