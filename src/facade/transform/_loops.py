"""State-aware loops: ``for_loop``, ``scan``, their checkpointed forms and the while loops.

Each loop discovers the states its body touches (an abstract trace of the body), carries the
written ones in the ``lax`` loop's carry and closes over the read-only ones, so iteration k+1
sees iteration k's writes; the final values are written back once, after the loop. Called
inside another facade trace the loop is traced in place; called eagerly it is traced on every
call and runs the executable of its program (``_core.sites.call``: an unchanged loop compiles
once).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax._src import config as jax_config

from .._core import sites
from .._core.bridge import (
    Carry,
    Discovery,
    Pure,
    check_carried,
    describe_avals,
    discover,
    same_avals,
    write_values,
)
from ._errors import TransformArgumentError
from ._progress import ProgressBar, as_progress_bar


def _check_callable(f: Any, name: str, where: str) -> None:
    if not callable(f):
        raise TypeError(f"{where}: {name} must be callable, got {type(f).__name__} {f!r}")


def _check_int(value: Any, name: str, where: str, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TransformArgumentError(f"{where}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{where}: {name} must be at least {minimum}, got {value}")


def _check_unroll(unroll: Any, where: str) -> None:
    if isinstance(unroll, bool):
        return
    _check_int(unroll, "unroll", where, 1)


def leading_length(xs: Any, length: int | None, where: str) -> int:
    """The common leading axis of the leaves of ``xs`` (checked against ``length``)."""
    sizes: dict[str, int] = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(xs):
        name = "xs" + jax.tree_util.keystr(path)
        if np.ndim(leaf) == 0:
            raise ValueError(
                f"{where}: {name} is a scalar (0-d); every leaf of xs needs a leading axis"
            )
        sizes[name] = int(np.shape(leaf)[0])
    distinct = set(sizes.values())
    if len(distinct) > 1:
        detail = ", ".join(f"{k}: {v}" for k, v in sizes.items())
        raise ValueError(f"{where}: the leaves of xs have different leading axes ({detail})")
    if not distinct:
        if length is None:
            raise ValueError(f"{where}: give xs to loop over, or length")
        return length
    (n,) = distinct
    if length is not None and length != n:
        raise ValueError(f"{where}: length={length} but the leading axis of xs is {n}")
    return n


def _slices(xs: Any) -> Any:
    """Abstract values of one iteration's slice of ``xs``."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a)[1:], jnp.result_type(a)), xs)


# --- the body of a scan, made pure -------------------------------------------------------


class _Body:
    """A stateful ``body(carry, x) -> (carry, y)`` as one step of a ``lax`` loop over states.

    ``step((carried, carry, i), x) -> ((carried, carry, i), y)``: ``carried`` holds the written
    states' values, ``i`` counts iterations for the progress bar.
    """

    def __init__(
        self,
        body: Callable[[Any, Any], tuple[Any, Any]],
        init: Any,
        x: Any,
        where: str,
        bar: ProgressBar | None,
        total: int,
        report_carry: Callable[[Any, Sequence[Any]], Any],
    ):
        d, (carry_shape, _) = discover(body, (init, x), {})
        if not same_avals(init, carry_shape):
            raise TransformArgumentError(
                f"{where}: f must return a carry with the structure, shapes and dtypes of init: "
                f"it returned {describe_avals(carry_shape)} for an init of {describe_avals(init)}"
            )
        self.layout = Carry(d)
        self.pure = Pure(body, d)
        self.where, self.bar, self.total, self.report_carry = where, bar, total, report_carry
        self.fixed, self.carried0 = self.layout.read()

    def step(self, loop_carry: Any, x: Any) -> tuple[Any, Any]:
        carried, carry, i = loop_carry
        (carry, y), new_carried = self.pure(self.layout.merge(self.fixed, carried), carry, x)
        check_carried(self.layout.carried, carried, new_carried, self.where)
        if self.bar is not None:
            self.bar.report(self.total, i, self.report_carry(carry, new_carried), y)
            i = i + 1
        return (new_carried, carry, i), y

    def initial(self, init: Any) -> Any:
        counter = jnp.zeros((), jnp.int32) if self.bar is not None else None
        return (self.carried0, init, counter)

    def finish(self, final: Any) -> Any:
        """Check the body's trace, write the carried states back, return the user carry."""
        self.pure.check_traces(self.where)
        carried, carry, _ = final
        write_values(self.layout.carried, carried)
        return carry


