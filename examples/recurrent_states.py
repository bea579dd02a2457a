"""A recurrent model whose HiddenState is written at every time step, inside facade jit and grad.

    python examples/recurrent_states.py [--quick]

The model predicts the next sample of noisy sine waves. ``loss`` resets the hidden state, then
writes it once per time step while it runs the sequence; the facade's ``grad`` differentiates
through all those writes (backpropagation through time) and ``jit`` compiles the whole training
step, gradients and Adam update, into one program. After each call the state holds its last value.
"""

import argparse

import jax
import jax.numpy as jnp
import optax

import facade as brainstate

STEPS_PER_SEQUENCE = 16


class RNN(brainstate.nn.Module):
    def __init__(self, n_hidden, key):
        super().__init__()
        k_in, k_rec, k_out = jax.random.split(key, 3)
        self.w_in = brainstate.ParamState(jax.random.normal(k_in, (1, n_hidden)))
        self.w_rec = brainstate.ParamState(
            jax.random.normal(k_rec, (n_hidden, n_hidden)) / jnp.sqrt(n_hidden)
        )
        self.b = brainstate.ParamState(jnp.zeros(n_hidden))
        self.w_out = brainstate.ParamState(jax.random.normal(k_out, (n_hidden, 1)) * 0.1)
        self.h = brainstate.HiddenState(jnp.zeros((1, n_hidden)))  # (batch, hidden)

    def reset(self, batch_size):
        self.h.value = jnp.zeros((batch_size, self.b.value.shape[0]))

    def __call__(self, x_t):
        self.h.value = jnp.tanh(
            x_t @ self.w_in.value + self.h.value @ self.w_rec.value + self.b.value
        )
        return self.h.value @ self.w_out.value


@jax.jit
def make_batch(key, batch_size=32):
    k_freq, k_phase, k_noise = jax.random.split(key, 3)
    freq = jax.random.uniform(k_freq, (batch_size, 1), minval=0.2, maxval=0.5)
    phase = jax.random.uniform(k_phase, (batch_size, 1), maxval=2 * jnp.pi)
    t = jnp.arange(STEPS_PER_SEQUENCE + 1)[None, :]
    waves = jnp.sin(freq * t + phase) + 0.02 * jax.random.normal(k_noise, (batch_size, t.size))
    waves = waves.T[:, :, None]  # (time, batch, 1)
    return waves[:-1], waves[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps only (for tests)")
    steps = 10 if parser.parse_args().quick else 400

    model = RNN(n_hidden=16, key=jax.random.key(0))
    model.reset(batch_size=32)  # the state's shape is part of the compiled program's signature
    params = model.states(brainstate.ParamState)
    print(model)

    def loss(xs, ys):
        model.reset(xs.shape[1])
        error = 0.0
        for x_t, y_t in zip(xs, ys, strict=True):  # one HiddenState write per time step
            error = error + jnp.mean((model(x_t) - y_t) ** 2)
        return error / len(xs)

    grad_fn = brainstate.transform.grad(loss, grad_states=params, return_value=True)
    optimizer = optax.adam(1e-2)
    opt_state = brainstate.State(optimizer.init(jax.tree.map(lambda s: s.value, params)))

    @brainstate.transform.jit
    def train_step(xs, ys):
        grads, value = grad_fn(xs, ys)
        current = jax.tree.map(lambda s: s.value, params)
        updates, opt_state.value = optimizer.update(grads, opt_state.value, current)
        for path, state in params.items():
            state.value = state.value + updates[path]
        return value

    keys = jax.random.split(jax.random.key(1), steps)
    losses = []
    for i, key in enumerate(keys):
        losses.append(float(train_step(*make_batch(key))))
        if i % max(1, steps // 5) == 0 or i == steps - 1:
            print(f"step {i:4d}  next-sample loss {losses[-1]:.5f}")

    # The hidden state was written inside grad, inside jit, and now holds a concrete value.
    assert isinstance(model.h.value, jax.Array) and model.h.value.shape == (32, 16)
    assert not isinstance(model.h.value, jax.core.Tracer)
    assert losses[-1] < losses[0]
    print(f"hidden state after the last step: {model.h.value.shape}")
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.5f}")


if __name__ == "__main__":
    main()
