"""Two processes, one 4-device mesh: data-parallel training with jax.distributed on 127.0.0.1.

``python _multiprocess_worker.py launch`` (what ``_workers.py`` starts for
``test_multiprocess.py``) picks a free port and starts ``run <i> 2 <port>`` twice, each process
with 2 simulated CPU devices (``--xla_force_host_platform_device_count=2`` added to the
inherited ``XLA_FLAGS``). Each runs ``jax.distributed.initialize`` and every check below on the
global mesh and prints ``REPORT {json}``; the launcher waits for both within ``DEADLINE``
seconds, kills and reaps both as soon as one fails or the deadline passes (a process left alone
would wait forever in a collective), and prints ``REPORT {"processes": [report 0, report 1]}``.

The test compares the two reports with each other and with a single-process, single-device
run of the same problem in raw JAX (:func:`reference`), which is why the problem (data, model,
optimizer) is defined here at module level, importable without starting JAX's backends.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

# facade and functional are imported inside the checks, never here: importing facade starts
# JAX's backend, after which jax.distributed.initialize() refuses to run (see the xfail test).

HERE = os.path.abspath(__file__)
N_PROCESSES, LOCAL_DEVICES = 2, 2
DEADLINE = 240.0  # seconds for both processes, start-up included (about 40 s on 2 busy cores)
SEED = 42  # facade.random.seed(SEED) before building the model, in every process
SIZES = (6, 8, 2)  # in, hidden, out: the hidden layer is what the model axis splits
GLOBAL_BATCH = 16
STEPS = 4
LR, MOMENTUM = 0.1, 0.9


# --- the problem, shared by the workers and the test's reference ------------------------


def global_batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(7)
    x = rng.uniform(-1.0, 1.0, (GLOBAL_BATCH, SIZES[0])).astype(np.float32)
    y = np.stack([np.sin(2 * x[:, 0]), x[:, 1] * x[:, 2]], axis=1).astype(np.float32)
    return x, y


def build_model(facade: Any) -> Any:
    """The model, its parameters drawn from facade's default random stream."""

    return facade.nn.Sequential(
        facade.nn.Linear(SIZES[0], SIZES[1]), jnp.tanh, facade.nn.Linear(SIZES[1], SIZES[2])
    )


def mlp(params: dict[str, Any], x: Any) -> Any:

    h = jnp.tanh(x @ params["l0"]["weight"] + params["l0"]["bias"])
    return h @ params["l2"]["weight"] + params["l2"]["bias"]


def mse(params: dict[str, Any], x: Any, y: Any) -> Any:

    return jnp.mean((mlp(params, x) - y) ** 2)


def optimizer() -> Any:

    return optax.sgd(LR, momentum=MOMENTUM)


def reference(init: dict[str, Any], momentum: bool = True) -> tuple[dict[str, Any], list[float]]:
    """Raw JAX on one device: ``STEPS`` steps of ``jax.jit`` of grad + optax SGD (with
    momentum, or plain) on the whole batch."""

    tx = optimizer() if momentum else optax.sgd(LR)
    x, y = global_batch()

    @jax.jit
    def step(p: Any, s: Any) -> Any:
        value, g = jax.value_and_grad(mse)(p, x, y)
        updates, s = tx.update(g, s, p)
        return optax.apply_updates(p, updates), s, value

    params = jax.tree.map(np.asarray, init)
    state = tx.init(params)
    losses = []
    for _ in range(STEPS):
        params, state, value = step(params, state)
        losses.append(float(value))
    return jax.tree.map(np.asarray, params), losses


def model_params(model: Any) -> dict[str, Any]:
    """The Sequential's parameter values as ``{"l0": {...}, "l2": {...}}`` (layer 1 is tanh)."""
    return {f"l{i}": model.layers[i].weight.value for i in (0, 2)}


