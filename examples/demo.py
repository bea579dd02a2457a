"""Fit a small linear model with ``functional.grad`` and print the loss falling."""

import jax
import jax.numpy as jnp

import functional as F


def loss(params, x, y):
    pred = x @ params["w"] + params["b"]
    return jnp.mean((pred - y) ** 2)


def main() -> None:
    x = jnp.linspace(-1.0, 1.0, 32).reshape(-1, 1)
    y = 3.0 * x + 1.0
    params = {"w": jnp.zeros((1, 1)), "b": jnp.zeros((1,))}
    step = jax.jit(F.grad(loss, return_value=True))
    for epoch in range(1, 101):
        grads, value = step(params, x, y)
        params = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
        if epoch % 20 == 0:
            print(f"epoch {epoch:3d}  loss {float(value):.5f}")
    print(f"w={float(params['w'][0, 0]):.3f} (true 3)  b={float(params['b'][0]):.3f} (true 1)")


if __name__ == "__main__":
    main()
