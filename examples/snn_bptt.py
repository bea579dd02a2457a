"""Train a spiking network by backpropagation through time with the facade's ``for_loop``.

    python examples/snn_bptt.py [--quick] [--steps N] [--out PATH]

The task: two groups of input neurons fire Poisson spike trains, one group at a higher rate
than the other; the network must say which. The network is a layer of leaky integrate-and-fire
(LIF) neurons with recurrent connections, read out by two leaky integrators whose mean potential
over the trial are the logits.

* The membrane potentials and the last spikes are ``HiddenState``s, the weights ``ParamState``s
  of a ``facade.nn.Module``; one call of the module is one time step and writes its states.
* A spike is a Heaviside step, whose derivative is zero almost everywhere. A ``jax.custom_jvp``
  gives it a surrogate derivative (a fast sigmoid's), so gradients flow through spikes.
* ``facade.transform.for_loop`` runs the time steps, carrying the hidden states from one step to
  the next; ``facade.transform.grad`` differentiates the loss through the whole loop (BPTT) and
  ``facade.transform.jit`` compiles the training step, gradients and Adam update, as one program.

Before training, the facade's BPTT gradient is checked against ``jax.grad`` of an explicit
``jax.lax.scan`` over the same values. Training shows a tqdm bar; the evaluation, one long
simulation, shows a ``facade.transform.ProgressBar`` updated from inside the compiled loop.
A figure (loss and accuracy, and a spike raster of the trained network) is saved as a PNG.
Needs the ``examples`` extra (optax, matplotlib, tqdm).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from tqdm import tqdm

import facade as brainstate

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402

N_PER_GROUP = 10  # input neurons per group; the inputs are two groups
N_HIDDEN = 64
N_CLASSES = 2
TRIAL_STEPS = 50  # time steps of a training trial (1 ms each)
BATCH = 64
DECAY = 0.9  # membrane decay per step (tau = 10 ms)
READOUT_DECAY = 0.95
THRESHOLD = 1.0
SURROGATE_SLOPE = 10.0


# --- the surrogate spike ----------------------------------------------------------------------


@jax.custom_jvp
def spike(v: jax.Array) -> jax.Array:
    """Heaviside step of ``v``: 1.0 where the neuron fires, else 0.0."""
    return (v > 0.0).astype(v.dtype)


@spike.defjvp
def _spike_jvp(primals: tuple[jax.Array], tangents: tuple[jax.Array]):
    # Forward: the step. Backward: the derivative of a fast sigmoid, 1 / (1 + k|v|)^2.
    (v,), (dv,) = primals, tangents
    return spike(v), dv / (1.0 + SURROGATE_SLOPE * jnp.abs(v)) ** 2


# --- the network: one call is one time step ---------------------------------------------------


class LIFNetwork(brainstate.nn.Module):
    def __init__(self, n_in: int, n_hidden: int, n_out: int, seed: int = 0):
        super().__init__()
        rng = np.random.default_rng(seed)

        def normal(shape: tuple[int, int], scale: float) -> jax.Array:
            return jnp.asarray(rng.standard_normal(shape, np.float32) * scale / np.sqrt(shape[0]))

        self.w_in = brainstate.ParamState(normal((n_in, n_hidden), 2.0))
        self.w_rec = brainstate.ParamState(normal((n_hidden, n_hidden), 0.2))
        self.w_out = brainstate.ParamState(normal((n_hidden, n_out), 1.0))
        self.v = brainstate.HiddenState(jnp.zeros((1, n_hidden)))  # membrane potentials
        self.s = brainstate.HiddenState(jnp.zeros((1, n_hidden)))  # last step's spikes
        self.r = brainstate.HiddenState(jnp.zeros((1, n_out)))  # readout potentials

    def reset(self, batch_size: int) -> None:
        self.v.value = jnp.zeros((batch_size, self.w_in.value.shape[1]))
        self.s.value = jnp.zeros((batch_size, self.w_in.value.shape[1]))
        self.r.value = jnp.zeros((batch_size, self.w_out.value.shape[1]))

    def __call__(self, x_t: jax.Array) -> tuple[jax.Array, jax.Array]:
        current = x_t @ self.w_in.value + self.s.value @ self.w_rec.value
        v = DECAY * self.v.value + current
        s = spike(v - THRESHOLD)
        self.v.value = v - THRESHOLD * jax.lax.stop_gradient(s)  # soft reset
        self.s.value = s
        self.r.value = READOUT_DECAY * self.r.value + s @ self.w_out.value
        return s, self.r.value


def cross_entropy(readout: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Loss and accuracy from the readout potentials over a trial, ``(time, batch, classes)``."""
    logits = readout.mean(axis=0)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, jnp.mean(jnp.argmax(logits, axis=-1) == labels)


