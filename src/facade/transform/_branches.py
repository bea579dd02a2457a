"""State-aware branches: ``cond``, ``switch`` and ``ifelse``.

Every branch is made pure over the union of the states the branches touch: a state one branch
writes is carried through the others unchanged, so whichever branch runs, the same states come
out and are written back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._core import sites
from .._core.bridge import (
    Carry,
    Discovery,
    Pure,
    Signature,
    check_carried,
    describe_avals,
    discover,
    same_avals,
    write_values,
)
from ._errors import TransformArgumentError


def _check_branches(branches: Any, where: str, minimum: int) -> tuple[Callable[..., Any], ...]:
    if isinstance(branches, str) or not isinstance(branches, Sequence):
        raise TypeError(f"{where}: branches must be a sequence of callables, got {branches!r}")
    for i, b in enumerate(branches):
        if not callable(b):
            raise TypeError(f"{where}: branches[{i}] must be callable, got {type(b).__name__}")
    if len(branches) < minimum:
        raise ValueError(f"{where}: needs at least {minimum} branches, got {len(branches)}")
    return tuple(branches)


def _scalar(x: Any, what: str) -> Any:
    if np.shape(x) != ():
        raise TypeError(f"{what} must be a scalar, got shape {np.shape(x)}")
    return x


def _traced(
    branches: Sequence[Callable[..., Any]], names: Sequence[str], where: str
) -> Callable[..., Any]:
    """``run(index, *operands)``: ``lax.switch`` over the branches made pure."""

    def run(index: Any, *operands: Any) -> Any:
        found = [discover(b, operands, {}) for b in branches]
        first_out = found[0][1]
        for name, (_, out) in zip(names[1:], found[1:], strict=True):
            if not same_avals(first_out, out):
                raise TypeError(
                    f"{where}: every branch must return the same structure, shapes and dtypes: "
                    f"{names[0]} returns {describe_avals(first_out)}, {name} returns "
                    f"{describe_avals(out)}"
                )
        d = Discovery.union([d for d, _ in found])
        layout = Carry(d)
        fixed, carried = layout.read()
        sig = Signature(operands, {})
        ops_dyn, _ = sig.split(operands, {})
        pures = [Pure(b, d, sig) for b in branches]

        def pure_branch(pure: Pure) -> Callable[..., Any]:
            def branch(fixed: Any, carried: Any, *ops: Any) -> Any:
                out, new_carried = pure(layout.merge(fixed, carried), *ops)
                check_carried(layout.carried, carried, new_carried, where)
                return out, new_carried

            return branch

        out, new_carried = jax.lax.switch(
            index, [pure_branch(p) for p in pures], fixed, carried, *ops_dyn
        )
        for pure in pures:
            pure.check_traces(where)
        write_values(layout.carried, new_carried)
        return out

    return run


def _eager_branches(
    key: Any, make: Callable[..., Any], branches: Sequence[Any], args: tuple[Any, ...]
) -> Any:
    """Call the branches' transform built by ``make(*branches)``, called anew."""
    return sites.call(key, make(*branches), args, fns=branches)


def _check_pred(pred: Any, where: str) -> None:
    """A predicate is a boolean or real number (or a scalar array of one), as in ``lax.cond``."""
    try:
        if pred is None:  # jnp would read it as a float
            raise TypeError
        dtype = jnp.result_type(pred)
    except (TypeError, ValueError):
        raise TransformArgumentError(
            f"{where}: pred must be a scalar boolean or number, got {type(pred).__name__}"
        ) from None
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise TransformArgumentError(
            f"{where}: pred must be a boolean or real number, got the complex {pred!r}; compare "
            "it first (e.g. abs(pred) > 0)"
        )


def _with_pred(run: Callable[..., Any], pred: Any, *ops: Any) -> Any:
    return run((jnp.asarray(pred) != 0).astype(jnp.int32), *ops)


def _with_conditions(run: Callable[..., Any], runtime_check: bool, flags: Any, *ops: Any) -> Any:
    flags = jnp.stack([jnp.asarray(c).astype(bool) for c in flags])
    if runtime_check:
        jax.debug.callback(_exactly_one, flags)
    index = jnp.where(jnp.any(flags), jnp.argmax(flags), len(flags) - 1)
    return run(index, *ops)


