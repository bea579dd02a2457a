"""Where the facade's time goes: per-call overhead and first call, against raw JAX.

Usage:
    python benchmarks/profile_overhead.py percall --n 1000      # cProfile, eager per-call path
    python benchmarks/profile_overhead.py percall --n 10 --jit  # ... of jit(grad)
    python benchmarks/profile_overhead.py split --n 1000        # per-call cost, piece by piece
    python benchmarks/profile_overhead.py first --n 1000        # cProfile of the first call
    python benchmarks/profile_overhead.py vjp                   # eager vjp + pullback
    python benchmarks/profile_overhead.py anew                  # grad / for_loop built anew
    python benchmarks/profile_overhead.py loop                  # eager BPTT grad, for_loop

The ``split`` mode times, for the same compiled program, raw JAX's dispatch of the same number
of arrays and each step the facade adds (building the call signature, reading the states,
calling the compiled program, arranging the gradients), so the overhead can be attributed to a
line of ``src/facade``. Not part of ``nox -s bench``; a tool for the profile in
docs/performance.md.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _cases as C  # noqa: E402
import _loop_cases as L  # noqa: E402
import jax  # noqa: E402


def per_call(fn: Callable[[], Any], calls: int, rounds: int = 7) -> float:
    """Median over ``rounds`` of the mean per-call time of ``calls`` blocked calls."""
    jax.block_until_ready(fn())
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            jax.block_until_ready(fn())
        out.append((time.perf_counter() - t0) / calls)
    return statistics.median(out)


def per_call_nosync(fn: Callable[[], Any], calls: int, rounds: int = 7) -> float:
    """Same, for Python-only steps (nothing to block on)."""
    fn()
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        out.append((time.perf_counter() - t0) / calls)
    return statistics.median(out)


def _build(n: int, mlp: bool) -> tuple[Any, Any, Any, Any, tuple]:
    if mlp:
        params, x, y = C.mlp_data()
        pure, args = C.mlp_pure, (x, y)
    else:
        params, x = C.chain_data(n)
        pure, args = C.chain_pure, (x,)
    eager, jitted, states = C.facade_grad(pure, params)
    return pure, params, eager, jitted, args


def profile(fn: Callable[[], Any], calls: int, top: int) -> None:
    jax.block_until_ready(fn())
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        jax.block_until_ready(fn())
    prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def split(n: int, mlp: bool, seconds: float) -> None:
    """Interleaved timing of the whole calls and of the pieces of the facade's per-call path."""
    from _timing import interleaved

    pure, params, eager, jitted, args = _build(n, mlp)
    raw = jax.jit(jax.grad(pure))
    raw_vg = jax.jit(jax.value_and_grad(pure))
    keys = list(params)

    def pure_list(values: list[Any], *a: Any) -> Any:
        return pure(dict(zip(keys, values, strict=True)), *a)

    raw_list_vg = jax.jit(jax.value_and_grad(pure_list))
    values_list = list(params.values())
    jax.block_until_ready(eager(*args))
    jax.block_until_ready(jitted(*args))
    lowering = eager._lowering
    (entry,) = lowering.cache.values()  # the eager call's one entry (its ``fast`` call)
    values = [r()._value for r in entry.refs]
    kwargs: dict[str, Any] = {}
    sig = lowering._signature(args, kwargs)
    args_dyn, kw_dyn = sig.split(args, kwargs)
    contenders = {
        "raw JAX jit(grad)(params_dict, *args)": lambda: raw(params, *args),
        "raw jit(value_and_grad)(params_dict)": lambda: raw_vg(params, *args),
        "raw jit(value_and_grad)(params_list)": lambda: raw_list_vg(values_list, *args),
        "facade eager, whole call": lambda: eager(*args),
        "facade jit(grad), whole call": lambda: jitted(*args),
        "entry.exe(values, *args, consts) alone": lambda: entry.exe(
            values, *args_dyn, entry.consts, **kw_dyn
        ),
        "lowering._signature(args, kwargs)": lambda: lowering._signature(args, kwargs),
        "sig.split(args, kwargs)": lambda: sig.split(args, kwargs),
        "[r()._value for r in entry.refs]": lambda: [r()._value for r in entry.refs],
        "lowering._key(args, kwargs) (the keyed path)": lambda: lowering._key(args, kwargs),
    }
    stats = interleaved(contenders, min_rounds=20, max_rounds=5000, time_budget=seconds)
    ref = stats["raw JAX jit(grad)(params_dict, *args)"]
    for label, st in stats.items():
        print(
            f"{label:<44}{st.median * 1e6:10.1f} us  {st.ratio_to(ref):6.2f}x"
            f"  (best {st.best * 1e6:8.1f} us)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["percall", "split", "first", "vjp", "anew", "loop"])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--mlp", action="store_true")
    parser.add_argument("--jit", action="store_true", help="profile jit(grad) instead of eager")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=10.0, help="split: time budget")
    a = parser.parse_args()
    if a.mode == "percall":
        _, _, eager, jitted, args = _build(a.n, a.mlp)
        target = jitted if a.jit else eager
        profile(lambda: target(*args), a.calls, a.top)
    elif a.mode == "split":
        split(a.n, a.mlp, a.seconds)
    elif a.mode == "first":
        factories = C.first_call_factories(a.n)
        for name in (C.RAW, C.EAGER, C.FJIT):
            fn = factories[name]()
            jax.clear_caches()
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.enable()
            jax.block_until_ready(fn())
            prof.disable()
            print(f"==== {name}: first call {time.perf_counter() - t0:.2f}s", flush=True)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(a.top)
    elif a.mode in ("anew", "loop"):
        params, x = C.chain_data(10)
        width, steps = L.BPTT_SIZES[0]
        if a.mode == "anew":
            cases = {
                "grad chain N=10": L.grad_anew(C.chain_pure, params, (x,)),
                f"for_loop w{width} T={steps}": L.for_loop_anew(width, steps),
            }
            profiled = L.ANEW
        else:
            cases = {
                f"BPTT w{width} T={steps}": L.bptt(width, steps),
                f"for_loop w{width} T={steps}": L.for_loop_anew(width, steps),
            }
            profiled = C.EAGER
        for label, contenders in cases.items():
            for name, fn in contenders.items():
                print(f"{label:<22}{name:<16}{per_call(fn, a.calls) * 1e6:10.1f} us", flush=True)
            print(f"==== {label}: {profiled}", flush=True)
            profile(contenders[profiled], a.calls, a.top)
    else:
        contenders = C.vjp_two_step()
        for name, fn in contenders.items():
            print(f"{name:<20}{per_call(fn, a.calls) * 1e6:10.1f} us")
        profile(contenders[C.EAGER], a.calls, a.top)


if __name__ == "__main__":
    main()