# --- the task -----------------------------------------------------------------------------


def make_batch(rng: np.random.Generator, batch: int, steps: int) -> tuple[jax.Array, jax.Array]:
    """Input spikes ``(steps, batch, 2 * N_PER_GROUP)`` and labels: which group fires more.

    One group fires at a rate drawn from [0.04, 0.12] spikes per step, the other at 50% to 90%
    of it; the label is the group with the higher rate (0: group A, 1: group B).
    """
    high = rng.uniform(0.04, 0.12, (batch, 1))
    low = high * rng.uniform(0.5, 0.9, (batch, 1))
    labels = rng.integers(0, N_CLASSES, batch)
    rate_a = np.where(labels[:, None] == 0, high, low)
    rate_b = np.where(labels[:, None] == 0, low, high)
    rates = np.repeat(np.concatenate([rate_a, rate_b], axis=1), N_PER_GROUP, axis=1)
    spikes = rng.random((steps, batch, 2 * N_PER_GROUP)) < rates
    return jnp.asarray(spikes, jnp.float32), jnp.asarray(labels, jnp.int32)


# --- the same loss written out explicitly, for the gradient check -----------------------------


def explicit_loss(params: dict[str, jax.Array], xs: jax.Array, labels: jax.Array) -> jax.Array:
    """The network's loss as a pure function: ``jax.lax.scan`` over explicit state values."""

    def step(carry, x_t):
        v, s, r = carry
        v = DECAY * v + x_t @ params["w_in"] + s @ params["w_rec"]
        s = spike(v - THRESHOLD)
        v = v - THRESHOLD * jax.lax.stop_gradient(s)
        r = READOUT_DECAY * r + s @ params["w_out"]
        return (v, s, r), r

    batch = xs.shape[1]
    zeros = jnp.zeros((batch, params["w_in"].shape[1]))
    init = (zeros, zeros, jnp.zeros((batch, params["w_out"].shape[1])))
    _, readout = jax.lax.scan(step, init, xs)
    return cross_entropy(readout, labels)[0]


