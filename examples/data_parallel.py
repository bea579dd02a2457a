"""Train a small MLP data-parallel on 8 simulated CPU devices, with the facade and functional.

    python examples/data_parallel.py [--quick] [--devices N] [--model-parallel M]

JAX's sharding is the distributed engine, so neither layer needs special code: put the batch
on a device mesh split along ``"data"``, put the parameters on the same mesh (replicated, or
split along ``"model"`` with ``--model-parallel``), and the compiled training step runs as one
SPMD program on every device, XLA inserting the gradient all-reduce. The same script runs
unchanged on a real multi-device or multi-host machine (see ``docs/distributed.md``).

Three runs from the same initial weights and data, checked against each other:

* facade, data-parallel: a ``facade.nn.Module`` of ``ParamState``s holding sharded arrays;
  ``facade.transform.grad`` with ``grad_states`` inside a ``facade.transform.jit`` step that
  also updates a momentum ``State``. The States keep their sharding after every write-back.
* functional, data-parallel: the same step over an explicit parameter pytree, ``jax.jit`` of
  ``functional.grad``.
* functional on one device: the reference.

Simulated devices come from ``XLA_FLAGS=--xla_force_host_platform_device_count=8``, which this
script sets before importing JAX (an existing setting wins).
"""

from __future__ import annotations

import argparse
import os
import sys


def _simulate_devices(n: int) -> None:
    """Ask XLA for ``n`` CPU devices; must run before JAX initialises its backends."""
    if "jax" in sys.modules:
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps only (for CI)")
    parser.add_argument("--devices", type=int, default=8, help="simulated CPU devices")
    parser.add_argument(
        "--model-parallel",
        type=int,
        default=1,
        help="also split the hidden layer over this many devices (a 2-D mesh)",
    )
    return parser.parse_args()


ARGS = _parse_args() if __name__ == "__main__" else None
_simulate_devices(ARGS.devices if ARGS else 8)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import facade as brainstate  # noqa: E402
import functional as F  # noqa: E402

SIZES = (8, 64, 1)
LEARNING_RATE = 0.05
MOMENTUM = 0.9


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    x = rng.uniform(-1.0, 1.0, (n, SIZES[0])).astype(np.float32)
    y = (np.sin(2.0 * x[:, :1]) * np.cos(x[:, 1:2]) + 0.5 * x[:, 2:3]).astype(np.float32)
    return x, y


