"""``grad_states``: one State, a sequence or a mapping of them, flattened once."""

from __future__ import annotations

from typing import Any

import jax

from .._state import State


def flatten_grad_states(
    grad_states: Any, name: str = "grad_states"
) -> tuple[tuple[State, ...], Any]:
    """Return the states of ``grad_states`` in order and the treedef to rebuild its structure.

    Raises:
        TypeError: an item that is not a State (``None`` included).
        ValueError: the same State twice.
    """
    if grad_states is None:
        return (), None
    flat = grad_states.values() if isinstance(grad_states, dict) else grad_states
    if isinstance(flat, list | tuple | type({}.values())) and all(
        isinstance(s, State) for s in flat
    ):
        # The common case, a flat container of States, without a Python callback per node.
        leaves, treedef = jax.tree.flatten(grad_states)
    else:
        leaves, treedef = jax.tree.flatten(grad_states, is_leaf=lambda x: x is None)
        for leaf in leaves:
            if not isinstance(leaf, State):
                raise TypeError(
                    f"{name} must be a State, a sequence or a dict of States; it holds a "
                    f"{type(leaf).__name__}: {leaf!r}"
                )
    if len({id(s) for s in leaves}) != len(leaves):
        seen: set[int] = set()
        for s in leaves:
            if id(s) in seen:
                raise ValueError(f"{name} lists {s._describe()} more than once")
            seen.add(id(s))
    return tuple(leaves), treedef


def unread_error(state: State, fn: Any) -> ValueError:
    name = fn if isinstance(fn, str) else getattr(fn, "__name__", repr(fn))
    return ValueError(
        f"grad_states holds {state._describe()}, which {name!r} never reads, so its gradient "
        "is undefined; remove it from grad_states or pass check_states=False"
    )