def _pair(out: Any, where: str) -> tuple[Any, Any]:
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise TransformArgumentError(
            f"{where}: f must return a pair (carry, y), got {type(out).__name__}"
        )
    return out[0], out[1]


def _scan_traced(
    body: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    xs: Any,
    length: int | None,
    reverse: bool,
    unroll: int | bool,
    bar: ProgressBar | None,
    where: str,
    report_carry: Callable[[Any, Sequence[Any]], Any],
    checkpoint_base: int | None = None,
) -> tuple[Any, Any]:
    n = leading_length(xs, length, where)
    loop = _Body(body, init, _slices(xs), where, bar, n, report_carry)
    if checkpoint_base is None:
        final, ys = jax.lax.scan(
            loop.step, loop.initial(init), xs, length=n, reverse=reverse, unroll=unroll
        )
    else:
        final, ys = checkpointed_scan_of(loop.step, loop.initial(init), xs, n, checkpoint_base)
    return loop.finish(final), ys


def _for_loop_carry(carry: Any, carried: Sequence[Any]) -> Any:
    return carried[0] if len(carried) == 1 else tuple(carried)


def _scan_carry(carry: Any, carried: Sequence[Any]) -> Any:
    return carry


def _for_loop_body(f: Callable[..., Any]) -> Callable[[Any, Any], tuple[Any, Any]]:
    def body(carry: Any, x: Any) -> tuple[Any, Any]:
        return None, f(*x)

    return body


def _scan_body(f: Callable[..., Any], where: str) -> Callable[[Any, Any], tuple[Any, Any]]:
    def body(carry: Any, x: Any) -> tuple[Any, Any]:
        return _pair(f(carry, x), where)

    return body


def _for_loop_traced(
    f: Callable[..., Any],
    length: int | None,
    reverse: bool,
    unroll: int | bool,
    bar: ProgressBar | None,
    base: int | None,
    where: str,
    *xs: Any,
) -> Any:
    _, ys = _scan_traced(
        _for_loop_body(f), None, xs, length, reverse, unroll, bar, where, _for_loop_carry, base
    )
    return ys


def _scan_call_traced(
    f: Callable[..., Any],
    length: int | None,
    reverse: bool,
    unroll: int | bool,
    bar: ProgressBar | None,
    base: int | None,
    where: str,
    init: Any,
    xs: Any,
) -> Any:
    return _scan_traced(
        _scan_body(f, where), init, xs, length, reverse, unroll, bar, where, _scan_carry, base
    )


# --- checkpointed scans: nested loops, each level rematerialised -------------------------


def _levels(n: int, base: int) -> tuple[int, int]:
    """``(depth, size)`` with ``size ** depth >= n``, ``depth = ceil(log_base n)``."""
    depth = 1
    while base**depth < n:
        depth += 1
    size = max(1, math.ceil(n ** (1 / depth)))
    while size**depth < n:
        size += 1
    return depth, size


def checkpointed_scan_of(
    step: Callable[[Any, Any], tuple[Any, Any]], carry: Any, xs: Any, n: int, base: int
) -> tuple[Any, Any]:
    """``lax.scan(step, carry, xs, length=n)`` as nested scans whose bodies are checkpointed.

    The ``n`` steps run as ``depth`` nested scans of ``size`` steps each (``size ** depth >=
    n``, extra steps masked out). The backward pass stores only the carries at each level and
    recomputes the rest: memory grows as ``depth * size`` carries instead of ``n``.
    """
    depth, size = _levels(n, base)
    if depth == 1:
        return jax.lax.scan(step, carry, xs, length=n)
    total = size**depth
    pad = total - n

    def padded(a: Any) -> Any:
        a = jnp.asarray(a)
        if pad:
            a = jnp.concatenate([a, jnp.zeros((pad, *a.shape[1:]), a.dtype)])
        return a.reshape((size,) * depth + a.shape[1:])

    index = jnp.arange(total, dtype=jnp.int32).reshape((size,) * depth)
    grid = (jax.tree.map(padded, xs), index)
    if pad:
        _, y_shape = jax.eval_shape(step, carry, _slices(xs))

        def masked(c: Any, xi: Any) -> tuple[Any, Any]:
            x, i = xi
            zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), y_shape)
            return jax.lax.cond(i < n, lambda: step(c, x), lambda: (c, zeros))

    else:

        def masked(c: Any, xi: Any) -> tuple[Any, Any]:
            return step(c, xi[0])

    def level(k: int) -> Callable[[Any, Any], tuple[Any, Any]]:
        if k == depth - 1:
            return functools.partial(jax.lax.scan, masked)
        inner = jax.checkpoint(level(k + 1), prevent_cse=False)
        return functools.partial(jax.lax.scan, inner)

    carry, ys = level(0)(carry, grid)
    ys = jax.tree.map(lambda y: y.reshape((total, *y.shape[depth:]))[:n], ys)
    return carry, ys


