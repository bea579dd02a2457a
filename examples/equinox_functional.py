"""Train an equinox model through ``functional``: the Module itself is the parameter pytree.

    python examples/equinox_functional.py [--quick]

``F.grad`` differentiates the Module's array leaves and carries the rest (here the activation
function) through with ``None`` gradients, as ``equinox.filter_grad`` does; ``eqx.filter_jit``
compiles the step because a function leaf is not a valid ``jax.jit`` argument.
"""

import argparse
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import functional as F


class Regressor(eqx.Module):
    hidden: eqx.nn.Linear
    out: eqx.nn.Linear
    activation: Callable[[jax.Array], jax.Array]

    def __init__(self, key, width=32):
        k1, k2 = jax.random.split(key)
        self.hidden = eqx.nn.Linear(1, width, key=k1)
        self.out = eqx.nn.Linear(width, 1, key=k2)
        self.activation = jax.nn.gelu

    def __call__(self, x):
        return self.out(self.activation(self.hidden(x)))


def loss(model, x, y):
    pred = jax.vmap(model)(x)
    return jnp.mean((pred - y) ** 2), {"max_error": jnp.max(jnp.abs(pred - y))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps only (for tests)")
    steps = 30 if parser.parse_args().quick else 1000

    x = jnp.linspace(-2.0, 2.0, 128)[:, None]
    y = jnp.exp(-(x**2)) * jnp.cos(4.0 * x)
    model = Regressor(jax.random.key(0))
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))

    # grads has the Module's structure: arrays where the model has arrays, None elsewhere.
    grads, metrics = F.grad(loss, has_aux=True)(model, x, y)
    assert isinstance(grads, Regressor) and grads.activation is None
    assert eqx.tree_equal(grads, eqx.filter_grad(lambda m: loss(m, x, y)[0])(model))

    @eqx.filter_jit
    def step(model, opt_state):
        grads, value, metrics = F.grad(loss, has_aux=True, return_value=True)(model, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, value, metrics

    first = None
    for i in range(steps):
        model, opt_state, value, metrics = step(model, opt_state)
        first = float(value) if first is None else first
        if i % max(1, steps // 5) == 0 or i == steps - 1:
            error = float(metrics["max_error"])
            print(f"step {i:4d}  loss {float(value):.5f}  max error {error:.4f}")
    assert float(value) < first
    print(f"loss {first:.4f} -> {float(value):.5f}")


if __name__ == "__main__":
    main()
