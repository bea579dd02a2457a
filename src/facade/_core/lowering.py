"""A traced program -> one compiled executable, shared by every trace of the same program.

Every state-aware transform reaches XLA here. A transform traces its program with
``jax.jit(program).trace(...)`` (see ``sites``) and asks :func:`executable` for something to
run. The executable is looked up by :func:`~facade._core.keys.program_key` of the traced jaxpr:
two traces of the same computation (a loop called again with a new lambda over the same
model, a ``grad`` built anew inside the training step) share one executable and compile once.

The executable evaluates the traced jaxpr under ``jax.jit``; the jaxpr's constants (arrays the
function closed over) are its last argument, so a closure over a new array of the same shape
and dtype reuses it instead of baking the values into the program. ``jax.jit`` compiles it once
per input shapes, dtypes and shardings, under the jax configuration in force (matmul precision,
default device, mesh), all of which it keys itself. Inputs of other shapes than the trace's
raise :class:`ShapesChanged` when ``jax.jit`` traces it again: only a new trace of the user's
function may run on them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import jax
from jax._src import config, core
from jax._src.interpreters import partial_eval as pe
from jax._src.pjit import jit_p
from jax._src.sharding_impls import UNSPECIFIED

from .keys import program_key

MAX_EXECUTABLES = 512

_executables: OrderedDict[Any, tuple[Callable[..., Any], Any]] = OrderedDict()
_lock = threading.Lock()
BUILT = [0]  # executables made since import (tests and benchmarks count compilations with it)


class ShapesChanged(Exception):
    """An executable was called with inputs of other shapes or dtypes than its trace."""

    def __init__(self, position: int, traced: Any, given: Any):
        super().__init__(f"input {position}: traced as {traced}, called with {given}")
        self.position, self.traced, self.given = position, traced, given


def executable(
    traced: Any, options: dict[str, Any], name: str | None
) -> tuple[Callable[..., Any], list[Any], Any]:
    """``(run, consts, regroup)``: ``run(*args, consts, **kwargs)`` computes what ``traced``
    traced.

    ``traced`` is a ``jax.jit(...).trace(*args, **kwargs)``; ``options`` are the ``jax.jit``
    options it was traced with (in terms of ``args``). The output's tree structure is not part
    of the key: its static parts may be new objects on every trace (``vjp``'s pullback holds its
    trace's linear jaxpr). When the shared executable was made by a trace whose output structure
    differs from this one's, ``regroup`` is this trace's, for :func:`regrouped`; else None.
    """
    closed = traced.jaxpr
    consts = list(closed.consts)
    key = program_key(closed)
    if key is not None:
        key = (key, traced.in_tree, _options_key(options), name)
        found = _executables.get(key)
        if found is not None:
            try:
                _executables.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile: still a good executable
                pass
            exe, out_tree = found
            return exe, consts, None if out_tree == traced.out_tree else traced.out_tree
    made = _make(traced, options, name)
    if key is not None:
        with _lock:
            _executables[key] = (made, traced.out_tree)
            while len(_executables) > MAX_EXECUTABLES:
                _executables.popitem(last=False)
    return made, consts, None


def regrouped(out: Any, regroup: Any) -> Any:
    """The executable's output in this trace's tree structure (see :func:`executable`)."""
    return out if regroup is None else jax.tree.unflatten(regroup, jax.tree.leaves(out))


def _options_key(options: dict[str, Any]) -> Any:
    items = tuple(sorted(options.items()))
    try:
        hash(items)
    except TypeError:
        return repr(items)
    return items


def _make(traced: Any, options: dict[str, Any], name: str | None) -> Any:
    closed = traced.jaxpr
    jaxpr = pe.convert_constvars_jaxpr(closed.jaxpr)
    expected: list[Any] = [v.aval for v in jaxpr.invars]
    n_consts, n_in, n_out = len(closed.consts), len(jaxpr.invars), len(jaxpr.outvars)
    out_tree = traced.out_tree
    # ``run`` binds the program as one ``jit`` equation over its jaxpr, so that tracing ``run``
    # records one equation instead of evaluating every equation of the program again (as
    # costly as the first trace of a large program). Its options (shardings, donation) stay
    # on the outer ``jax.jit``.
    params = dict(
        traced._params,
        jaxpr=pe.close_jaxpr(jaxpr),
        in_shardings=(UNSPECIFIED,) * n_in,
        out_shardings=(UNSPECIFIED,) * n_out,
        in_layouts=(None,) * n_in,
        out_layouts=(None,) * n_out,
        donated_invars=(False,) * n_in,
        name=name or "program",
        inline=False,
    )

    def run(*args_and_consts: Any, **kwargs: Any) -> Any:
        *args, consts = args_and_consts
        flat = [*consts, *jax.tree.leaves((tuple(args), kwargs))]
        # Traced by jax.jit only for inputs it has not seen: check them against our trace.
        for i, (x, want) in enumerate(zip(flat, expected, strict=True)):
            got: Any = core.typeof(x)
            if (got.shape, got.dtype, got.weak_type) != (want.shape, want.dtype, want.weak_type):
                raise ShapesChanged(i - n_consts, want, got)
        if config.debug_nans.value or config.debug_infs.value:
            # JAX's NaN checks re-run ``run`` equation by equation to name the operation that
            # made the NaN; they cannot look inside a bare ``jit`` equation.
            out = core.eval_jaxpr(jaxpr, (), *flat)
        else:
            out = jit_p.bind(*flat, **params)
        return jax.tree.unflatten(out_tree, out)

    if name:
        run.__name__ = run.__qualname__ = name
    jit_options = dict(options)
    if "in_shardings" in jit_options:  # one more positional argument: the constants
        jit_options["in_shardings"] = (*jit_options["in_shardings"], UNSPECIFIED)
    BUILT[0] += 1
    return jax.jit(run, **jit_options)


def count() -> int:
    return len(_executables)


def consts_hold_tracers(consts: Sequence[Any]) -> bool:
    """Whether a trace closed over a tracer of an enclosing trace (not to be cached)."""
    return any(isinstance(c, jax.core.Tracer) for c in consts)
