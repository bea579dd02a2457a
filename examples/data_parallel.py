"""Train a small MLP data-parallel on 8 simulated CPU devices, with the facade and functional.

    python examples/data_parallel.py [--quick] [--devices N] [--model-parallel M] [--processes P]

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

With ``--processes P`` the script starts P copies of itself on this machine, each with
``N / P`` of the devices, joined by ``jax.distributed.initialize`` over 127.0.0.1: one global
mesh spanning processes, as on a cluster of P hosts. Each process loads only its own rows of
the batch (``jax.make_array_from_process_local_data``); the training code is unchanged.
Process 0 prints; a process that fails or hangs ends the others.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time


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
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="run as this many processes joined by jax.distributed (the devices split evenly)",
    )
    # Set by the launcher for the processes it starts.
    parser.add_argument("--process-id", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--coordinator", default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def _launch(args: argparse.Namespace, timeout: float = 600.0) -> int:
    """Start ``args.processes`` copies of this script on 127.0.0.1 and wait for all of them.

    If one fails, or they are not done within ``timeout`` seconds, the others are killed: a
    process whose partner is gone would wait forever in its next collective.
    """
    n = args.processes
    if args.devices % n:
        raise SystemExit(f"--processes {n} does not divide --devices {args.devices}")
    with socket.socket() as s:  # a free port for the coordinator (process 0)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flags = os.environ.get("XLA_FLAGS", "").split()
    flags = [f for f in flags if "xla_force_host_platform_device_count" not in f]
    flags.append(f"--xla_force_host_platform_device_count={args.devices // n}")
    env = dict(os.environ, XLA_FLAGS=" ".join(flags), JAX_PLATFORMS="cpu")
    options = [f"--devices={args.devices}", f"--model-parallel={args.model_parallel}"]
    options += ["--quick"] if args.quick else []
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                *options,
                f"--processes={n}",
                f"--process-id={i}",
                f"--coordinator=127.0.0.1:{port}",
            ],
            env=env,
            # Process 0 prints to this terminal; the others only on failure.
            stdout=None if i == 0 else subprocess.PIPE,
            stderr=None if i == 0 else subprocess.STDOUT,
        )
        for i in range(n)
    ]
    deadline = time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in procs):
            if any(p.returncode for p in procs) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    codes = [p.returncode for p in procs]
    if any(codes):
        for i, p in enumerate(procs[1:], 1):
            if p.returncode and p.stdout is not None:
                sys.stdout.write(f"--- process {i}:\n{p.stdout.read().decode()[-3000:]}")
        print(f"the processes exited with {codes}", file=sys.stderr)
        return 1
    return 0


ARGS = _parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.processes > 1 and ARGS.process_id is None:
    sys.exit(_launch(ARGS))  # the launcher itself never starts JAX
_simulate_devices(ARGS.devices // ARGS.processes if ARGS else 8)

import jax  # noqa: E402

if ARGS is not None and ARGS.coordinator is not None:
    # One of several processes: join the others before anything starts JAX's backend, which
    # importing facade does (docs/distributed.md).
    jax.distributed.initialize(ARGS.coordinator, ARGS.processes, ARGS.process_id)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
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


def on_host(x: jax.Array) -> np.ndarray:
    """The whole value on this host: gathered from the other processes if some of its shards
    live only there (every process must call this alike: it is a collective)."""
    if x.is_fully_addressable or x.is_fully_replicated:
        return np.asarray(x)
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def main(args: argparse.Namespace) -> None:
    # Only process 0 prints (every process runs the same code, collectives included).
    say = print if jax.process_index() == 0 else (lambda *a, **k: None)
    # The global devices, process by process: rows of the mesh then never straddle two
    # processes, so each process's rows of the batch are its own ("data" spans processes).
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    model_par = args.model_parallel
    if jax.local_device_count() % model_par:
        raise SystemExit(
            f"--model-parallel {model_par} does not divide {jax.local_device_count()} devices"
        )
    # Auto axes: XLA propagates the shardings through the computation (jax.make_mesh would make
    # them Explicit, where every ambiguous contraction needs an out_sharding).
    mesh = Mesh(np.array(devices).reshape(len(devices) // model_par, model_par), ("data", "model"))
    say(f"{jax.process_count()} process(es), {len(devices)} devices, mesh {dict(mesh.shape)}")

    steps = 40 if args.quick else 400
    batch = 64 * mesh.shape["data"]
    x_np, y_np = make_data(batch)
    init_np = init_params()

    # Lay the data and the parameters out on the mesh: that is all the "distribution" there is.
    # Each process passes only its own rows of the batch (here cut from the whole batch, which
    # every process can make; a real loader reads just these rows).
    rows = batch // jax.process_count()
    mine = slice(jax.process_index() * rows, (jax.process_index() + 1) * rows)
    by_rows = NamedSharding(mesh, BATCH_SPEC)
    x = jax.make_array_from_process_local_data(by_rows, x_np[mine])
    y = jax.make_array_from_process_local_data(by_rows, y_np[mine])
    # The parameters are the same numbers in every process (the same seed): each process puts
    # its shards of them on its devices.
    sharded = {
        k: jax.device_put(v, NamedSharding(mesh, PARAM_SPECS[k])) for k, v in init_np.items()
    }
    say(f"batch {x.shape}, each device holds {x.addressable_shards[0].data.shape}")
    w1 = sharded["w1"]
    say(f"w1 {w1.shape}, each device holds {w1.addressable_shards[0].data.shape}")

    facade_params, facade_losses = train_facade(sharded, x, y, steps)
    functional_params, functional_losses = train_functional(sharded, x, y, steps)
    one = jax.local_devices()[0]  # the reference: the whole batch on one device of this process
    single_params, single_losses = train_functional(
        jax.device_put(init_np, one), jax.device_put(x_np, one), jax.device_put(y_np, one), steps
    )

    for i in sorted({0, steps // 4, steps // 2, steps - 1}):
        say(
            f"step {i:4d}  facade {facade_losses[i]:.6f}  functional {functional_losses[i]:.6f}"
            f"  one device {single_losses[i]:.6f}"
        )
    np.testing.assert_allclose(facade_losses, single_losses, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(functional_losses, single_losses, rtol=1e-4, atol=1e-6)
    for k, spec in PARAM_SPECS.items():
        for trained in (facade_params[k], functional_params[k]):
            np.testing.assert_allclose(on_host(trained), single_params[k], rtol=1e-3, atol=1e-5)
            # The trained parameters (the facade's States included) kept their layout.
            assert trained.sharding.is_equivalent_to(NamedSharding(mesh, spec), trained.ndim), (
                k,
                trained.sharding,
            )
    assert facade_losses[-1] < 0.5 * facade_losses[0], "the model did not learn"
    say("data-parallel training matches one device; parameters kept their sharding")


if __name__ == "__main__":
    main(ARGS)
