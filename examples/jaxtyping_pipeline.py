"""A pipeline of jaxtyping-annotated functions, checked at run time through the transforms.

    python examples/jaxtyping_pipeline.py [--quick]

Each stage is decorated with ``@jaxtyped(typechecker=beartype)``: shapes and dtypes are checked
every time the function runs, including when a transform traces it (tracers carry shapes), and
the names in the annotations ("batch", "features", ...) must agree across arguments. A wrong
shape is caught at the call, with a message naming the function and the parameter, instead of
surfacing as a broadcasting bug.
"""

import argparse

import jax
import jax.numpy as jnp
from beartype import beartype
from jaxtyping import Array, Float, TypeCheckError, jaxtyped

import facade as brainstate
import functional as F

typechecked = jaxtyped(typechecker=beartype)
Params = dict[str, Float[Array, "..."]]


@typechecked
def standardize(x: Float[Array, "batch features"]) -> Float[Array, "batch features"]:
    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)


@typechecked
def dense(
    w: Float[Array, "features hidden"],
    b: Float[Array, " hidden"],
    x: Float[Array, "batch features"],
) -> Float[Array, "batch hidden"]:
    return jnp.tanh(x @ w + b)


@typechecked
def predict(params: Params, x: Float[Array, "batch features"]) -> Float[Array, " batch"]:
    h = dense(params["w1"], params["b1"], standardize(x))
    return (h @ params["w2"])[:, 0]


@typechecked
def loss(
    params: Params, x: Float[Array, "batch features"], y: Float[Array, " batch"]
) -> Float[Array, ""]:
    return jnp.mean((predict(params, x) - y) ** 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps only (for tests)")
    steps = 20 if parser.parse_args().quick else 300

    kx, k1, k2 = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (64, 3))
    y = x[:, 0] - 2.0 * x[:, 1] * x[:, 2]
    params = {
        "w1": jax.random.normal(k1, (3, 16)) / jnp.sqrt(3.0),
        "b1": jnp.zeros(16),
        "w2": jax.random.normal(k2, (16, 1)) / 4.0,
    }

    # 1. Training: the annotations are checked while F.grad traces the pipeline under jit.
    step = jax.jit(F.grad(loss, return_value=True))
    for i in range(steps):
        grads, value = step(params, x, y)
        params = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
        if i % max(1, steps // 4) == 0:
            print(f"step {i:4d}  loss {float(value):.4f}")

    # 2. Other transforms go through the same checks: a Jacobian of the predictions w.r.t. the
    #    inputs, and a VJP, each with shapes the annotations promise.
    jac = F.jacrev(predict, argnums=1)(params, x[:4])
    out, vjp_fn = F.vjp(predict, params, x[:4], argnums=1)
    print("jacobian of 4 predictions w.r.t. the inputs:", jac.shape)
    assert jnp.allclose(vjp_fn(jnp.ones(4)), jac.sum(axis=0), atol=1e-5)

    # 3. The facade traces annotated functions too.
    w1 = brainstate.ParamState(params["w1"])
    state_grad = brainstate.transform.grad(
        lambda x, y: loss({**params, "w1": w1.value}, x, y), grad_states=w1
    )
    assert jnp.allclose(state_grad(x, y), F.grad(loss)(params, x, y)["w1"], atol=1e-5)

    # 4. A shape error, caught at run time through the transform: w1 has 4 rows for 3 features.
    bad = {**params, "w1": jnp.zeros((4, 16))}
    try:
        F.grad(loss)(bad, x, y)
    except TypeCheckError as err:
        first_lines = str(err).splitlines()[:2]
        print("caught a shape error through F.grad:")
        print("  " + "\n  ".join(first_lines))
    else:
        raise AssertionError("the shape error was not caught")


if __name__ == "__main__":
    main()
