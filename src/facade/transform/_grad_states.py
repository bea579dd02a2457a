"""``grad_states``: one State, a sequence or a mapping of them, flattened once."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from .._state import State


def flatten_grad_states(
    grad_states: Any, name: str = "grad_states"
) -> tuple[tuple[State, ...], Any]:
    """Return the distinct states of ``grad_states`` in order and the treedef to rebuild its
    structure (a :class:`RepeatedStates` when a State is listed more than once).

    Raises:
        TypeError: an item that is not a State (``None`` included).
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
        distinct = list(dict.fromkeys(leaves))
        where = {s: j for j, s in enumerate(distinct)}
        return tuple(distinct), RepeatedStates(treedef, [where[s] for s in leaves])
    return tuple(leaves), treedef


class RepeatedStates:
    """The structure of a ``grad_states`` that lists a State more than once.

    It stands in for the treedef: the transform differentiates one leaf per listed position
    (so each key gets the whole gradient, as brainstate does), and the function sees one value
    per State: the first listed leaf, plus each repeat's difference from its own value (zero,
    but its derivative is carried).
    """

    def __init__(self, treedef: Any, index: list[int]):
        self.treedef, self.index = treedef, index
        self.num_leaves = max(index) + 1  # distinct States

    def unflatten(self, values: Any) -> Any:
        """The tree of the listed positions, from one value per distinct State."""
        return self.treedef.unflatten([values[j] for j in self.index])

    def flatten_up_to(self, tree: Any) -> list[Any]:
        """One value per distinct State from a tree of the listed positions."""
        merged: list[Any] = [None] * self.num_leaves
        for leaf, j in zip(self.treedef.flatten_up_to(tree), self.index, strict=True):
            merged[j] = (
                leaf if merged[j] is None else merged[j] + (leaf - jax.lax.stop_gradient(leaf))
            )
        return merged

    def sum_up_to(self, tree: Any) -> list[Any]:
        """One tangent per distinct State: the tangents of its listed positions, summed."""
        total: list[Any] = [None] * self.num_leaves
        for leaf, j in zip(self.treedef.flatten_up_to(tree), self.index, strict=True):
            total[j] = leaf if total[j] is None else jax.tree.map(jnp.add, total[j], leaf)
        return total

    def __repr__(self) -> str:
        return repr(self.treedef)


def unread_error(state: State, fn: Any) -> ValueError:
    name = fn if isinstance(fn, str) else getattr(fn, "__name__", repr(fn))
    return ValueError(
        f"grad_states holds {state._describe()}, which {name!r} never reads, so its gradient "
        "is undefined; remove it from grad_states or pass check_states=False"
    )
