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
from jax._src.effects import JaxprInputEffect
from jax._src.interpreters import partial_eval as pe
from jax._src.pjit import jit_p
from jax._src.sharding_impls import UNSPECIFIED

from .keys import program_key

MAX_EXECUTABLES = 512

_executables: OrderedDict[Any, tuple[Callable[..., Any], Any]] = OrderedDict()
_lock = threading.Lock()
BUILT = [0]  # executables made since import (tests and benchmarks count compilations with it)


class Program:
    """A traced program: what the core uses of a ``jax.jit(f).trace(...)``.

    The one place that reads ``jax.stages.Traced``'s private fields: ``params`` (the ``jit``
    equation's parameters) and ``outer``, the tracers of enclosing traces the function closed
    over, which the jaxpr takes as its leading inputs.
    """

    __slots__ = ("jaxpr", "in_tree", "out_tree", "params", "outer")

    def __init__(self, jaxpr: Any, in_tree: Any, out_tree: Any, params: Any, outer: Any):
        self.jaxpr, self.in_tree, self.out_tree = jaxpr, in_tree, out_tree
        self.params, self.outer = params, tuple(outer)

    @classmethod
    def trace(
        cls, fn: Callable[..., Any], options: dict[str, Any], *args: Any, **kwargs: Any
    ) -> Program:
        """``jax.jit(fn, **options)`` traced on ``args``, ``kwargs``."""
        traced = jax.jit(fn, **options).trace(*args, **kwargs)
        params = traced._params
        return cls(params["jaxpr"], traced._in_tree, traced.out_tree, params, traced._consts)

    def added_inputs(self) -> int:
        """How many inputs the trace added to the jaxpr beyond its arguments' (late inputs)."""
        return len(self.jaxpr.jaxpr.invars) - len(self.outer) - self.in_tree.num_leaves

    def with_late_inputs(
        self, first: int, count: int, in_tree: Any, names: Sequence[str]
    ) -> Program | None:
        """This program with its last ``count`` inputs moved to ``first`` (counted after the
        outer tracers' inputs), its inputs now in the tree structure ``in_tree``; None if its
        effects refer to inputs by position (they cannot move).

        A trace gives a State it did not expect a new input at the point of the read
        (``_state.late_input``); JAX appends it to the jaxpr's inputs. Moved next to the
        other States' values, the program takes the State as if the trace had known it.
        """
        jaxpr = self.jaxpr.jaxpr
        if any(isinstance(e, JaxprInputEffect) for e in jaxpr.effects):
            return None
        invars = list(jaxpr.invars)
        at = len(self.outer) + first
        moved = invars[len(invars) - count :]
        invars = [*invars[:at], *moved, *invars[at : len(invars) - count]]
        info = jaxpr.debug_info
        if info is not None and info.arg_names is not None:
            arg_names = list(info.arg_names)
            if len(arg_names) == len(invars) - len(self.outer) - count:
                arg_names[first:first] = names
                info = info._replace(arg_names=tuple(arg_names))
            else:
                info = info.with_unknown_names()
        closed = self.jaxpr.replace(jaxpr=jaxpr.replace(invars=invars, debug_info=info))
        return Program(closed, in_tree, self.out_tree, self.params, self.outer)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Evaluate the program in place (inside the enclosing trace), on ``args``,
        ``kwargs`` in its input structure. Not ``Traced.__call__``, which leaves out the outer
        tracers the jaxpr takes first, so a nested transform closing over one failed."""
        flat = jax.tree.leaves((args, kwargs))
        out = core.eval_jaxpr(self.jaxpr.jaxpr, self.jaxpr.consts, *self.outer, *flat)
        return jax.tree.unflatten(self.out_tree, out)


class ShapesChanged(Exception):
    """An executable was called with inputs of other shapes or dtypes than its trace."""

    def __init__(self, position: int, traced: Any, given: Any):
        super().__init__(f"input {position}: traced as {traced}, called with {given}")
        self.position, self.traced, self.given = position, traced, given


def executable(
    traced: Program, options: dict[str, Any], name: str | None
) -> tuple[Callable[..., Any], list[Any], Any]:
    """``(run, consts, regroup)``: ``run(*args, consts, **kwargs)`` computes what ``traced``
    traced.

    ``options`` are the ``jax.jit`` options ``traced`` was traced with (in terms of ``args``).
    The output's tree structure is not part of the key: its static parts may be new objects on
    every trace (``vjp``'s pullback holds its trace's linear jaxpr). When the shared executable
    was made by a trace whose output structure differs from this one's, ``regroup`` is this
    trace's, for :func:`regrouped`; else None.
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


def _make(traced: Program, options: dict[str, Any], name: str | None) -> Any:
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
        traced.params,
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