def cond(
    pred: Any, true_fun: Callable[..., Any], false_fun: Callable[..., Any], *operands: Any
) -> Any:
    """Run ``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``, with States.

    Both branches are traced; the States either writes are written back after the branch that
    runs (unchanged by the other). Equal to ``jax.lax.cond`` over the states' values.

    Args:
        pred: a scalar; numbers count as True when non-zero.
        true_fun: the branch run when ``pred`` holds; it may read and write States.
        false_fun: the other branch.
        *operands: passed to the branch.

    Raises:
        TypeError: a branch not callable, a non-scalar ``pred``, branches returning different
            structures, shapes or dtypes, or a State written with another shape or dtype.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> count = facade.State(jnp.array(0))
        >>> def up(x):
        ...     count.value = count.value + 1
        ...     return x + 1
        >>> facade.transform.cond(True, up, lambda x: x - 1, 3), int(count.value)
        (Array(4, dtype=int32, weak_type=True), 1)
    """
    where = "cond"
    true_fun, false_fun = _check_branches((true_fun, false_fun), where, 2)
    _check_pred(pred, where)
    _scalar(pred, f"{where}: pred")

    def make(false_fun: Any, true_fun: Any) -> Any:
        run = _traced((false_fun, true_fun), ("false_fun", "true_fun"), where)
        return functools.partial(_with_pred, run)

    return _eager_branches((where,), make, (false_fun, true_fun), (pred, *operands))


def switch(index: Any, branches: Sequence[Callable[..., Any]], *operands: Any) -> Any:
    """Run ``branches[index](*operands)`` with States (``index`` clamped into range).

    Raises:
        TypeError: ``index`` not a scalar integer, a branch not callable, branches returning
            different structures, shapes or dtypes.
        ValueError: no branches.

    Example:
        >>> import facade
        >>> branches = (lambda x: x - 1, lambda x: x, lambda x: x + 1)
        >>> facade.transform.switch(2, branches, 3)
        Array(4, dtype=int32, weak_type=True)
    """
    where = "switch"
    branches = _check_branches(branches, where, 1)
    _scalar(index, f"{where}: index")
    dtype = jnp.result_type(index)
    if isinstance(index, bool) or not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"{where}: index must be an integer, got {type(index).__name__} {dtype}")
    names = [f"branches[{i}]" for i in range(len(branches))]

    def make(*branches: Any) -> Any:
        return _traced(branches, names, where)

    return _eager_branches((where, len(branches)), make, branches, (index, *operands))


def _exactly_one(flags: Any) -> None:
    if int(np.sum(np.asarray(flags))) != 1:
        raise ValueError(
            f"ifelse: exactly one condition must be True (check_cond=True), got {np.asarray(flags)}"
        )


def ifelse(
    conditions: Sequence[Any],
    branches: Sequence[Callable[..., Any]],
    *operands: Any,
    check_cond: bool = True,
) -> Any:
    """``if``/``elif``/``else`` over States: run the branch whose condition holds.

    With ``check_cond`` (the default) exactly one condition must be True: checked before the
    call when the conditions are concrete, else when the compiled program runs. With
    ``check_cond=False`` the first True condition wins, and the last branch runs when none is.

    Raises:
        TypeError: conditions not scalars, branches not callable or returning different
            structures.
        ValueError: no branches, a condition count that differs, or (with
            ``check_cond``) not exactly one True condition.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> a = jnp.asarray(7.0)
        >>> facade.transform.ifelse([a > 5, (a > 0) & (a <= 5), a <= 0],
        ...                         [lambda: 2.0, lambda: 1.0, lambda: 0.0])
        Array(2., dtype=float32, weak_type=True)
    """
    where = "ifelse"
    branches = _check_branches(branches, where, 1)
    if isinstance(conditions, str) or not isinstance(conditions, Sequence | jax.Array):
        raise TypeError(f"{where}: conditions must be a sequence, got {conditions!r}")
    if len(conditions) != len(branches):
        raise ValueError(
            f"{where}: {len(conditions)} conditions for {len(branches)} branches; give one "
            "condition per branch"
        )
    for i, c in enumerate(conditions):
        _scalar(c, f"{where}: conditions[{i}]")
    if not isinstance(check_cond, bool):
        raise TypeError(f"{where}: check_cond must be a bool, got {check_cond!r}")
    concrete = not any(isinstance(c, jax.core.Tracer) for c in conditions)
    if check_cond and concrete:
        _exactly_one([bool(c) for c in conditions])
    names = [f"branches[{i}]" for i in range(len(branches))]
    runtime_check = check_cond and not concrete

    def make(*branches: Any) -> Any:
        return functools.partial(_with_conditions, _traced(branches, names, where), runtime_check)

    key = (where, len(branches), runtime_check)
    return _eager_branches(key, make, branches, (list(conditions), *operands))


__all__ = ["cond", "ifelse", "switch"]
