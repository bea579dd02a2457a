"""State-aware ``eval_shape``: the shapes a stateful call would produce, computing nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from .._core.bridge import OUTER, discover
from .._state import ARRAY_TYPES, Frame, State, abstract, is_abstract, peek


def _stand_in(state: State, value: Any) -> Any:
    """A State holding only shapes (an abstract model from an earlier ``eval_shape``) reads as
    zeros of those shapes: values do not matter here, shapes do. Others read their value."""
    if not is_abstract(value):
        return OUTER
    return jax.tree.map(lambda s: jax.numpy.zeros(s.shape, s.dtype), value)


def eval_shape(
    f: Callable[..., Any], *args: Any, return_state_shapes: bool = False, **kwargs: Any
) -> Any:
    """The output of ``f(*args, **kwargs)`` as ``jax.ShapeDtypeStruct`` leaves, run abstractly.

    No computation runs and no State changes. States the call creates (a model built inside,
    ``lambda: facade.nn.Linear(3, 4)``) are returned with abstract values: shapes and dtypes,
    no memory; such an abstract model can be the input of another ``eval_shape``. Objects other
    than arrays in the output are returned as they are.

    Args:
        f: the function; it may read, write and create States.
        *args: its positional arguments (arrays, ``jax.ShapeDtypeStruct``s or other objects).
        return_state_shapes: also return ``{state: shape}`` for every existing State the call
            touches (the shape of its value at the end of the call), as ``(state_shapes, out)``.
        **kwargs: its keyword arguments.

    Raises:
        TypeError: ``f`` not callable.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> out = facade.transform.eval_shape(lambda x: x * 2.0, jnp.ones(3))
        >>> out.shape, out.dtype
        ((3,), dtype('float32'))
    """
    if not callable(f):
        raise TypeError(f"eval_shape: f must be callable, got {type(f).__name__}")
    kept: dict[str, Any] = {}
    ends: list[Any] = []

    def finish(fr: Frame, out: Any) -> None:
        touched = [s for s in fr.touched if s not in fr.created]
        ends.append([fr.values[s] if s in fr.values else peek(s) for s in touched])
        kept["created"], kept["out"], kept["touched"] = list(fr.created), out, touched

    def under(probe: Callable[..., Any]) -> Callable[..., Any]:
        # The touched States' values at the end of the call leave the probe beside its output,
        # so that eval_shape describes them (weak types included) as it describes the output.
        return lambda a, kw: (probe(a, kw), ends.pop())

    _, (shapes, state_shapes) = discover(
        f, args, kwargs, values=_stand_in, under=under, finish=finish
    )
    for s in kept["created"]:
        s._value = abstract(s._value)
    # Array leaves become their shapes; other objects (a model built inside) are kept.
    out = jax.tree.map(
        lambda x, shape: shape if isinstance(x, ARRAY_TYPES) else x,
        kept["out"],
        shapes,
        is_leaf=lambda x: x is None,
    )
    if not return_state_shapes:
        return out
    return dict(zip(kept["touched"], state_shapes, strict=True)), out