def _python_scan(
    body: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    xs: Any,
    length: int | None,
    reverse: bool,
    where: str,
) -> tuple[Any, Any] | None:
    """Under ``jax.disable_jit()``: the loop as a Python loop over concrete slices, as
    ``jax.lax.scan`` runs then (the body may call ``float(x)``; States are written as it goes).
    None when there is nothing to run (zero steps: the traced loop knows the output shapes)."""
    n = leading_length(xs, length, where)
    if n == 0:
        return None
    carry, ys = init, [None] * n
    for i in reversed(range(n)) if reverse else range(n):
        carry, ys[i] = body(carry, jax.tree.map(lambda a, i=i: a[i], xs))
    return carry, jax.tree.map(lambda *y: jnp.stack(y), *ys)


# --- public loops ------------------------------------------------------------------------


def _eager_loop(where: str, run: Callable[..., Any], fns: tuple[Any, ...], args: Any) -> Any:
    return sites.call(where, run, args, fns=fns)


def for_loop(
    f: Callable[..., Any],
    *xs: Any,
    length: int | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    pbar: ProgressBar | int | None = None,
) -> Any:
    """Loop ``f`` over the leading axis of ``xs``, carrying the States it writes.

    ``f(*x)`` is called with one slice of each of ``xs`` and returns that iteration's output;
    the outputs come back stacked. States ``f`` reads are inputs of the loop; states it writes
    are carried from one iteration to the next and written back once, after the loop. Equal to
    ``jax.lax.scan`` over the states' values; one compiled program per call signature when
    called eagerly.

    Args:
        f: the body; it may read and write States and draw from ``facade.random``.
        *xs: pytrees whose leaves share a leading axis.
        length: the number of iterations (required when there are no ``xs``).
        reverse: run from the last slice to the first (outputs keep the order of ``xs``).
        unroll: iterations unrolled per loop step (``True``: all).
        pbar: a :class:`ProgressBar`, or an int update frequency.

    Returns:
        The stacked outputs of ``f``.

    Raises:
        TypeError: ``f`` not callable, bad option types, or a State written with another
            structure, shape or dtype than it held on entry.
        ValueError: ``xs`` with different leading axes, or a ``length`` that disagrees.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> total = facade.State(jnp.array(0.0))
        >>> def step(x):
        ...     total.value = total.value + x
        ...     return total.value
        >>> facade.transform.for_loop(step, jnp.arange(1.0, 5.0))
        Array([ 1.,  3.,  6., 10.], dtype=float32)
        >>> total.value
        Array(10., dtype=float32)
    """
    where = "for_loop"
    _check_callable(f, "f", where)
    _check_int(length, "length", where, 0)
    _check_unroll(unroll, where)
    bar = as_progress_bar(pbar)

    if jax_config.disable_jit.value:
        done = _python_scan(_for_loop_body(f), None, xs, length, reverse, where)
        if done is not None:
            return done[1]

    def make(f: Any) -> Any:
        return functools.partial(_for_loop_traced, f, length, reverse, unroll, bar, None, where)

    return _eager_loop(where, make(f), (f,), xs)


def scan(
    f: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    xs: Any = None,
    length: int | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    pbar: ProgressBar | int | None = None,
) -> tuple[Any, Any]:
    """``jax.lax.scan`` of a stateful ``f(carry, x) -> (carry, y)``, carrying its written States.

    As :func:`for_loop`, with an explicit carry: returns ``(final_carry, stacked_ys)``.

    Raises:
        TypeError: ``f`` not callable or not returning a pair, a carry or a State whose
            structure, shape or dtype changes.
        ValueError: ``xs`` with different leading axes, or a ``length`` that disagrees.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> facade.transform.scan(lambda c, x: (c + x, c * x), 0.0, jnp.array([1.0, 2.0, 3.0]))
        (Array(6., dtype=float32), Array([0., 2., 9.], dtype=float32))
    """
    where = "scan"
    _check_callable(f, "f", where)
    _check_int(length, "length", where, 0)
    _check_unroll(unroll, where)
    bar = as_progress_bar(pbar)

    if jax_config.disable_jit.value:
        done = _python_scan(_scan_body(f, where), init, xs, length, reverse, where)
        if done is not None:
            return done

    def make(f: Any) -> Any:
        return functools.partial(_scan_call_traced, f, length, reverse, unroll, bar, None, where)

    return _eager_loop(where, make(f), (f,), (init, xs))  # type: ignore[no-any-return]


