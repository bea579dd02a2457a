"""Eager calls of the control-flow transforms: one compiled program per call signature.

A loop or branch called outside any facade trace is itself a stateful function of its
operands; it is compiled through a :class:`~facade._core.lowering.Lowering` found again through the
site cache, so calling the same ``for_loop(step, xs)`` site again (even with a new lambda over
the same objects) reuses its program. Inside a facade trace it is simply traced in place.

The user's functions of a site can be *lifted* (``Lifted``): arrays their closures hold become
arguments of the compiled program instead of constants baked into it, and the site is keyed by
their shapes and dtypes. So the common

    def run(inputs):
        return for_loop(lambda i: model(inputs[i]), indices)

compiles once, not on every call with new ``inputs``.
"""

from __future__ import annotations

import dis
import functools
import types
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from . import keys as _sites
from .lowering import Lowering, call_program
from .._state import active_frames


class Lifted:
    """The user functions of a call site and how to build its ``run`` from them.

    Args:
        fns: the user's functions (a loop body, branches, ...).
        make_run: ``make_run(*fns)`` returns the site's ``run`` for those functions.
    """

    __slots__ = ("fns", "make_run")

    def __init__(self, fns: Sequence[Callable[..., Any]], make_run: Callable[..., Any]):
        self.fns, self.make_run = tuple(fns), make_run


@functools.lru_cache(maxsize=1024)
def _rebound_names(code: types.CodeType) -> frozenset[str]:
    """Free variables ``code`` assigns (``nonlocal``): their cells must stay the user's own."""
    return frozenset(
        ins.argval
        for ins in dis.get_instructions(code)
        if ins.opname in ("STORE_DEREF", "DELETE_DEREF")
    )


def _lift(fn: Any) -> tuple[Any, list[Any], Callable[[Sequence[Any]], Any]]:
    """``(key, arrays, rebuild)``: ``fn``'s site key with its closure's arrays keyed by shape
    and dtype, those arrays, and ``rebuild(values)``, ``fn`` with them replaced by ``values``."""
    if not isinstance(fn, types.FunctionType) or not fn.__closure__:
        return _sites.function_key(fn), [], lambda values: fn
    rebound = _rebound_names(fn.__code__)
    where: list[int] = []
    arrays: list[Any] = []
    for i, (name, cell) in enumerate(zip(fn.__code__.co_freevars, fn.__closure__, strict=True)):
        try:
            x = cell.cell_contents
        except ValueError:
            continue
        if isinstance(x, jax.Array | np.ndarray) and name not in rebound:
            where.append(i)
            arrays.append(x)
    if not arrays:
        return _sites.function_key(fn), [], lambda values: fn
    key = _sites.function_key(fn, lifted=set(where))

    def rebuild(values: Sequence[Any]) -> Any:
        closure = list(fn.__closure__ or ())
        for i, v in zip(where, values, strict=True):
            closure[i] = types.CellType(v)
        g = types.FunctionType(
            fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, tuple(closure)
        )
        g.__kwdefaults__ = fn.__kwdefaults__
        g.__qualname__ = fn.__qualname__
        return g

    return key, arrays, rebuild


# Lowerings of recent sites whose functions have no closure, by the functions' identity: the
# common ``for_loop(step, xs)`` in a Python loop skips building its site key on every call.
_RECENT: dict[Any, tuple[tuple[Callable[[], Any], ...], Lowering]] = {}
_RECENT_MAX = 256


def _plain_lowering(site: Any, static_argnums: Sequence[int]) -> Lowering:
    return _sites.SITES.get(site, lambda: Lowering(call_program(), static_argnums=static_argnums))


def call(
    key: Any,
    run: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    static_argnums: Sequence[int] = (),
    lifted: Lifted | None = None,
) -> Any:
    """``run(*args, **kwargs)``: traced in place inside a facade trace, else compiled.

    ``key`` identifies the call site (see ``_sites``): the transform and the options that
    ``run`` closes over; with ``lifted``, the user's functions are keyed (and their closed-over
    arrays passed) here, and must not be part of ``key``.
    """
    kwargs = kwargs or {}
    if active_frames():
        return run(*args, **kwargs)
    if lifted is None:
        return _plain_lowering((key, tuple(static_argnums)), static_argnums)(run, args, kwargs)
    fns = lifted.fns
    closure_free = all(type(f) is types.FunctionType and f.__closure__ is None for f in fns)
    if closure_free:
        memo = (key, tuple(map(id, fns)), tuple(static_argnums))
        hit = _RECENT.get(memo)
        if hit is not None and all(r() is f for r, f in zip(hit[0], fns, strict=True)):
            return hit[1](run, args, kwargs)
    parts = [_lift(f) for f in fns]
    site = (key, tuple(k for k, _, _ in parts), tuple(static_argnums))
    counts = [len(arrays) for _, arrays, _ in parts]
    if not any(counts):
        lowering = _plain_lowering(site, static_argnums)
        if closure_free:
            if len(_RECENT) >= _RECENT_MAX:
                _RECENT.clear()
            _RECENT[memo] = (tuple(weakref.ref(f) for f in fns), lowering)
        return lowering(run, args, kwargs)
    make_run = lifted.make_run
    lead = sum(counts)

    def lifted_run(*a: Any, **kw: Any) -> Any:
        # The first ``lead`` arguments are the closed-over arrays, function by function.
        fns, start = [], 0
        for (_, _, rebuild), n in zip(parts, counts, strict=True):
            fns.append(rebuild(a[start : start + n]))
            start += n
        return make_run(*fns)(*a[lead:], **kw)

    shifted = tuple(lead + i if i >= 0 else i for i in static_argnums)
    lowering = _sites.SITES.get(
        (*site, "lifted"), lambda: Lowering(call_program(), static_argnums=shifted)
    )
    closed = [x for _, arrays, _ in parts for x in arrays]
    return lowering(lifted_run, (*closed, *args), kwargs)
