"""Split a pytree into the leaves JAX can differentiate and the ones it must carry untouched."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

# Leaves JAX treats as arrays. Integer and boolean ones stay here on purpose: JAX decides
# what to do with them (an error unless ``allow_int``), and we follow JAX.
ARRAY_TYPES = (jax.Array, np.ndarray, np.generic, float, complex, int, bool)


def is_array_leaf(x: Any) -> bool:
    return isinstance(x, ARRAY_TYPES)


def _is_none(x: Any) -> bool:
    return x is None


def partition(tree: Any) -> tuple[Any, Any]:
    """Return ``(dynamic, static)``: two trees of the same shape with ``None`` in the holes.

    ``dynamic`` holds the array leaves, ``static`` everything else (functions, strings,
    arbitrary objects), so ``dynamic`` can go through a JAX transform and ``static`` be closed
    over. When there is nothing static, ``static`` is ``None`` and ``dynamic`` is ``tree``.
    """
    leaves, treedef = jax.tree.flatten(tree)
    if all(isinstance(x, ARRAY_TYPES) for x in leaves):
        return tree, None
    dynamic = [x if isinstance(x, ARRAY_TYPES) else None for x in leaves]
    static = [None if isinstance(x, ARRAY_TYPES) else x for x in leaves]
    return jax.tree.unflatten(treedef, dynamic), jax.tree.unflatten(treedef, static)


def combine(dynamic: Any, static: Any) -> Any:
    """Inverse of :func:`partition`."""
    if static is None:
        return dynamic
    treedef: Any
    dyn_leaves, treedef = jax.tree.flatten(dynamic, is_leaf=_is_none)
    static_leaves = treedef.flatten_up_to(static)
    merged = [s if d is None else d for d, s in zip(dyn_leaves, static_leaves, strict=True)]
    return jax.tree.unflatten(treedef, merged)