def init_params(seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.RandomState(seed)
    n_in, n_hidden, n_out = SIZES
    return {
        "w1": (rng.normal(size=(n_in, n_hidden)) / np.sqrt(n_in)).astype(np.float32),
        "b1": np.zeros(n_hidden, np.float32),
        "w2": (rng.normal(size=(n_hidden, n_out)) / np.sqrt(n_hidden)).astype(np.float32),
        "b2": np.zeros(n_out, np.float32),
    }


# How each parameter is laid out on the ("data", "model") mesh: replicated over "data" (every
# data-parallel replica holds the whole model), the hidden layer split over "model".
PARAM_SPECS = {"w1": P(None, "model"), "b1": P("model"), "w2": P("model", None), "b2": P()}
BATCH_SPEC = P("data", None)


def mlp(p: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    return jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def mse(p: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((mlp(p, x) - y) ** 2)


# --- facade ---------------------------------------------------------------------------------------


class MLP(brainstate.nn.Module):
    def __init__(self, params: dict[str, jax.Array]):
        super().__init__()
        self.w1, self.b1 = brainstate.ParamState(params["w1"]), brainstate.ParamState(params["b1"])
        self.w2, self.b2 = brainstate.ParamState(params["w2"]), brainstate.ParamState(params["b2"])

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.tanh(x @ self.w1.value + self.b1.value) @ self.w2.value + self.b2.value


def train_facade(params: dict[str, jax.Array], x: jax.Array, y: jax.Array, steps: int):
    model = MLP(params)
    weights = {name: getattr(model, name) for name in params}
    # Momentum buffers laid out like their parameters (zeros_like keeps the sharding).
    velocity = {k: brainstate.State(jnp.zeros_like(s.value)) for k, s in weights.items()}

    def loss(x: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.mean((model(x) - y) ** 2)

    grad_fn = brainstate.transform.grad(loss, grad_states=weights, return_value=True)

    @brainstate.transform.jit
    def step(x: jax.Array, y: jax.Array) -> jax.Array:
        grads, value = grad_fn(x, y)
        for k, w in weights.items():
            velocity[k].value = MOMENTUM * velocity[k].value + grads[k]
            w.value = w.value - LEARNING_RATE * velocity[k].value
        return value

    losses = [float(step(x, y)) for _ in range(steps)]
    return {k: s.value for k, s in weights.items()}, losses


# --- functional -----------------------------------------------------------------------------------


def train_functional(params: dict[str, jax.Array], x: jax.Array, y: jax.Array, steps: int):
    @jax.jit
    def step(p: dict, v: dict, x: jax.Array, y: jax.Array):
        grads, value = F.grad(mse, return_value=True)(p, x, y)
        v = jax.tree.map(lambda v, g: MOMENTUM * v + g, v, grads)
        p = jax.tree.map(lambda p, v: p - LEARNING_RATE * v, p, v)
        return p, v, value

    velocity = jax.tree.map(jnp.zeros_like, params)
    losses = []
    for _ in range(steps):
        params, velocity, value = step(params, velocity, x, y)
        losses.append(float(value))
    return params, losses


def main(args: argparse.Namespace) -> None:
    devices = jax.devices()
    model_par = args.model_parallel
    if len(devices) % model_par:
        raise SystemExit(f"--model-parallel {model_par} does not divide {len(devices)} devices")
    # Auto axes: XLA propagates the shardings through the computation (jax.make_mesh would make
    # them Explicit, where every ambiguous contraction needs an out_sharding).
    mesh = Mesh(np.array(devices).reshape(len(devices) // model_par, model_par), ("data", "model"))
    print(f"{len(devices)} devices, mesh {dict(mesh.shape)}")

    steps = 40 if args.quick else 400
    batch = 64 * mesh.shape["data"]
    x_np, y_np = make_data(batch)
    init_np = init_params()

    # Lay the data and the parameters out on the mesh: that is all the "distribution" there is.
    x = jax.device_put(x_np, NamedSharding(mesh, BATCH_SPEC))
    y = jax.device_put(y_np, NamedSharding(mesh, BATCH_SPEC))
    sharded = {
        k: jax.device_put(v, NamedSharding(mesh, PARAM_SPECS[k])) for k, v in init_np.items()
    }
    print(f"batch {x.shape}, each device holds {x.addressable_shards[0].data.shape}")
    w1 = sharded["w1"]
    print(f"w1 {w1.shape}, each device holds {w1.addressable_shards[0].data.shape}")

    facade_params, facade_losses = train_facade(sharded, x, y, steps)
    functional_params, functional_losses = train_functional(sharded, x, y, steps)
    one = jax.devices()[0]
    single_params, single_losses = train_functional(
        jax.device_put(init_np, one), jax.device_put(x_np, one), jax.device_put(y_np, one), steps
    )

    for i in sorted({0, steps // 4, steps // 2, steps - 1}):
        print(
            f"step {i:4d}  facade {facade_losses[i]:.6f}  functional {functional_losses[i]:.6f}"
            f"  one device {single_losses[i]:.6f}"
        )
    np.testing.assert_allclose(facade_losses, single_losses, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(functional_losses, single_losses, rtol=1e-4, atol=1e-6)
    for k, spec in PARAM_SPECS.items():
        for trained in (facade_params[k], functional_params[k]):
            np.testing.assert_allclose(trained, single_params[k], rtol=1e-3, atol=1e-5)
            # The trained parameters (the facade's States included) kept their layout.
            assert trained.sharding.is_equivalent_to(NamedSharding(mesh, spec), trained.ndim), (
                k,
                trained.sharding,
            )
    assert facade_losses[-1] < 0.5 * facade_losses[0], "the model did not learn"
    print("data-parallel training matches one device; parameters kept their sharding")


if __name__ == "__main__":
    main(ARGS)
