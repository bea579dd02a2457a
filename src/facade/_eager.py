"""Eager calls of the control-flow transforms: one compiled program per call signature.

A loop or branch called outside any facade trace is itself a stateful function of its
operands; it is compiled through a :class:`~facade._lowering.Lowering` found again through the
site cache, so calling the same ``for_loop(step, xs)`` site again (even with a new lambda over
the same objects) reuses its program. Inside a facade trace it is simply traced in place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import _sites
from ._lowering import Lowering, call_program
from ._state import active_frames


def call(
    key: Any,
    run: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    static_argnums: Sequence[int] = (),
) -> Any:
    """``run(*args, **kwargs)``: traced in place inside a facade trace, else compiled.

    ``key`` identifies the call site (see ``_sites``): the transform, the user's functions
    and the options that ``run`` closes over.
    """
    kwargs = kwargs or {}
    if active_frames():
        return run(*args, **kwargs)
    lowering = _sites.SITES.get(
        (key, tuple(static_argnums)),
        lambda: Lowering(call_program(), static_argnums=static_argnums),
    )
    return lowering(run, args, kwargs)
