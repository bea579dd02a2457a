"""A batch of neuron simulations: a vmapped ``for_loop`` over input currents, one State per run.

    python examples/batched_simulations.py [--quick] [--out PATH]

A leaky integrate-and-fire neuron (membrane potential ``v`` a HiddenState, a spike counter, and
noisy input) is simulated for many input currents at once. ``nn.vmap_init_all_states`` gives
each simulation its own (random) initial potential; ``vmap`` maps the whole ``for_loop``
simulation over the currents, with the neuron's States batched (``in_states``/``out_states``),
and every simulation draws its own noise from ``facade.random``. The result is checked against
the explicit ``jax.vmap(jax.lax.scan)`` over the same values and keys, and a figure (voltage
traces and the rate-current curve against the noise-free theory) is saved to a PNG.
"""

import argparse
import os

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

import facade as brainstate

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DT = 0.1  # ms
TAU = 10.0  # ms
V_TH, V_RESET = 1.0, 0.0
SIGMA = 0.2  # noise on the input


class LIF(brainstate.nn.Module):
    """One leaky integrate-and-fire neuron; its States are made by ``init_state``."""

    def init_state(self, *args, **kwargs):
        self.v = brainstate.HiddenState(brainstate.random.uniform(V_RESET, V_TH, size=()))
        self.spikes = brainstate.ShortTermState(jnp.zeros((), jnp.int32))

    def update(self, current):
        noise = SIGMA * jnp.sqrt(TAU / DT) * brainstate.random.normal(size=())
        v = self.v.value + DT / TAU * (current - self.v.value + noise)
        fired = v >= V_TH
        self.v.value = jnp.where(fired, V_RESET, v)
        self.spikes.value = self.spikes.value + fired
        return v


def explicit(v0, currents, keys, steps):
    """The same simulations as a raw JAX program: ``jax.vmap`` of a ``lax.scan``."""

    def simulate(v, current, key):
        def step(carry, _):
            v, spikes, key = carry
            key, sub = jax.random.split(key)  # what a draw from a RandomState does
            noise = SIGMA * jnp.sqrt(TAU / DT) * jax.random.normal(sub, ())
            v_new = v + DT / TAU * (current - v + noise)
            fired = v_new >= V_TH
            return (jnp.where(fired, V_RESET, v_new), spikes + fired, key), v_new

        (v, spikes, _), trace = jax.lax.scan(step, (v, jnp.zeros((), jnp.int32), key), None, steps)
        return trace, v, spikes

    return jax.jit(jax.vmap(simulate))(v0, currents, keys)


def theory_rate(current):
    """Firing rate (Hz) of the noise-free LIF neuron for a constant current."""
    current = np.asarray(current)
    safe = np.maximum(current, V_TH + 1e-9)
    period = TAU * np.log((safe - V_RESET) / (safe - V_TH))  # ms
    return np.where(current > V_TH, 1000.0 / period, 0.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs (for tests)")
    parser.add_argument("--out", default="batched_simulations.png", help="where to save the figure")
    args = parser.parse_args()
    runs, steps = (16, 400) if args.quick else (64, 5000)
    currents = jnp.linspace(0.5, 3.0, runs)

    brainstate.random.seed(0)
    neuron = brainstate.nn.vmap_init_all_states(LIF(), axis_size=runs)
    states = neuron.states()  # v and spikes, each with a leading axis of `runs`
    v0 = neuron.v.value
    key = brainstate.random.DEFAULT.value
    print(f"{runs} simulations of {steps} steps; initial potentials {v0.shape}")

    @brainstate.transform.jit
    @brainstate.transform.vmap(in_states=states, out_states=states)
    def simulate(current):
        return brainstate.transform.for_loop(lambda t: neuron(current), jnp.arange(steps))

    traces = simulate(currents)  # (runs, steps)

    # The explicit program: each simulation's key is one of split(key, runs + 1)[1:].
    lane_keys = jax.random.split(key, runs + 1)[1:]
    raw_traces, raw_v, raw_spikes = explicit(v0, currents, lane_keys, steps)
    np.testing.assert_allclose(traces, raw_traces, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(neuron.v.value, raw_v, rtol=1e-5, atol=1e-5)
    assert (neuron.spikes.value == raw_spikes).all()
    print("the vmapped for_loop matches the explicit jax.vmap(jax.lax.scan)")

    rates = neuron.spikes.value / (steps * DT / 1000.0)
    print(f"firing rates from {float(rates.min()):.0f} to {float(rates.max()):.0f} Hz")

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    shown = min(steps, int(100 / DT))  # the first 100 ms
    t = np.arange(shown) * DT
    for row, i in enumerate(np.linspace(0, runs - 1, 4).astype(int)):
        trace = np.asarray(traces[i, :shown]) + 1.5 * row  # one trace above the other
        left.plot(t, trace, lw=0.8, label=f"I = {float(currents[i]):.2f}")
    left.set(xlabel="time (ms)", ylabel="v (offset per run)", title="Membrane potential")
    left.legend(loc="upper right", fontsize=8)
    fine = np.linspace(0.5, 3.0, 200)
    right.plot(fine, theory_rate(fine), color="0.4", label="noise-free theory")
    right.scatter(currents, rates, s=14, color="C3", zorder=3, label="simulations (noisy)")
    right.set(xlabel="input current I", ylabel="rate (Hz)", title="Rate-current curve")
    right.legend()
    fig.suptitle(f"{runs} LIF simulations in one vmapped for_loop")
    fig.tight_layout()
    out = os.path.abspath(args.out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"Figure saved to {out}")


if __name__ == "__main__":
    main()