# --- the launcher --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_env() -> dict[str, str]:
    """The inherited environment (the suite's XLA_FLAGS kept) with 2 CPU devices per process."""
    flags = os.environ.get("XLA_FLAGS", "")
    flags = " ".join(f for f in flags.split() if "xla_force_host_platform_device_count" not in f)
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={LOCAL_DEVICES}".strip()
    return env


IMPORT_FIRST = "import facade, jax; jax.distributed.initialize('127.0.0.1:{port}', 1, 0)"


def _report_line(path: str) -> str | None:
    with open(path) as f:
        return next((x for x in f.read().splitlines() if x.startswith("REPORT ")), None)


def launch(checks: list[str] | tuple[str, ...] = (), deadline: float = DEADLINE) -> dict[str, Any]:
    """Run the workers (all checks, or ``checks``); return their reports, or raise
    RuntimeError with the end of their output.

    A process is done when it has printed its report (it may then wait in
    ``jax.distributed.shutdown`` for a process a watchdog ended) or has exited. As soon as one
    exits without a report, or at the deadline, every process is killed and reaped: one left
    alone would wait forever in its next collective.
    """
    port = free_port()
    folder = tempfile.mkdtemp(prefix="stategrad-multiprocess-")
    # Beside the workers (it costs seconds only): does `import facade` before
    # jax.distributed.initialize() work? One process, its own port.
    probe_out = os.path.join(folder, "probe.err")
    with open(probe_out, "wb") as err:
        probe = subprocess.Popen(
            [sys.executable, "-c", IMPORT_FIRST.format(port=free_port())],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=worker_env(),
        )
    outs = [os.path.join(folder, f"{i}.out") for i in range(N_PROCESSES)]
    errs = [os.path.join(folder, f"{i}.err") for i in range(N_PROCESSES)]
    procs: list[subprocess.Popen[bytes]] = []
    lines: list[str | None] = [None] * N_PROCESSES
    failed = None
    started = time.monotonic()
    try:
        for i in range(N_PROCESSES):
            command = [sys.executable, HERE, "run", str(i), str(N_PROCESSES), str(port), *checks]
            with open(outs[i], "wb") as out, open(errs[i], "wb") as err:
                procs.append(subprocess.Popen(command, stdout=out, stderr=err, env=worker_env()))
        while True:
            for i, p in enumerate(procs):
                exited = p.poll() is not None
                lines[i] = lines[i] or _report_line(outs[i])
                if exited and lines[i] is None:
                    failed = f"process {i} exited ({p.returncode}) without a report"
            if failed or all(lines):
                break
            if time.monotonic() - started > deadline:
                failed = f"the processes did not finish within {deadline:.0f} s"
                break
            time.sleep(0.05)
        if not failed:
            probe.wait(timeout=max(1.0, deadline - (time.monotonic() - started)))
    finally:
        for p in [*procs, probe]:  # on any outcome, an exception here included: none is left
            if p.poll() is None:
                p.kill()
            p.wait()
    wall = time.monotonic() - started
    if failed:
        logs = []
        for i, p in enumerate(procs):
            with open(errs[i], errors="replace") as f:
                logs.append(f"--- process {i} (exit {p.returncode}) stderr:\n{f.read()[-3000:]}")
        raise RuntimeError(f"{failed}, after {wall:.1f} s\n" + "\n".join(logs))
    reports = [json.loads(line[len("REPORT ") :]) for line in lines if line]
    with open(probe_out, errors="replace") as f:
        import_first = {"returncode": probe.returncode, "stderr": f.read()[-2000:]}
    return {
        "processes": reports,
        "import_first": import_first,
        "wall_s": round(wall, 2),
        "port": port,
    }


# --- the worker: runs in each process, after jax.distributed.initialize --------------------

CHECKS: dict[str, Callable[[], Any]] = {}


def check(fn: Callable[[], Any]) -> Callable[[], Any]:
    CHECKS[fn.__name__] = fn
    return fn


