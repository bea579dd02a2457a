"""Per-example gradients with ``vmap(grad)`` over shared ParamStates, and a DP-SGD-style step.

    python examples/per_example_gradients.py [--quick]

A small MLP classifies two noisy interleaved spirals. ``vmap(grad(loss, grad_states=params))``
gives one gradient per example (the parameters are shared: every example reads the same
States). Each example's gradient is clipped to a norm of at most ``CLIP``, the clipped
gradients are averaged and Gaussian noise is added (the recipe of differentially private SGD;
no privacy accounting here), and optax applies the update. The whole step is one
``facade.transform.jit`` program. The per-example gradients are checked against the explicit
``jax.vmap(jax.grad(...))`` over the parameters' values.
"""

import argparse
import functools

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

import facade as brainstate

CLIP = 1.0  # the largest norm an example's gradient may have
NOISE = 0.5  # noise standard deviation, relative to CLIP
BATCH = 64


@functools.partial(jax.jit, static_argnums=0)
def spirals(n, key):
    """Two interleaved spirals in 2-D with labels 0 and 1."""
    k_t, k_noise = jax.random.split(key)
    t = jax.random.uniform(k_t, (n,), minval=0.5, maxval=3.0)
    label = jnp.arange(n) % 2
    angle = 2.0 * t + jnp.pi * label
    x = jnp.stack([t * jnp.cos(angle), t * jnp.sin(angle)], axis=1) / 3.0
    return x + 0.05 * jax.random.normal(k_noise, x.shape), label


class MLP(brainstate.nn.Module):
    def __init__(self, width=32):
        super().__init__()
        self.l1 = brainstate.nn.Linear(2, width)
        self.l2 = brainstate.nn.Linear(width, 2)

    def __call__(self, x):
        return self.l2(jnp.tanh(self.l1(x)))


def clip(grads, max_norm):
    """``grads`` scaled down to a global norm of at most ``max_norm``."""
    norm = optax.global_norm(grads)
    return jax.tree.map(lambda g: g * jnp.minimum(1.0, max_norm / (norm + 1e-12)), grads)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps only (for tests)")
    args = parser.parse_args()
    steps = 40 if args.quick else 1500

    brainstate.random.seed(0)
    model = MLP()
    params = model.states(brainstate.ParamState)
    optimizer = brainstate.optim.OptaxOptimizer(optax.adam(0.02))
    optimizer.register_trainable_weights(params)
    x_all, y_all = spirals(1024, jax.random.PRNGKey(1))

    def loss(x, y):  # one example
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y)

    per_example_grads = brainstate.transform.vmap(
        brainstate.transform.grad(loss, grad_states=params)
    )

    # The per-example gradients against the explicit jax.vmap(jax.grad(...)) over the values.
    x, y = x_all[:BATCH], y_all[:BATCH]
    values = {k: s.value for k, s in params.items()}

    def raw_loss(p, x, y):
        h = jnp.tanh(x @ p[("l1", "weight")]["weight"] + p[("l1", "weight")]["bias"])
        logits = h @ p[("l2", "weight")]["weight"] + p[("l2", "weight")]["bias"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y)

    raw = jax.jit(jax.vmap(jax.grad(raw_loss), in_axes=(None, 0, 0)))(values, x, y)
    ours = per_example_grads(x, y)
    pairs = zip(jax.tree.leaves(ours), jax.tree.leaves(raw), strict=True)
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in pairs)
    assert diff < 1e-5, diff
    print(f"per-example gradients match jax.vmap(jax.grad) (max difference {diff:.1e})")
    first = list(params)[0]
    print(f"per-example gradients of {first}: {ours[first]['weight'].shape}")

    @brainstate.transform.jit
    def dp_step(x, y):
        grads = per_example_grads(x, y)  # one gradient per example: leading axis BATCH
        clipped = jax.vmap(clip, in_axes=(0, None))(grads, CLIP)
        mean = jax.tree.map(lambda g: g.mean(axis=0), clipped)
        flat, unflatten = jax.flatten_util.ravel_pytree(mean)  # one draw for all parameters
        noise = NOISE * CLIP / BATCH * brainstate.random.normal(size=flat.shape)
        optimizer.update(unflatten(flat + noise))
        norms = jax.vmap(optax.global_norm)(grads)
        return jnp.mean(jax.vmap(loss)(x, y)), jnp.mean(norms > CLIP)

    rng = np.random.RandomState(0)
    for step in range(steps):
        idx = rng.choice(len(x_all), BATCH, replace=False)
        mean_loss, clipped_share = dp_step(x_all[idx], y_all[idx])
        if step % max(1, steps // 5) == 0 or step == steps - 1:
            share = float(clipped_share)
            print(f"step {step:4d}  loss {float(mean_loss):.3f}  gradients clipped {share:.0%}")
    predict = brainstate.transform.jit(brainstate.transform.vmap(model))
    accuracy = jnp.mean(jnp.argmax(predict(x_all), axis=1) == y_all)
    print(f"training accuracy after {steps} DP-SGD steps: {float(accuracy):.1%}")


if __name__ == "__main__":
    main()
