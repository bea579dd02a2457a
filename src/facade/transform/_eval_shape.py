"""State-aware ``eval_shape``: the shapes a stateful call would produce, computing nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from .._core.bridge import Signature, fresh_jax_traces
from .._state import ARRAY_TYPES, State, abstract, frame, is_abstract, peek


class _StandIns(dict):  # type: ignore[type-arg]
    """A frame's values in which a State holding only shapes (an abstract model from an earlier
    ``eval_shape``) reads as zeros of those shapes: values do not matter here, shapes do."""

    def __contains__(self, state: object) -> bool:
        return dict.__contains__(self, state) or (
            isinstance(state, State) and is_abstract(state._value)
        )

    def __missing__(self, state: State) -> Any:
        value = jax.tree.map(lambda s: jax.numpy.zeros(s.shape, s.dtype), state._value)
        self[state] = value
        return value


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
    sig = Signature(args, kwargs)
    args_dyn, kw_dyn = sig.split(args, kwargs)
    kept: dict[str, Any] = {}

    def probe(a: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        fresh_jax_traces()
        real_args, real_kwargs = sig.rebuild(a, kw)
        with frame(_StandIns()) as fr:
            try:
                out = f(*real_args, **real_kwargs)
                touched = [s for s in fr.touched if s not in fr.created]
                end_values = [fr.values[s] if s in fr.values else peek(s) for s in touched]
            finally:
                kept["created"] = list(fr.created)
                fr.values = {}
        kept["out"], kept["touched"] = out, touched
        arrays = jax.tree.map(lambda x: x if isinstance(x, ARRAY_TYPES) else None, out)
        return arrays, end_values

    shapes, state_shapes = jax.eval_shape(probe, args_dyn, kw_dyn)
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
    touched: list[State] = kept["touched"]
    return dict(zip(touched, state_shapes, strict=True)), out
