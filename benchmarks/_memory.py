"""Memory: RSS, live objects and cache sizes over many eager calls; the compiled memory of
checkpointed loops against plain ones; the compiled memory of the facade's programs against
raw JAX's; RSS over many training steps of a large model.

A flat run holds no more Python objects and no more cache entries at the end than after the
first ``calls[0]`` calls, and its RSS does not keep rising (a one-off allocator step is not a
leak; a leak grows in both halves of the run).
"""

from __future__ import annotations

import functools
import gc
import time
from collections.abc import Callable
from typing import Any

import _cases as C
import _loop_cases as L
import jax
import jax.numpy as jnp
import numpy as np
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


# --- compiled programs: the facade's memory against raw JAX's ----------------------------------


def _stats(fn: Any, *args: Any) -> dict[str, int]:
    """Argument, output and temporary bytes of ``fn``'s compiled program (generated code is
    always 0 bytes on CPU, so it is not reported)."""
    m = fn.lower(*args).compile().memory_analysis()
    return {
        "argument": m.argument_size_in_bytes,
        "output": m.output_size_in_bytes,
        "temp": m.temp_size_in_bytes,
    }


def _nested_checkpointed_scan(step: Any, carry: Any, xs: Any, depth: int, size: int) -> Any:
    """Raw JAX: ``lax.scan(step, carry, xs)`` as ``depth`` nested scans of ``size`` steps, each
    inner level under ``jax.checkpoint``: the nesting ``checkpointed_for_loop`` builds."""
    assert size**depth == xs.shape[0], "a length with padding is not modelled here"
    grid = xs.reshape((size,) * depth + xs.shape[1:])

    def level(k: int) -> Any:
        if k == depth - 1:
            return functools.partial(jax.lax.scan, step)
        return functools.partial(jax.lax.scan, jax.checkpoint(level(k + 1), prevent_cse=False))

    carry, ys = level(0)(carry, grid)
    return carry, ys.reshape((xs.shape[0], *ys.shape[depth:]))


def compiled_programs(quick: bool) -> list[dict[str, Any]]:
    """For each case, the compiled memory of raw JAX's program and of the facade's."""
    from facade.transform._loops import (
        _levels,  # the facade's own nesting rule, for the raw baseline
    )

    T = facade.transform
    rows: list[dict[str, Any]] = []

    def add(
        case: str, raw: Any, raw_args: tuple, ours: Any, our_args: tuple, same: Any = None
    ) -> None:
        """``same``: a raw-JAX program that also returns what the facade writes back and the
        plain one drops (BPTT's final hidden state); the ratio is then taken against it."""
        row = {"case": case, "raw": _stats(raw, *raw_args), "facade": _stats(ours, *our_args)}
        if same is not None:
            row["raw_same"] = _stats(same, *raw_args)
        rows.append(row)

    # grad of the MLP and of N states, under transform.jit (C.facade_grad's jitted column).
    params, x, y = C.mlp_data()
    _, jitted, _ = C.facade_grad(C.mlp_pure, params)
    add(
        f"jit(grad) MLP {C.MLP_DEPTH}x{C.MLP_WIDTH}",
        jax.jit(jax.grad(C.mlp_pure)),
        (params, x, y),
        jitted,
        (x, y),
    )
    # The training step: grad, then SGD written back into the States.
    states = {k: facade.ParamState(v, name=k) for k, v in params.items()}

    def loss(x: Any, y: Any) -> Any:
        return C.mlp_pure({k: s.value for k, s in states.items()}, x, y)

    grad = T.grad(loss, grad_states=states)

    @T.jit
    def train_step(x: Any, y: Any) -> None:
        for k, g in grad(x, y).items():
            states[k].value = states[k].value - 0.01 * g

    def raw_step(p: Any, x: Any, y: Any) -> Any:
        return jax.tree.map(lambda a, g: a - 0.01 * g, p, jax.grad(C.mlp_pure)(p, x, y))

    add("train step MLP (SGD write-back)", jax.jit(raw_step), (params, x, y), train_step, (x, y))

    n = 10 if quick else 1000
    chain, cx = C.chain_data(n)
    _, jitted, _ = C.facade_grad(C.chain_pure, chain)
    add(f"jit(grad) {n} states", jax.jit(jax.grad(C.chain_pure)), (chain, cx), jitted, (cx,))

    width, steps = L.BPTT_SIZES[0] if quick else L.BPTT_SIZES[1]
    rnn, xs = L.rnn_data(width, steps)
    h0 = jnp.zeros(width, jnp.float32)

    def bptt_and_h(p: Any, xs: Any) -> Any:
        ys, h = L.rnn_scan(p, h0, xs)
        return jnp.mean(ys**2), h

    model = L.RNN(facade, rnn, (width,))
    bptt = T.jit(T.grad(L.bptt_loss(facade, model), grad_states=model.params))
    raw, same = jax.jit(jax.grad(L.bptt_pure)), jax.jit(jax.grad(bptt_and_h, has_aux=True))
    add(f"BPTT w{width} T={steps}", raw, (rnn, xs), bptt, (xs,), same)

    depth, size = _levels(steps, 16)

    def checkpointed_and_h(p: Any, xs: Any) -> Any:
        def step(h: Any, x: Any) -> tuple[Any, Any]:
            h = L.rnn_cell(p, h, x)
            return h, h

        h, ys = _nested_checkpointed_scan(step, h0, xs, depth, size)
        return jnp.mean(ys**2), h

    model = L.RNN(facade, rnn, (width,))
    ckpt = T.jit(
        T.grad(L.bptt_loss(facade, model, "checkpointed_for_loop"), grad_states=model.params)
    )
    raw = jax.jit(jax.grad(lambda p, xs: checkpointed_and_h(p, xs)[0]))
    same = jax.jit(jax.grad(checkpointed_and_h, has_aux=True))
    add(f"checkpointed_for_loop T={steps} ({depth}x{size})", raw, (rnn, xs), ckpt, (xs,), same)

    if L.has_vmap():
        pex, pxs, pys = L.pex_data()
        pstates = {k: facade.ParamState(v) for k, v in pex.items()}

        def pex_loss(x: Any, y: Any) -> Any:
            return L.pex_pure({k: s.value for k, s in pstates.items()}, x, y)

        ours = T.jit(T.vmap(T.grad(pex_loss, grad_states=pstates), in_axes=(0, 0)))
        raw = jax.jit(jax.vmap(jax.grad(L.pex_pure), in_axes=(None, 0, 0)))
        add(f"per-example grads b{L.PEX_BATCH}", raw, (pex, pxs, pys), ours, (pxs, pys))
    return rows


