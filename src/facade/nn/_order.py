"""``call_order``: the level at which a hook runs among the collective calls (``init_all_states``).

Its own module because both ``_dynamics`` and ``_delay`` mark their hooks with it.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["MAX_ORDER", "call_order"]

#: ``call_order`` levels are in ``[0, MAX_ORDER)``, as in brainstate.
MAX_ORDER = 10


def call_order(level: int = 0, check_order_boundary: bool = True) -> Callable[[Callable], Callable]:
    """Mark a method's order among the collective calls (``init_all_states``, ...): lower first.

    Raises:
        ValueError: ``check_order_boundary`` and ``level`` outside ``[0, MAX_ORDER)``.

    Example:
        >>> import facade
        >>> @facade.nn.call_order(2)
        ... def reset_state(self): ...
        >>> reset_state.call_order
        2
    """
    if check_order_boundary and not 0 <= level < MAX_ORDER:
        raise ValueError(f'"level" must be an integer in [0, {MAX_ORDER}), but got {level}.')

    def mark(fun: Callable) -> Callable:
        fun.call_order = level  # type: ignore[attr-defined]
        return fun

    return mark
