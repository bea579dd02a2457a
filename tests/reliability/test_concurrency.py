"""Threads: separate models, one shared model read-only, and recorders that must not cross-talk.

* 8 threads x 500 calls, each thread on its own model (grad with write-back, and jit, in turn):
  every result and every state value equals a single-threaded run of the same sequence.
* 8 threads x 500 calls on one shared model through shared transforms, read-only, with
  different input shapes per thread (so the shared caches are filled concurrently): results equal
  the single-threaded ones and the model is untouched.
* StateFinders in 8 threads, each on its own states, while the others trace: a finder only ever
  sees its own thread's states.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import facade
from facade import transform as T
from facade._state import active_frames

from ._support import Snapshot

N_THREADS = 8
N_CALLS = 200  # per thread: 1,600 interleaved calls per test


def run_threads(work: Callable[[int, threading.Barrier], Any]) -> list[Any]:
    """Run ``work(k, barrier)`` in N_THREADS threads started together; re-raise any error."""
    barrier = threading.Barrier(N_THREADS)
    with ThreadPoolExecutor(N_THREADS) as pool:
        futures = [pool.submit(work, k, barrier) for k in range(N_THREADS)]
        return [f.result(timeout=600) for f in futures]


# --- separate models ---------------------------------------------------------------------------


class Model:
    def __init__(self, k: int):
        self.w = facade.ParamState(jnp.linspace(-1.0, 1.0, 4) * (k + 1), name=f"w{k}")
        self.h = facade.HiddenState(jnp.zeros(4), name=f"h{k}")
        self.count = facade.State(jnp.array(0, jnp.int32), name=f"count{k}")
        self.grad = T.grad(self.loss, grad_states=self.w, argnums=0, return_value=True)
        self.step = T.jit(self.loss)

    def loss(self, x: Any) -> Any:
        self.count.value = self.count.value + 1
        self.h.value = 0.9 * self.h.value + jnp.tanh(self.w.value * x)
        return jnp.sum(self.h.value**2)

    def values(self) -> list[np.ndarray]:
        return [np.asarray(s.value) for s in (self.w, self.h, self.count)]


def inputs(k: int, i: int) -> jax.Array:
    return jnp.asarray(np.sin(np.arange(4) + 0.37 * i + 1.3 * k), dtype=jnp.float32)


def drive(k: int, barrier: threading.Barrier | None) -> list[Any]:
    """Model ``k``'s 500 calls; returns every result and the states after every 50 calls."""
    model = Model(k)
    if barrier is not None:
        barrier.wait()
    trace = []
    for i in range(N_CALLS):
        x = inputs(k, i)
        trace.append(model.grad(x) if i % 2 == 0 else model.step(x))
        if i % 50 == 49:
            trace.append(model.values())
    assert active_frames() == []
    return jax.tree.map(np.asarray, trace)


def test_separate_models_match_single_threaded() -> None:
    single = [drive(k, None) for k in range(N_THREADS)]
    threaded = run_threads(drive)
    for k in range(N_THREADS):
        for a, b in zip(jax.tree.leaves(threaded[k]), jax.tree.leaves(single[k]), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"thread {k}")
    # Each model counted exactly its own calls (no write from another thread landed in it).
    assert all(int(run[-1][2]) == N_CALLS for run in threaded)


# --- one shared model, read-only -----------------------------------------------------------------

SHARED_W = facade.ParamState(jnp.array([[0.5, -1.0, 0.25], [1.5, 0.0, -0.5]]), name="shared_w")
SHARED_B = facade.ParamState(jnp.array([0.1, -0.2]), name="shared_b")


def shared_loss(x: Any) -> Any:
    y = jnp.tanh(x @ SHARED_W.value.T + SHARED_B.value)
    return jnp.mean(y**2)


SHARED_GRAD = T.grad(shared_loss, grad_states={"w": SHARED_W, "b": SHARED_B}, return_value=True)
SHARED_PREDICT = T.jit(lambda x: jnp.tanh(x @ SHARED_W.value.T + SHARED_B.value))


def batch(k: int, i: int) -> jax.Array:
    rows = 1 + k % 3  # three input shapes: the shared caches are filled from several threads
    return jnp.asarray(np.cos(np.arange(rows * 3).reshape(rows, 3) * 0.3 + 0.11 * i + k))


def read_only(k: int, barrier: threading.Barrier | None) -> list[Any]:
    if barrier is not None:
        barrier.wait()
    out = []
    for i in range(N_CALLS):
        x = batch(k, i)
        out.append(SHARED_GRAD(x) if i % 2 == 0 else SHARED_PREDICT(x))
    return jax.tree.map(np.asarray, out)


def test_shared_model_read_only_matches_single_threaded() -> None:
    entry = Snapshot([SHARED_W, SHARED_B])
    single = [read_only(k, None) for k in range(N_THREADS)]
    threaded = run_threads(read_only)
    for k in range(N_THREADS):
        for a, b in zip(jax.tree.leaves(threaded[k]), jax.tree.leaves(single[k]), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"thread {k}")
    entry.assert_unchanged()
    # And both equal raw JAX.
    w, b = SHARED_W.value, SHARED_B.value
    x = batch(2, 0)

    def raw(p: Any, x: Any) -> Any:
        return jnp.mean(jnp.tanh(x @ p["w"].T + p["b"]) ** 2)

    np.testing.assert_allclose(
        threaded[2][0][0]["w"], jax.grad(raw)({"w": w, "b": b}, x)["w"], rtol=1e-6
    )
    assert len(SHARED_GRAD._lowering.cache) == 3  # one traced signature per input shape


# --- recorders ---------------------------------------------------------------------------------


def test_state_finders_never_see_other_threads_states() -> None:
    own = [
        [facade.ParamState(jnp.ones(2) * k, name=f"p{k}"), facade.State(jnp.zeros(2), name=f"s{k}")]
        for k in range(N_THREADS)
    ]
    grads = [
        T.grad(lambda x, k=k: jnp.sum(own[k][0].value * x), grad_states=own[k][0])
        for k in range(N_THREADS)
    ]
    mistakes: list[str] = []
    SHAPES = [jnp.ones(()), jnp.ones(1), jnp.ones(2)]  # noqa: N806

    def work(k: int, barrier: threading.Barrier) -> int:
        p, s = own[k]

        def fn(x: Any) -> Any:
            y = p.value * x
            time.sleep(0)  # let another thread run in the middle of this trace
            s.value = y
            return jnp.sum(s.value)

        finder = T.StateFinder(fn, usage="both", return_type="list")
        barrier.wait()
        for i in range(60):
            found = finder(jnp.ones(2))
            if found != {"read": [p], "write": [s]}:  # s is written before it is read
                mistakes.append(f"thread {k} call {i}: {found}")
            # Other threads' transforms trace (new signatures) and run while finders record.
            grads[(k + 1) % N_THREADS](SHAPES[i % 3])
        return len(mistakes)

    run_threads(work)
    assert mistakes == []
