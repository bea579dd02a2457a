"""Estimate the savings of the suggestions in docs/performance.md, without touching src/.

Inside this process only, it patches the facade to behave as a suggestion would and measures
the difference against raw JAX (interleaved, as run.py does):

* ``no-value``: the grad program computes the loss value only when ``return_value=True``
  (today ``GradientTransform._body`` always asks the functional engine for it, so XLA must
  compute, output and, at N=1000, spend minutes-scale compile time on a value nobody reads);
* ``one-trace``: discovery is skipped when the differentiated states are all the function
  reads (emulating an optimistic first trace whose reads are checked afterwards, which
  ``_StaleDiscovery`` already does inside the program).

Usage:
    python benchmarks/what_if.py percall --n 10
    python benchmarks/what_if.py first --n 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _cases as C  # noqa: E402
import jax  # noqa: E402
from _timing import interleaved  # noqa: E402

import facade  # noqa: E402
import facade._autodiff as AD  # noqa: E402
import facade._lowering as LW  # noqa: E402
import facade._state as ST  # noqa: E402


def no_value_body(self: Any, pure: Any, grad_values: Any, kw: Any, args: tuple[Any, ...]) -> Any:
    """``GradientTransform._body`` asking for the value only when the user did."""
    treedef = self._states_treedef
    f = AD._structured(AD._with_aux(pure, self.has_aux, self.target), treedef)
    argnums = AD._functional_argnums(self.argnums, len(args), bool(self._lowering.grad_states))
    if treedef is not None:
        grad_values = treedef.unflatten(grad_values)
    out = self._functional(f, argnums, has_aux=True, return_value=self.return_value)(
        grad_values, kw, *args
    )
    if self.return_value:
        grads, value, (aux, written) = out
    else:
        (grads, (aux, written)), value = out, None
    return (grads, value, aux), written


_real_discover = LW.discover
ONE_TRACE = {"on": False}


def optimistic_discover(run: Any, args_dyn: Any, kw_dyn: Any, values: Any = None) -> Any:
    """Pretend discovery found exactly the grad states read and nothing written."""
    if ONE_TRACE["on"] and values:
        f = ST.Frame()
        f.reads = dict.fromkeys(values)
        return f
    return _real_discover(run, args_dyn, kw_dyn, values)


LW.discover = optimistic_discover


def facade_grad(pure: Any, params: dict[str, Any], no_value: bool, jit: bool) -> Any:
    states = {k: facade.ParamState(v, name=k) for k, v in params.items()}

    def loss(*a: Any) -> Any:
        return pure({k: s.value for k, s in states.items()}, *a)

    g = facade.transform.grad(loss, grad_states=states)
    if no_value:
        g._lowering.body = no_value_body.__get__(g)
    return facade.transform.jit(g) if jit else g


def percall(n: int, seconds: float) -> None:
    params, x = C.chain_data(n)
    raw = jax.jit(jax.grad(C.chain_pure))
    variants = {
        "raw JAX": lambda: raw(params, x),
    }
    for label, no_value, jit in [
        ("facade eager (today)", False, False),
        ("facade eager, no-value", True, False),
        ("facade jit (today)", False, True),
        ("facade jit, no-value", True, True),
    ]:
        g = facade_grad(C.chain_pure, params, no_value, jit)
        variants[label] = lambda g=g: g(x)
    stats = interleaved(variants, min_rounds=20, max_rounds=5000, time_budget=seconds)
    for label, s in stats.items():
        print(
            f"N={n} {label:<26}{s.median * 1e6:10.1f} us {s.ratio_to(stats['raw JAX']):6.3f}x",
            flush=True,
        )


def first(n: int, rounds: int) -> None:
    params, x = C.chain_data(n)
    results: dict[str, list[float]] = {}
    cases = [
        ("raw JAX", None),
        ("facade eager (today)", (False, False, False)),
        ("facade eager, no-value", (True, False, False)),
        ("facade eager, no-value + one-trace", (True, True, False)),
        ("facade jit (today)", (False, False, True)),
        ("facade jit, no-value + one-trace", (True, True, True)),
    ]
    for _ in range(rounds):
        for label, variant in cases:

            def pure(p: Any, x: Any) -> Any:
                return C.chain_pure(p, x)

            if variant is None:
                t0 = time.perf_counter()
                jax.block_until_ready(jax.jit(jax.grad(pure))(params, x))
            else:
                no_value, one_trace, jit = variant
                ONE_TRACE["on"] = one_trace
                t0 = time.perf_counter()
                jax.block_until_ready(facade_grad(pure, params, no_value, jit)(x))
                ONE_TRACE["on"] = False
            results.setdefault(label, []).append(time.perf_counter() - t0)
            print(f"  {label}: {results[label][-1]:.2f}s", flush=True)
    ref = statistics.median(results["raw JAX"])
    for label, times in results.items():
        med = statistics.median(times)
        print(f"first call N={n} {label:<36}{med:8.2f} s {med / ref:6.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["percall", "first"])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=1)
    a = parser.parse_args()
    if a.mode == "percall":
        percall(a.n, a.seconds)
    else:
        first(a.n, a.rounds)


if __name__ == "__main__":
    main()
