"""Subprocess worker for test_memory: create, use and drop 1,000 models; print a JSON report.

Run in its own process so that it can turn on JAX's persistent compilation cache (each model's
programs are identical, so every compile after the first is a cache hit: ~20 ms per model
instead of ~70 ms) without touching the configuration of the pytest process.

Each model has a parameter, a hidden state and a counter, and is used through one of
``facade.transform.grad`` (with write-back), ``facade.transform.jit`` and
``facade.transform.vjp``, in turn. The report gives: how many models and States are still alive
(by weakref) after each is dropped, the traced memory growth over the last models, and, for
scale, the memory one model keeps when it is *not* dropped.
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile
import tracemalloc
import weakref

import jax

jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="stategrad-cc-"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import facade  # noqa: E402
from facade import transform as T  # noqa: E402

X = jnp.array([1.0, -2.0, 0.5])


class Model:
    def __init__(self, i: int):
        self.w = facade.ParamState(jnp.full(3, 0.01 * i), name="w")
        self.h = facade.HiddenState(jnp.zeros(3), name="h")
        self.count = facade.State(jnp.array(0, jnp.int32), name="count")

    def loss(self, x: jax.Array) -> jax.Array:
        self.count.value = self.count.value + 1
        self.h.value = jnp.tanh(self.h.value + self.w.value * x)
        return jnp.sum(self.h.value**2)


KINDS = ("raw", "grad", "jit", "vjp")  # "raw": the same model in raw JAX, for the baseline


def use(i: int, kind: str, keep: list[object], refs: list[weakref.ref]) -> None:
    """Create model ``i``, run one transform on it, check the result; keep only weakrefs."""
    model = Model(i)
    if kind == "raw":  # a fresh jitted closure over the model's arrays, as a JAX user writes it
        w, h, count = model.w.value, model.h.value, model.count.value

        def loss(w: jax.Array, h: jax.Array, count: jax.Array, x: jax.Array) -> jax.Array:
            h = jnp.tanh(h + w * x)
            return jnp.sum(h**2), (h, count + 1)

        fn = jax.jit(jax.grad(loss, has_aux=True))
        grads, (h, count) = fn(w, h, count, X)
        model.h.value, model.count.value = h, count
    elif kind == "grad":
        fn = T.grad(model.loss, grad_states=model.w, return_value=True)
        grads, value = fn(X)
        want = jax.grad(lambda w: jnp.sum(jnp.tanh(w * X) ** 2))(model.w.value)
        assert np.allclose(grads, want, rtol=1e-4, atol=1e-6), (grads, want)
    elif kind == "jit":
        fn = T.jit(model.loss)
        fn(X)
    else:
        out, fn = T.vjp(model.loss, X, grad_states=model.w, argnums=None)
        fn(1.0)
    assert int(model.count.value) == 1
    assert np.allclose(model.h.value, np.tanh(0.01 * i * np.asarray(X)), rtol=1e-4, atol=1e-6)
    refs.extend(weakref.ref(o) for o in (model, model.w, model.h, model.count, fn))
    keep.append((model, fn))


def main(n_models: int, window: int, settle: int = 10) -> dict[str, object]:
    refs: list[weakref.ref] = []
    dropped: list[object] = []
    untraced = n_models - len(KINDS) * (settle + window)
    for i in range(untraced):
        use(i, KINDS[i % len(KINDS)], dropped, refs)
        dropped.clear()

    # Per kind: trace allocations, let that kind's first models settle, then measure `window`.
    growth = {}
    i = untraced
    for kind in KINDS:
        tracemalloc.start()
        for j in range(settle + window):
            if j == settle:
                gc.collect()
                start = tracemalloc.get_traced_memory()[0]
            use(i, kind, dropped, refs)
            dropped.clear()
            i += 1
        gc.collect()
        growth[kind] = (tracemalloc.get_traced_memory()[0] - start) / window
        tracemalloc.stop()
    assert i == n_models

    # For scale: what one model costs when it is kept alive.
    kept: list[object] = []
    tracemalloc.start()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    for j in range(30):
        use(n_models + j, KINDS[j % len(KINDS)], kept, [])
    gc.collect()
    per_kept_model = (tracemalloc.get_traced_memory()[0] - before) / 30
    tracemalloc.stop()
    del kept
    gc.collect()
    return {
        "models": n_models,
        "window": window,
        "alive": sum(r() is not None for r in refs),
        "refs": len(refs),
        "growth_per_dropped_model": growth,
        "per_kept_model": per_kept_model,
        "live_states": sum(isinstance(o, facade.State) for o in gc.get_objects()),
    }


if __name__ == "__main__":
    report = main(int(sys.argv[1]), int(sys.argv[2]))
    print("REPORT " + json.dumps(report))