# Each parameter's layout in the "split" case: the hidden layer split over "model" (which lies
# within a process), everything replicated over "data" (which spans the processes).
SPLIT_SPECS = {
    "l0": {"weight": (None, "model"), "bias": ("model",)},
    "l2": {"weight": ("model", None), "bias": ()},
}
LAYOUTS = {"replicated": 1, "split": 2}  # layout -> size of the "model" axis


def mesh(layout: str) -> Any:
    """The global mesh: ``("data", "model")``, the processes along "data" (one row each when
    the model axis is 2), ordered by process so that process i holds rows i of the batch."""

    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    model = LAYOUTS[layout]
    return Mesh(np.array(devices).reshape(len(devices) // model, model), ("data", "model"))


def param_shardings(layout: str) -> dict[str, Any]:

    m = mesh(layout)
    if layout == "replicated":
        return {k: {n: NamedSharding(m, P()) for n in v} for k, v in SPLIT_SPECS.items()}
    return {k: {n: NamedSharding(m, P(*s)) for n, s in v.items()} for k, v in SPLIT_SPECS.items()}


def to_global(host: np.ndarray, sharding: Any) -> Any:
    """A global array from a value every process holds in full (each keeps its own shards)."""

    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def local_batch(layout: str) -> tuple[Any, Any]:
    """The global batch, split over "data", built from this process's rows only."""

    x, y = global_batch()
    rows = GLOBAL_BATCH // jax.process_count()
    mine = slice(jax.process_index() * rows, (jax.process_index() + 1) * rows)
    sharding = NamedSharding(mesh(layout), P("data", None))
    return (
        jax.make_array_from_process_local_data(sharding, x[mine]),
        jax.make_array_from_process_local_data(sharding, y[mine]),
    )


def gathered(tree: Any) -> Any:
    """Every leaf in full on this host, as nested lists (for the JSON report)."""

    return jax.tree.map(
        lambda a: np.asarray(multihost_utils.process_allgather(a, tiled=True)).tolist(), tree
    )


def sharding_errors(values: Any, want: Any, what: str) -> list[str]:
    """The arrays of ``values`` not laid out like their sharding in ``want`` (same tree)."""

    errors = []
    flat_want = jax.tree.leaves(want)
    for (path, value), w in zip(
        jax.tree_util.tree_leaves_with_path(values), flat_want, strict=True
    ):
        if not value.sharding.is_equivalent_to(w, value.ndim):
            errors.append(f"{what}{jax.tree_util.keystr(path)}: {value.sharding} is not {w}")
    return errors


def values_by_layer(params: Any) -> dict[str, Any]:
    """``model.states(ParamState)`` (paths ``('layers', i, 'weight')``), or a tree of the same
    paths (the optimizer's momentum), as ``{"l<i>": value}``."""
    return {f"l{path[1]}": getattr(s, "value", s) for path, s in params.items()}


def seeded_model() -> tuple[Any, dict[str, np.ndarray]]:
    """The model built after ``facade.random.seed(SEED)``, and its initial values (on host)."""
    import facade

    facade.random.seed(SEED)
    model = build_model(facade)
    return model, jax.tree.map(np.asarray, model_params(model))


def place(model: Any, layout: str) -> None:
    """Put the model's parameters on the mesh: a new global value for each ParamState."""
    shardings = param_shardings(layout)
    for i in (0, 2):
        state = model.layers[i].weight
        state.value = {
            k: to_global(np.asarray(v), shardings[f"l{i}"][k]) for k, v in state.value.items()
        }


def train_facade(layout: str) -> dict[str, Any]:
    """``transform.grad`` inside a ``transform.jit`` step with ``OptaxOptimizer``."""
    import facade

    model, init = seeded_model()
    place(model, layout)
    x, y = local_batch(layout)
    params = model.states(facade.ParamState)
    opt = facade.optim.OptaxOptimizer(optimizer()).register_trainable_weights(params)
    want = param_shardings(layout)

    def loss(x: Any, y: Any) -> Any:
        return jnp.mean((model(x) - y) ** 2)

    @facade.transform.jit
    def step(x: Any, y: Any) -> Any:
        grads, value = facade.transform.grad(loss, params, return_value=True)(x, y)
        opt.update(grads)
        return value

    losses, errors = [], []
    for i in range(STEPS):
        losses.append(float(step(x, y)))  # the loss is replicated: readable on every host
        # Every State written back keeps its global layout: the parameters, and the
        # optimizer's momentum (an OptimState laid out like them).
        errors += sharding_errors(values_by_layer(params), want, f"step {i}: param ")
        trace = opt.opt_state.value[0].trace
        errors += sharding_errors(values_by_layer(trace), want, f"step {i}: momentum ")
    assert not errors, "\n".join(errors)
    final = values_by_layer(params)
    return {
        "init": jax.tree.map(np.ndarray.tolist, init),
        "final": gathered(final),
        "losses": losses,
    }


def train_functional(layout: str) -> dict[str, Any]:
    """The same with explicit parameters: ``jax.jit`` of ``functional.grad`` + optax."""
    import functional as F

    _, init = seeded_model()
    shardings = param_shardings(layout)
    params = jax.tree.map(to_global, init, shardings)
    x, y = local_batch(layout)
    tx = optimizer()

    @jax.jit
    def step(p: Any, s: Any, x: Any, y: Any) -> Any:
        grads, value = F.grad(mse, return_value=True)(p, x, y)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value

    state = tx.init(params)
    losses, errors = [], []
    for i in range(STEPS):
        params, state, value = step(params, state, x, y)
        losses.append(float(value))
        errors += sharding_errors(params, shardings, f"step {i}: ")
    assert not errors, "\n".join(errors)
    return {
        "init": jax.tree.map(np.ndarray.tolist, init),
        "final": gathered(params),
        "losses": losses,
    }


@check
def setup() -> dict[str, Any]:

    x, _ = local_batch("split")
    return {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "devices": jax.device_count(),
        "local_devices": jax.local_device_count(),
        "batch_fully_addressable": x.is_fully_addressable,
        "local_rows": sorted(int(s.index[0].start or 0) for s in x.addressable_shards),
    }


@check
def random_stream() -> dict[str, Any]:
    """Without a seed each process draws its own parameters (facade.random seeds itself from
    the OS); ``facade.random.seed(SEED)`` first gives every process the same ones."""
    import facade

    unseeded = build_model(facade)
    _, seeded = seeded_model()
    return {
        "unseeded": jax.tree.map(
            np.ndarray.tolist, jax.tree.map(np.asarray, model_params(unseeded))
        ),
        "seeded": jax.tree.map(np.ndarray.tolist, seeded),
    }


@check
def facade_replicated() -> dict[str, Any]:
    return train_facade("replicated")


@check
def facade_split() -> dict[str, Any]:
    return train_facade("split")


@check
def functional_replicated() -> dict[str, Any]:
    return train_functional("replicated")


@check
def functional_split() -> dict[str, Any]:
    return train_functional("split")


# --- the edges: eager calls, reading values, debug_nan, the progress bar -------------------


def sgd_model(layout: str) -> tuple[Any, Any, Any, Any]:
    """The seeded model placed on the mesh, its ParamStates, the batch and the loss."""
    import facade

    model, _ = seeded_model()
    place(model, layout)

    def loss(x: Any, y: Any) -> Any:
        return jnp.mean((model(x) - y) ** 2)

    return model, model.states(facade.ParamState), local_batch(layout), loss


def sgd_update(params: Any, grads: Any) -> None:
    """Plain SGD, written eagerly on the global arrays."""

    for path, s in params.items():
        s.value = jax.tree.map(lambda p, g: p - LR * g, s.value, grads[path])


@check
def eager_grad() -> dict[str, Any]:
    """An eager ``transform.grad`` and eager updates on arrays no process holds in full."""
    import facade

    _, params, (x, y), loss = sgd_model("split")
    assert not x.is_fully_addressable
    grad_fn = facade.transform.grad(loss, params)
    for _ in range(STEPS):
        sgd_update(params, grad_fn(x, y))
    errors = sharding_errors(values_by_layer(params), param_shardings("split"), "eager: ")
    assert not errors, "\n".join(errors)
    return {"final": gathered(values_by_layer(params))}


@check
def eager_for_loop_progress_bar() -> dict[str, Any]:
    """An eager ``for_loop`` of SGD steps with a ``ProgressBar``: the loop is one SPMD program;
    which processes run the bar's host callback, and how often, is what is reported."""
    import facade

    _, params, (x, y), loss = sgd_model("split")
    grad_fn = facade.transform.grad(loss, params)
    text = io.StringIO()
    bar = facade.transform.ProgressBar(freq=1, file=text, mininterval=0, ascii=True)
    updates: list[int] = []
    original = bar._update

    def counted(run: int, total: int, i: Any, carry: Any, y: Any) -> None:
        updates.append(int(i))
        original(run, total, i, carry, y)

    bar._update = counted  # type: ignore[method-assign]

    def body(i: Any) -> None:
        sgd_update(params, grad_fn(x, y))

    facade.transform.for_loop(body, jnp.arange(STEPS), pbar=bar)
    jax.effects_barrier()  # host callbacks run asynchronously: wait for the last update
    errors = sharding_errors(values_by_layer(params), param_shardings("split"), "for_loop: ")
    assert not errors, "\n".join(errors)
    return {
        "final": gathered(values_by_layer(params)),
        "updates": sorted(updates),
        "bar": text.getvalue().replace("\r", "\n").strip().splitlines()[-1:],
    }


def outcome(fn: Callable[[], Any]) -> dict[str, Any]:
    try:
        value = fn()
    except Exception as err:
        return {"ok": False, "error": f"{type(err).__name__}: {err}"[:600]}
    return {"ok": True, "value": value}


@check
def reading_values() -> dict[str, Any]:
    """What reading a State's value on the host does when the value spans processes."""
    import facade

    model, params, (x, y), loss = sgd_model("split")
    weight = model.layers[0].weight  # split over "model" (within a process), replicated over
    head = model.layers[2].weight  # "data" (across processes); the bias of layer 2 replicated
    batch = facade.State(x, name="batch")  # split over "data": each process holds half
    return {
        "batch_asarray": outcome(lambda: np.asarray(batch.value).shape),
        "batch_repr": outcome(lambda: repr(batch)),
        "batch_allgather_shape": np.shape(gathered(batch.value)),
        "replicated_asarray": outcome(lambda: np.asarray(head.value["bias"]).tolist()),
        "split_asarray": outcome(lambda: np.asarray(weight.value["bias"]).tolist()),
        "split_repr": outcome(lambda: repr(weight)),
        "module_repr": outcome(lambda: repr(model)),
        "split_allgather": outcome(lambda: gathered(weight.value["bias"])),
        "split_fully_addressable": weight.value["bias"].is_fully_addressable,
        "loss_float": outcome(lambda: float(jax.jit(loss)(x, y))),
    }


def nan_batch() -> Any:
    """The batch with one NaN, in the last process's rows only: every gradient, all-reduced
    over "data", is NaN in every process, but only that process holds the NaN itself."""

    bad = np.array(global_batch()[0])
    bad[GLOBAL_BATCH - 1, 0] = np.nan
    rows = GLOBAL_BATCH // jax.process_count()
    mine = slice(jax.process_index() * rows, (jax.process_index() + 1) * rows)
    return jax.make_array_from_process_local_data(
        NamedSharding(mesh("split"), P("data", None)), bad[mine]
    )


def all_finite(params: Any) -> bool:

    return all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(values_by_layer(params)))


@check
def debug_nan_finite() -> dict[str, Any]:
    """``grad(..., debug_nan=True)`` with finite gradients, eagerly and under ``jit``."""
    import facade

    _, params, (x, y), loss = sgd_model("split")
    grad_fn = facade.transform.grad(loss, params, debug_nan=True)
    eager = outcome(lambda: sorted(str(k) for k in grad_fn(x, y)))
    jitted = outcome(
        lambda: sorted(str(k) for k in jax.block_until_ready(facade.transform.jit(grad_fn)(x, y)))
    )
    return {"eager": eager, "jit": jitted}


@check
def debug_nan_jit() -> dict[str, Any]:
    """NaN gradients under ``transform.jit``: the in-program check is a host callback."""
    import facade

    _, params, (_, y), loss = sgd_model("split")
    grad_fn = facade.transform.grad(loss, params, debug_nan=True)
    step = facade.transform.jit(lambda a, b: grad_fn(a, b))
    result = outcome(lambda: jax.block_until_ready(step(nan_batch(), y)) and None)
    return {"call": result, "states_finite": all_finite(params)}


@check
def debug_nan_eager() -> dict[str, Any]:
    """NaN gradients in an eager call: the facade re-runs the call under ``jax.debug_nans`` to
    name the operation. Runs last, under a watchdog (``WATCHDOG``): a process that waits for
    the others in a collective reports it and exits."""
    import facade

    _, params, (_, y), loss = sgd_model("split")
    grad_fn = facade.transform.grad(loss, params, debug_nan=True)
    result = outcome(lambda: grad_fn(nan_batch(), y) and None)
    return {"call": result, "states_finite": all_finite(params)}


# Checks that may leave a process waiting forever in a collective (another process raised and
# left it): after this many seconds the process reports the check as hung and exits.
WATCHDOG = {"debug_nan_eager": 8.0}


def main_run(process_id: int, num_processes: int, port: int, only: list[str]) -> dict[str, Any]:

    # Before any other JAX call: every process joins the coordinator on process 0's port.
    jax.distributed.initialize(
        f"127.0.0.1:{port}",
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=60,
    )
    report: dict[str, Any] = {}

    def emit() -> None:
        print("REPORT " + json.dumps(report), flush=True)

    for name, fn in CHECKS.items():
        if only and name not in only:
            continue
        # Where a process died, if it does: the launcher shows the end of stderr.
        print(f"check {name}: start", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        watchdog = None
        if name in WATCHDOG:

            def hung(name: str = name, budget: float = WATCHDOG[name]) -> None:
                report[name] = {
                    "ok": False,
                    "value": "hung",
                    "detail": f"{name} did not return within {budget:.0f} s",
                    "seconds": budget,
                }
                emit()
                os._exit(0)  # the main thread is stuck in a collective: no clean shutdown

            watchdog = threading.Timer(WATCHDOG[name], hung)
            watchdog.daemon = True
            watchdog.start()
        try:
            report[name] = {"ok": True, "value": fn(), "detail": ""}
        except Exception:
            report[name] = {"ok": False, "value": None, "detail": traceback.format_exc()[-3000:]}
        if watchdog is not None:
            watchdog.cancel()
        report[name]["seconds"] = round(time.perf_counter() - t0, 2)
    # Reported before the shutdown: the launcher takes a report as the end of a process (the
    # shutdown waits for the other processes, which a watchdog may have ended).
    emit()
    jax.distributed.shutdown()
    return report


if __name__ == "__main__":
    if sys.argv[1] == "launch":
        print("REPORT " + json.dumps(launch(sys.argv[2:])))
    else:
        pid, n, port = (int(a) for a in sys.argv[2:5])
        main_run(pid, n, port, sys.argv[5:])