def compiled_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "compiled memory against raw JAX (bytes, memory_analysis() of each compiled program; "
        "'raw JAX + h': raw JAX also returning the final hidden state, which the facade writes "
        "back into its HiddenState; ratio: facade / the last raw JAX row, target 1.00)",
        f"{'case':<38}{'':>12}{'arguments':>12}{'outputs':>10}{'temp':>10}",
    ]
    names = {"raw": "raw JAX", "raw_same": "raw JAX + h", "facade": "facade"}
    for r in rows:
        for who in ("raw", "raw_same", "facade"):
            if who not in r:
                continue
            s = r[who]
            label = r["case"] if who == "raw" else ""
            lines.append(
                f"{label:<38}{names[who]:>12}{s['argument']:>12}{s['output']:>10}{s['temp']:>10}"
            )
        ratio = [compiled_ratio(r, k) for k in ("argument", "output", "temp")]
        cells = "".join(f"{v:>{w}.2f}" for v, w in zip(ratio, (12, 10, 10), strict=True))
        lines.append(f"{'':<38}{'ratio':>12}{cells}")
    return "\n".join(lines)


def compiled_ratio(row: dict[str, Any], kind: str) -> float:
    """facade / raw JAX (the raw program with the same outputs, when there is one)."""
    raw, ours = row.get("raw_same", row["raw"])[kind], row["facade"][kind]
    return 1.0 if raw == ours else ours / max(raw, 1)


# --- RSS over many training steps of a large model: no hidden copy on write-back -------------


def training_rss(steps: tuple[int, int], side: int) -> list[dict[str, Any]]:
    """``steps[1]`` ``transform.jit`` SGD steps of a ``side x side`` float32 weight (side 5120:
    100 MiB), against raw JAX's ``jax.jit`` step; RSS as :func:`track` measures it, and the
    bytes of the live JAX arrays the run made that are still held at its end: the weight
    alone, unless a write-back kept a copy (another weight's worth)."""
    rng = np.random.default_rng(5)
    w0 = jnp.asarray(rng.standard_normal((side, side), np.float32) / np.sqrt(side))
    x = jnp.asarray(rng.standard_normal((16, side), np.float32))
    y = jnp.asarray(rng.standard_normal((16, side), np.float32))

    def pure(w: Any, x: Any, y: Any) -> Any:
        return jnp.mean((jnp.tanh(x @ w) - y) ** 2)

    raw_step = jax.jit(lambda w, x, y: w - 0.01 * jax.grad(pure)(w, x, y))

    def raw_call() -> tuple[Callable[[], Any], None]:
        held = [w0 + 0]  # a copy: the run's own weight

        def call() -> Any:
            held[0] = raw_step(held[0], x, y)
            return held[0]

        return call, None

    def facade_call() -> tuple[Callable[[], Any], Callable[[], int]]:
        w = facade.ParamState(w0 + 0, name="w")
        grad = facade.transform.grad(lambda x, y: pure(w.value, x, y), grad_states=w)

        @facade.transform.jit
        def step(x: Any, y: Any) -> None:
            w.value = w.value - 0.01 * grad(x, y)

        def call() -> Any:
            step(x, y)
            return w.value

        return call, lambda: cache_entries(step)

    out = []
    for column, make in ((C.RAW, raw_call), (C.FJIT, facade_call)):
        gc.collect()
        before = sum(a.nbytes for a in jax.live_arrays())
        call, cache = make()
        snap = track(column, call, steps, cache)
        gc.collect()
        snap["live_mib"] = (sum(a.nbytes for a in jax.live_arrays()) - before) / 2**20
        snap["model_mib"] = side * side * 4 / 2**20
        out.append(snap)
        del call, cache
    return out
