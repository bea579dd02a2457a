"""Train a small MLP with optax in both styles and check that they give the same numbers.

    python examples/mlp_optax.py [--quick]

``functional``: the parameters are a pytree passed to a pure loss. ``facade``: the same arrays live
in ``ParamState``s on a ``Module``, and the whole Adam step (gradients and update, with the
optimizer state in a ``State`` too) is one compiled program.
"""

import argparse

import jax
import jax.numpy as jnp
import optax

import facade as brainstate
import functional as F

SIZES = [2, 32, 32, 1]


def init_mlp(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {"w": jax.random.normal(k, (n_in, n_out)) / jnp.sqrt(n_in), "b": jnp.zeros(n_out)}
        for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def make_data(key, n=256):
    x = jax.random.uniform(key, (n, 2), minval=-1.0, maxval=1.0)
    y = jnp.sin(3.0 * x[:, :1]) * jnp.cos(2.0 * x[:, 1:])
    return x, y


# --- functional: explicit parameters -------------------------------------------------------


def mlp(params, x):
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def loss(params, x, y):
    return jnp.mean((mlp(params, x) - y) ** 2)


def train_functional(init, optimizer, x, y, steps):
    @jax.jit
    def step(params, opt_state):
        grads, value = F.grad(loss, return_value=True)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    params, opt_state = init, optimizer.init(init)
    losses = []
    for _ in range(steps):
        params, opt_state, value = step(params, opt_state)
        losses.append(value)
    return params, [float(v) for v in losses]


# --- facade: ParamStates on a Module --------------------------------------------------------


class Linear(brainstate.nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.weight = brainstate.ParamState(w)
        self.bias = brainstate.ParamState(b)

    def __call__(self, x):
        return x @ self.weight.value + self.bias.value


class MLP(brainstate.nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = [Linear(layer["w"], layer["b"]) for layer in layers]

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = jnp.tanh(layer(x))
        return self.layers[-1](x)


def train_facade(init, optimizer, x, y, steps):
    model = MLP(init)
    params = model.states(brainstate.ParamState)
    values = lambda: jax.tree.map(lambda s: s.value, params)  # noqa: E731
    opt_state = brainstate.State(optimizer.init(values()))

    def mse():
        return jnp.mean((model(x) - y) ** 2)

    grad_fn = brainstate.transform.grad(mse, grad_states=params, return_value=True)

    @brainstate.transform.jit
    def step():
        grads, value = grad_fn()
        updates, opt_state.value = optimizer.update(grads, opt_state.value, values())
        for path, state in params.items():
            state.value = state.value + updates[path]
        return value

    losses = [step() for _ in range(steps)]
    return model, [float(v) for v in losses]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps only (for tests)")
    args = parser.parse_args()
    steps = 20 if args.quick else 500

    x, y = make_data(jax.random.key(1))
    init = init_mlp(jax.random.key(0), SIZES)
    optimizer = optax.adam(3e-3)

    params, functional_losses = train_functional(init, optimizer, x, y, steps)
    model, facade_losses = train_facade(init, optimizer, x, y, steps)

    for i in sorted({0, steps // 4, steps // 2, steps - 1}):
        print(f"step {i:4d}  functional {functional_losses[i]:.6f}  facade {facade_losses[i]:.6f}")
    assert jnp.allclose(jnp.array(functional_losses), jnp.array(facade_losses), rtol=1e-5)
    for layer, linear in zip(params, model.layers, strict=True):
        assert jnp.allclose(layer["w"], linear.weight.value, atol=1e-5)
    assert facade_losses[-1] < facade_losses[0]
    print("same numbers from both styles")


if __name__ == "__main__":
    main()