def checkpointed_for_loop(
    f: Callable[..., Any],
    *xs: Any,
    length: int | None = None,
    base: int = 16,
    pbar: ProgressBar | int | None = None,
) -> Any:
    """:func:`for_loop` whose reverse-mode gradient stores about ``base * log_base(T)`` carries.

    The ``T`` iterations run as nested loops, each level rematerialised on the backward pass
    (``jax.checkpoint``): less memory for backpropagation through long simulations, at the
    price of recomputing the forward pass about ``log_base(T)`` times. Values and gradients
    equal :func:`for_loop`'s.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> facade.transform.checkpointed_for_loop(lambda x: x * 2, jnp.arange(4.0), base=2)
        Array([0., 2., 4., 6.], dtype=float32)
    """
    where = "checkpointed_for_loop"
    _check_callable(f, "f", where)
    _check_int(length, "length", where, 0)
    _check_int(base, "base", where, 2)
    bar = as_progress_bar(pbar)

    def make(f: Any) -> Any:
        return functools.partial(_for_loop_traced, f, length, False, 1, bar, base, where)

    return _eager_loop(where, make(f), (f,), xs)


def checkpointed_scan(
    f: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    xs: Any = None,
    length: int | None = None,
    base: int = 16,
    pbar: ProgressBar | int | None = None,
) -> tuple[Any, Any]:
    """:func:`scan` with the memory-saving gradient of :func:`checkpointed_for_loop`.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> facade.transform.checkpointed_scan(lambda c, x: (c + x, c * x), 0.0, jnp.ones(3))
        (Array(3., dtype=float32), Array([0., 1., 2.], dtype=float32))
    """
    where = "checkpointed_scan"
    _check_callable(f, "f", where)
    _check_int(length, "length", where, 0)
    _check_int(base, "base", where, 2)
    bar = as_progress_bar(pbar)

    def make(f: Any) -> Any:
        return functools.partial(_scan_call_traced, f, length, False, 1, bar, base, where)

    return _eager_loop(where, make(f), (f,), (init, xs))  # type: ignore[no-any-return]


# --- while loops -------------------------------------------------------------------------


class _WhileParts:
    """``cond_fun`` and ``body_fun`` made pure over the union of the states they touch."""

    def __init__(
        self, cond_fun: Callable[[Any], Any], body_fun: Callable[[Any], Any], init: Any, where: str
    ):
        d_cond, pred = discover(cond_fun, (init,), {})
        if d_cond.writes:
            names = ", ".join(s._describe() for s in d_cond.writes)
            raise TransformArgumentError(
                f"{where}: cond_fun writes {names}; a loop condition may only read States "
                "(write them in body_fun)"
            )
        _check_predicate(pred, f"{where}: cond_fun")
        d_body, out = discover(body_fun, (init,), {})
        if not same_avals(init, out):
            raise TypeError(
                f"{where}: body_fun must return a value with the structure, shapes and dtypes "
                f"of init_val: it returned {describe_avals(out)} for {describe_avals(init)}"
            )
        d = Discovery.union([d_cond, d_body])
        self.layout = Carry(d)
        self.cond = Pure(cond_fun, d)
        self.body = Pure(body_fun, d)
        self.where = where
        self.fixed, self.carried0 = self.layout.read()

    def predicate(self, carry: Any) -> Any:
        carried, val = carry
        pred, _ = self.cond(self.layout.merge(self.fixed, carried), val)
        return jnp.asarray(pred).reshape(()).astype(bool)

    def step(self, carry: Any) -> Any:
        carried, val = carry
        val, new_carried = self.body(self.layout.merge(self.fixed, carried), val)
        check_carried(self.layout.carried, carried, new_carried, self.where)
        return (new_carried, val)

    def finish(self, final: Any) -> Any:
        for pure in (self.cond, self.body):
            pure.check_traces(self.where)
        carried, val = final
        write_values(self.layout.carried, carried)
        return val


def _check_predicate(pred: Any, what: str) -> None:
    leaves = jax.tree.leaves(pred)
    if len(leaves) != 1 or int(np.prod(np.shape(leaves[0]))) != 1:
        raise TypeError(f"{what} must return a scalar boolean, got {describe_avals(pred)}")