# --- training ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps only (for tests)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 400)")
    parser.add_argument("--out", type=Path, default=Path("snn_bptt.png"), help="figure path")
    args = parser.parse_args()
    begin = time.perf_counter()
    steps = args.steps or (5 if args.quick else 400)
    eval_steps = 200 if args.quick else 2000  # 40x a training trial in the full run

    net = LIFNetwork(2 * N_PER_GROUP, N_HIDDEN, N_CLASSES, seed=0)
    rng = np.random.default_rng(1)
    params = net.states(brainstate.ParamState)

    def loss_fn(xs: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
        net.reset(xs.shape[1])
        _, readout = brainstate.transform.for_loop(net, xs)  # writes v, s, r every step
        return cross_entropy(readout, labels)

    grad_fn = brainstate.transform.grad(
        loss_fn, grad_states=params, has_aux=True, return_value=True
    )

    # 1. The BPTT gradient, checked once against the explicit program.
    xs, labels = make_batch(rng, BATCH, TRIAL_STEPS)
    grads, _, _ = grad_fn(xs, labels)
    values = {path[0]: state.value for path, state in params.items()}
    expected = jax.jit(jax.grad(explicit_loss))(values, xs, labels)
    pairs = [(np.asarray(grads[(k,)]), np.asarray(g)) for k, g in expected.items()]
    diff = max(float(np.max(np.abs(a - b))) for a, b in pairs)
    scale = max(float(np.max(np.abs(b))) for _, b in pairs)
    if not all(np.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in pairs):
        raise SystemExit(f"BPTT gradient differs from the explicit lax.scan: max |diff| {diff}")
    print(
        "BPTT gradient through for_loop matches jax.grad of lax.scan "
        f"(max |diff| {diff:.1e}, largest entry {scale:.1e})"
    )

    # 2. Training: one compiled program per step (loss, BPTT gradient, Adam update).
    optimizer = optax.adam(optax.cosine_decay_schedule(2e-2, steps, alpha=0.1))
    opt_state = brainstate.State(optimizer.init(jax.tree.map(lambda s: s.value, params)))

    @brainstate.transform.jit
    def train_step(xs: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
        grads, loss, accuracy = grad_fn(xs, labels)
        updates, opt_state.value = optimizer.update(grads, opt_state.value)
        for path, state in params.items():
            state.value = state.value + updates[path]
        return loss, accuracy

    losses, accuracies = [], []
    start = time.perf_counter()
    with tqdm(range(steps), desc="training", unit="step") as bar:
        for _ in bar:
            loss, accuracy = train_step(*make_batch(rng, BATCH, TRIAL_STEPS))
            losses.append(float(loss))
            accuracies.append(float(accuracy))
            bar.set_postfix(loss=f"{losses[-1]:.3f}", acc=f"{accuracies[-1]:.2f}")
    train_time = time.perf_counter() - start
    tail = max(1, steps // 10)
    print(
        f"trained {steps} steps in {train_time:.1f} s: loss {np.mean(losses[-tail:]):.3f}, "
        f"accuracy {np.mean(accuracies[-tail:]):.3f} (mean of the last {tail})"
    )

    # 3. Evaluation: one long simulation, with a progress bar from inside the compiled loop.
    eval_batch = 256
    xs, labels = make_batch(rng, eval_batch, eval_steps)
    net.reset(eval_batch)

    def record(x_t: jax.Array) -> tuple[jax.Array, jax.Array]:
        s, r = net(x_t)
        return s[0], r  # the hidden spikes of trial 0, the readout of every trial

    bar = brainstate.transform.ProgressBar(count=20, desc="evaluation")
    start = time.perf_counter()
    raster, readout = brainstate.transform.for_loop(record, xs, pbar=bar)
    readout, labels = np.asarray(readout), np.asarray(labels)
    short_accuracy = np.mean(readout[:TRIAL_STEPS].mean(0).argmax(-1) == labels)
    long_accuracy = np.mean(readout.mean(0).argmax(-1) == labels)
    print(
        f"evaluated {eval_batch} new trials of {eval_steps} steps in "
        f"{time.perf_counter() - start:.1f} s: accuracy {float(short_accuracy):.3f} after "
        f"{TRIAL_STEPS} steps, {float(long_accuracy):.3f} after {eval_steps}"
    )
    rate = float(jnp.mean(raster)) * 1000.0
    print(f"mean hidden firing rate on trial 0: {rate:.1f} Hz (1 ms steps)")

    # 4. The figure: loss and accuracy curves; input, hidden spikes and readout of trial 0.
    fig, (ax_loss, ax_in, ax_hid, ax_out) = plt.subplots(
        4, 1, figsize=(8, 10), gridspec_kw={"height_ratios": [1.0, 0.6, 1.2, 0.6]}
    )
    ax_loss.plot(losses, label="loss")
    ax_loss.set_xlabel("training step")
    ax_loss.set_ylabel("cross-entropy")
    ax_acc = ax_loss.twinx()
    ax_acc.plot(accuracies, color="tab:orange", alpha=0.6)
    ax_acc.set_ylabel("batch accuracy", color="tab:orange")
    ax_loss.set_title("BPTT training of a LIF network through facade.transform.for_loop")
    shown = min(eval_steps, 4 * TRIAL_STEPS)
    t_in, i_in = np.nonzero(np.asarray(xs[:shown, 0]))
    ax_in.scatter(t_in, i_in, s=2, c=np.where(i_in < N_PER_GROUP, "tab:blue", "tab:red"))
    ax_in.set_ylabel("input neuron")
    group = "A (blue)" if labels[0] == 0 else "B (red)"
    ax_in.set_title(f"a new trial: group {group} fires more")
    t_hid, i_hid = np.nonzero(np.asarray(raster[:shown]))
    ax_hid.scatter(t_hid, i_hid, s=2, c="black")
    ax_hid.set_ylabel("hidden LIF neuron")
    ax_out.plot(readout[:shown, 0, 0], color="tab:blue", label="readout A")
    ax_out.plot(readout[:shown, 0, 1], color="tab:red", label="readout B")
    ax_out.set_ylabel("readout")
    ax_out.set_xlabel("time step (ms)")
    ax_out.legend(loc="upper right", fontsize="small")
    for ax in (ax_in, ax_hid, ax_out):
        ax.set_xlim(0, shown)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"Figure saved to {args.out.resolve()}")
    print(f"done in {time.perf_counter() - begin:.1f} s")


if __name__ == "__main__":
    main()
