"""Memory: RSS, live objects and cache sizes over many eager calls; the compiled memory of
checkpointed loops against plain ones.

A flat run holds no more Python objects and no more cache entries at the end than after the
first ``calls[0]`` calls, and its RSS does not keep rising (a one-off allocator step is not a
leak; a leak grows in both halves of the run).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

import _cases as C
import _loop_cases as L
import jax
import jax.numpy as jnp
from _timing import rss_kib

import facade
from facade._core import lowering

MEMORY_N = 10


def cache_entries(obj: Any) -> int:
    """Number of lowered signatures held by a facade transform (and what it wraps)."""
    total = 0
    lowering = getattr(obj, "_lowering", None)
    if lowering is not None and hasattr(lowering, "cache"):
        total += len(lowering.cache)
    for lw in getattr(obj, "_lowerings", {}).values():
        total += len(lw.cache)
    inner = getattr(obj, "fn", None)
    if inner is not None and inner is not obj:
        total += cache_entries(inner)
    return total


def site_entries() -> int:
    """Executables in the facade's shared cache (one per distinct traced program)."""
    return lowering.count()


def track(
    name: str, fn: Callable[[], Any], calls: tuple[int, int], cache: Callable[[], int] | None
) -> dict[str, Any]:
    """Call ``fn`` ``calls[1]`` times; RSS every tenth of the run, and at ``calls[0]`` and
    ``calls[1]`` (after ``gc.collect()``) RSS, peak RSS, live objects and ``cache()``."""
    a, b = calls
    marks = sorted({a, *range(b // 10, b + 1, b // 10)})
    jax.block_until_ready(fn())
    gc.collect()
    done, snap = 0, {"column": name, "rss_series": {}}
    for mark in marks:
        for _ in range(mark - done):
            jax.block_until_ready(fn())
        done = mark
        snap["rss_series"][mark] = rss_kib()[0]
        if mark in calls:
            gc.collect()
            snap[f"rss@{mark}"], snap[f"hwm@{mark}"] = rss_kib()
            snap[f"objects@{mark}"] = len(gc.get_objects())
            snap[f"cache@{mark}"] = None if cache is None else cache()
    snap["rss@half"] = snap["rss_series"][max(m for m in marks if m <= b // 2)]
    return snap


def grad_calls(calls: tuple[int, int]) -> list[dict[str, Any]]:
    """The gradient of the N=10 chain (a cheap call): raw JAX and both facade columns."""
    params, x = C.chain_data(MEMORY_N)
    raw = jax.jit(jax.grad(C.chain_pure))
    eager, jitted, _ = C.facade_grad(C.chain_pure, params)
    return [
        track(C.RAW, lambda: raw(params, x), calls, None),
        track(C.EAGER, lambda: eager(x), calls, lambda: cache_entries(eager)),
        track(C.FJIT, lambda: jitted(x), calls, lambda: cache_entries(jitted)),
    ]


def transform_calls(calls: tuple[int, int]) -> list[dict[str, Any]]:
    """Each control-flow transform (and vmap, if present) called eagerly, written inline (a new
    lambda every call) and writing a State; the cache counted is what the facade's site cache
    gained from the transform's calls (sites and their signatures)."""
    T = facade.transform
    s = facade.ShortTermState(jnp.zeros(4, jnp.float32), name="s")
    batch = facade.ShortTermState(jnp.zeros((8, 4), jnp.float32), name="batch")
    xs, x, pred = jnp.ones((8, 4), jnp.float32), jnp.ones(4, jnp.float32), jnp.asarray(True)

    def decay(v: Any) -> Any:
        s.value = 0.5 * s.value + v
        return s.value

    def counted(c: Any) -> Any:
        decay(x)
        return c + 1

    def batched(v: Any) -> Any:
        batch.value = 0.5 * batch.value + v
        return batch.value

    cases: dict[str, Callable[[], Any]] = {
        "for_loop": lambda: T.for_loop(lambda v: decay(v), xs),
        "scan": lambda: T.scan(lambda c, v: (c + decay(v), c), jnp.zeros(4), xs),
        "cond": lambda: T.cond(pred, lambda v: decay(v), lambda v: decay(-v), x),
        "while_loop": lambda: T.while_loop(lambda c: c < 4, lambda c: counted(c), jnp.int32(0)),
        "checkpoint": lambda: T.checkpoint(lambda v: decay(v))(x),
    }
    if L.has_vmap():
        cases["vmap"] = lambda: T.vmap(lambda v: batched(v), in_states=batch, out_states=batch)(xs)
    out = []
    for name, fn in cases.items():
        gc.collect()
        before = site_entries()
        out.append(track(name, fn, calls, lambda before=before: site_entries() - before))
    return out


def is_flat(m: dict[str, Any], calls: tuple[int, int]) -> tuple[bool, str]:
    a, b = calls
    grow = (m[f"rss@{b}"] - m[f"rss@{a}"]) / 1024
    half = (m[f"rss@{b}"] - m["rss@half"]) / 1024
    objs = m[f"objects@{b}"] - m[f"objects@{a}"]
    flat = half < 1.0 and objs < 100 and m[f"cache@{a}"] == m[f"cache@{b}"]
    detail = (
        f"from {a} to {b} calls RSS {grow:+.1f} MiB (last {b // 2}: {half:+.1f} MiB), "
        f"{objs:+d} objects, cache {m[f'cache@{a}']} -> {m[f'cache@{b}']}"
    )
    return flat, detail


def calls_table(title: str, snapshots: list[dict[str, Any]], calls: tuple[int, int]) -> str:
    a, b = calls
    head = (
        f"{'column':<16}{'RSS@' + str(a):>12}{'RSS@' + str(b):>13}{'2nd half':>10}"
        f"{'peak@' + str(b):>13}{'objs@' + str(a):>12}{'objs@' + str(b):>13}"
        f"{'cache@' + str(a):>12}{'cache@' + str(b):>14}"
    )
    lines = [title, head]
    for m in snapshots:
        cache_a = "-" if m[f"cache@{a}"] is None else str(m[f"cache@{a}"])
        cache_b = "-" if m[f"cache@{b}"] is None else str(m[f"cache@{b}"])
        half = (m[f"rss@{b}"] - m["rss@half"]) / 1024
        lines.append(
            f"{m['column']:<16}{m[f'rss@{a}'] / 1024:>12.1f}{m[f'rss@{b}'] / 1024:>13.1f}"
            f"{half:>+10.1f}{m[f'hwm@{b}'] / 1024:>13.1f}{m[f'objects@{a}']:>12}"
            f"{m[f'objects@{b}']:>13}{cache_a:>12}{cache_b:>14}"
        )
    return "\n".join(lines)


# --- checkpointed loops: the compiled gradient programs' memory ------------------------


def _accumulated_loss(model: L.RNN, loop: str) -> Callable[[Any], Any]:
    """The BPTT loss summed inside the loop (no stacked outputs): the residuals the backward
    pass keeps are then the loop's own."""
    run = getattr(facade.transform, loop)
    total = facade.ShortTermState(jnp.zeros((), jnp.float32), name="total")

    def step(x: Any) -> None:
        h = model.step(x)
        total.value = total.value + jnp.sum(h**2)

    def carried(c: Any, x: Any) -> tuple[Any, None]:
        h, acc = c
        h = L.rnn_cell(model.values(), h, x)
        return (h, acc + jnp.sum(h**2)), None

    def loss(xs: Any) -> Any:
        if "scan" in loop:
            (_, acc), _ = run(carried, (jnp.zeros_like(xs[0]), jnp.zeros((), xs.dtype)), xs)
            return acc / xs.size
        model.reset()
        total.value = jnp.zeros((), jnp.float32)
        run(step, xs)
        return total.value / xs.size

    return loss


def _raw_accumulated(params: dict[str, Any], xs: Any) -> Any:
    def step(c: Any, x: Any) -> tuple[Any, None]:
        h, acc = c
        h = L.rnn_cell(params, h, x)
        return (h, acc + jnp.sum(h**2)), None

    (_, acc), _ = jax.lax.scan(step, (jnp.zeros_like(xs[0]), jnp.zeros((), xs.dtype)), xs)
    return acc / xs.size


LOOPS = ("for_loop", "checkpointed_for_loop", "scan", "checkpointed_scan")


FORMS = {"stacked": L.bptt_pure, "accumulated": _raw_accumulated}


def checkpointed(steps: int, width: int, forms: tuple[str, ...]) -> list[dict[str, Any]]:
    """For the gradient of each loss form (outputs stacked, or accumulated in the loop) and each
    loop: the compiled program's memory analysis, compile and call time, and the largest
    difference of its gradients from raw JAX's."""
    params, xs = L.rnn_data(width, steps)
    out = []
    for form in forms:
        raw = jax.jit(jax.grad(FORMS[form]))
        programs: list[tuple[str, Any, tuple]] = [("raw JAX lax.scan", raw, (params, xs))]
        for loop in LOOPS:
            model = L.RNN(facade, params, (width,))
            if form == "stacked":
                loss = L.bptt_loss(facade, model, loop)
            else:
                loss = _accumulated_loss(model, loop)
            grad = facade.transform.grad(loss, grad_states=model.params)
            programs.append((f"facade {loop}", facade.transform.jit(grad), (xs,)))
        reference = None
        for name, fn, args in programs:
            t0 = time.perf_counter()
            stats = fn.lower(*args).compile().memory_analysis()
            compile_s = time.perf_counter() - t0
            grads = jax.block_until_ready(fn(*args))
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            call_s = time.perf_counter() - t0
            reference = grads if reference is None else reference
            diff = max(
                float(jnp.max(jnp.abs(grads[k] - reference[k])) / (1e-12 + jnp.max(jnp.abs(v))))
                for k, v in reference.items()
            )
            out.append(
                {
                    "form": form,
                    "program": name,
                    "temp_bytes": stats.temp_size_in_bytes,
                    "argument_bytes": stats.argument_size_in_bytes,
                    "output_bytes": stats.output_size_in_bytes,
                    "compile_s": compile_s,
                    "call_s": call_s,
                    "rel_diff": diff,
                }
            )
            del fn
    return out


def checkpointed_table(rows: list[dict[str, Any]], steps: int, width: int) -> str:
    mib = 2**20
    lines = [
        f"memory of the compiled BPTT gradient, T={steps}, width {width} (MiB; 'stacked': loss "
        "of the stacked outputs, 'accumulated': loss summed inside the loop; 'grad diff': "
        "largest difference from raw JAX's gradient, relative to its largest entry)",
        f"{'loss':<13}{'program':<32}{'temp':>9}{'arguments':>11}{'outputs':>9}"
        f"{'compile':>10}{'call':>10}{'grad diff':>11}",
    ]
    for r in rows:
        lines.append(
            f"{r['form']:<13}{r['program']:<32}{r['temp_bytes'] / mib:>9.2f}"
            f"{r['argument_bytes'] / mib:>11.2f}{r['output_bytes'] / mib:>9.2f}"
            f"{r['compile_s']:>9.2f}s{r['call_s'] * 1e3:>8.1f}ms{r['rel_diff']:>11.1e}"
        )
    return "\n".join(lines)