def _while_traced(cond_fun: Any, body_fun: Any, where: str, init_val: Any) -> Any:
    parts = _WhileParts(cond_fun, body_fun, init_val, where)
    final = jax.lax.while_loop(parts.predicate, parts.step, (parts.carried0, init_val))
    return parts.finish(final)


def while_loop(
    cond_fun: Callable[[Any], Any], body_fun: Callable[[Any], Any], init_val: Any
) -> Any:
    """``jax.lax.while_loop`` of stateful functions, carrying the States ``body_fun`` writes.

    ``cond_fun(val)`` may read States; ``body_fun(val)`` may read and write them. Forward-mode
    differentiable; for reverse mode (``grad``), use :func:`bounded_while_loop`.

    Raises:
        TypeError: a function not callable, a non-scalar condition, a condition that writes a
            State, or a value or State whose structure, shape or dtype changes.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> steps = facade.State(jnp.array(0))
        >>> def body(x):
        ...     steps.value = steps.value + 1
        ...     return x * 2.0
        >>> facade.transform.while_loop(lambda x: x < 100.0, body, 1.0), int(steps.value)
        (Array(128., dtype=float32, weak_type=True), 7)
    """
    where = "while_loop"
    _check_callable(cond_fun, "cond_fun", where)
    _check_callable(body_fun, "body_fun", where)

    def make(cond_fun: Any, body_fun: Any) -> Any:
        return functools.partial(_while_traced, cond_fun, body_fun, where)

    return _eager_loop(where, make(cond_fun, body_fun), (cond_fun, body_fun), (init_val,))


def _bounded_traced(cond_fun: Any, body_fun: Any, max_steps: int, base: int, init_val: Any) -> Any:
    where = "bounded_while_loop"
    parts = _WhileParts(cond_fun, body_fun, init_val, where)

    # Each step runs the body only while the condition has held; once it fails, ``active``
    # turns off and whole blocks of remaining steps are skipped.
    def step(carry: Any, _: Any) -> tuple[Any, None]:
        inner, active = carry
        go = active & parts.predicate(inner)
        inner = jax.lax.cond(go, parts.step, lambda c: c, inner)
        return (inner, go), None

    carry = (parts.carried0, init_val)
    if max_steps == 0:
        return parts.finish(carry)
    (final, _), _ = checkpointed_scan_of(
        _skip_when_inactive(step), (carry, jnp.array(True)), None, max_steps, base
    )
    return parts.finish(final)


def _skip_when_inactive(step: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def guarded(carry: Any, x: Any) -> Any:
        return jax.lax.cond(carry[1], lambda: step(carry, x), lambda: (carry, None))

    return guarded


def bounded_while_loop(
    cond_fun: Callable[[Any], Any],
    body_fun: Callable[[Any], Any],
    init_val: Any,
    *,
    max_steps: int,
    base: int = 16,
) -> Any:
    """A while loop of at most ``max_steps`` iterations, reverse-mode differentiable.

    Runs as nested scans (``base`` steps per level, each level rematerialised on the backward
    pass) in which an iteration does nothing once ``cond_fun`` has failed. Equal to
    :func:`while_loop` when it stops within ``max_steps``.

    Raises:
        TypeError: as :func:`while_loop`; ``max_steps`` or ``base`` not ints.
        ValueError: ``max_steps`` negative or ``base`` below 2.

    Example:
        >>> import facade
        >>> facade.transform.bounded_while_loop(lambda v: v < 1000, lambda v: v * 2, 1,
        ...                                     max_steps=5)
        Array(32, dtype=int32, weak_type=True)
    """
    where = "bounded_while_loop"
    _check_callable(cond_fun, "cond_fun", where)
    _check_callable(body_fun, "body_fun", where)
    _check_int(max_steps, "max_steps", where, 0)
    if max_steps is None:
        raise TypeError(f"{where}: max_steps must be an int, got None")
    _check_int(base, "base", where, 2)

    def make(cond_fun: Any, body_fun: Any) -> Any:
        return functools.partial(_bounded_traced, cond_fun, body_fun, max_steps, base)

    return _eager_loop(where, make(cond_fun, body_fun), (cond_fun, body_fun), (init_val,))


__all__ = [
    "bounded_while_loop",
    "checkpointed_for_loop",
    "checkpointed_scan",
    "for_loop",
    "scan",
    "while_loop",
]
