"""``init_all_states`` and ``reset_all_states``: call a hook on every module of a model."""

from __future__ import annotations

import typing

from ._checks import typechecked
from ._module import _node_predicate, walk_modules

__all__ = ["init_all_states", "reset_all_states"]

T = typing.TypeVar("T")


def _call_all(
    target: typing.Any, hook: str, args: tuple, kwargs: dict, exclude: typing.Any
) -> None:
    skip = None if exclude is None else _node_predicate(exclude)
    ordered = []
    for path, module, _ in walk_modules(target):
        if skip is None or not skip(path, module):
            fn = getattr(module, hook)
            # As brainstate: hooks marked with nn.call_order(level) run after all unmarked ones,
            # by level (ties in walk order).
            if hasattr(fn, "call_order"):
                ordered.append(fn)
            else:
                fn(*args, **kwargs)
    for fn in sorted(ordered, key=lambda f: f.call_order):
        fn(*args, **kwargs)


@typechecked
def init_all_states(
    target: T, *init_args: typing.Any, node_to_exclude: typing.Any = None, **init_kwargs: typing.Any
) -> T:
    """Call ``init_state(*init_args, **init_kwargs)`` on every module in ``target``.

    Sub-modules come before the modules that hold them (so a parent's ``init_state`` sees its
    children's new states), each module once, siblings in sorted path order.

    Args:
        target: a Module, or any object or container holding modules.
        *init_args: positional arguments for every ``init_state``.
        node_to_exclude: a node filter (a Module subclass, a predicate ``(path, module) ->
            bool``, a tuple of them): the matching modules are skipped (not their children).
        **init_kwargs: keyword arguments for every ``init_state``, e.g. ``batch_size=32``.

    Returns:
        ``target``.

    Raises:
        TypeError: ``node_to_exclude`` is not a valid node filter; whatever a hook raises.

    Example:
        >>> import facade
        >>> cell = facade.nn.GRUCell(3, 4)
        >>> facade.nn.init_all_states(cell, batch_size=2) is cell
        True
        >>> cell.h.value.shape
        (2, 4)
    """
    _call_all(target, "init_state", init_args, init_kwargs, node_to_exclude)
    return target


@typechecked
def reset_all_states(
    target: T,
    *reset_args: typing.Any,
    node_to_exclude: typing.Any = None,
    **reset_kwargs: typing.Any,
) -> T:
    """Call ``reset_state(*reset_args, **reset_kwargs)`` on every module in ``target``.

    The same order and exclusion rule as :func:`init_all_states`. Typically used between
    sequences, to put the hidden states of a recurrent model back to their initial values (the
    State objects stay the same, so compiled functions that use them stay valid).

    Args:
        target: a Module, or any object or container holding modules.
        *reset_args: positional arguments for every ``reset_state``.
        node_to_exclude: a node filter; the matching modules are skipped.
        **reset_kwargs: keyword arguments for every ``reset_state``, e.g. ``batch_size=32``.

    Returns:
        ``target``.

    Raises:
        TypeError: ``node_to_exclude`` is not a valid node filter; whatever a hook raises.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> cell = facade.nn.init_all_states(facade.nn.GRUCell(3, 4), batch_size=2)
        >>> _ = cell(jnp.ones((2, 3)))
        >>> h = cell.h
        >>> _ = facade.nn.reset_all_states(cell, batch_size=2)
        >>> cell.h is h, float(jnp.abs(cell.h.value).sum())
        (True, 0.0)
    """
    _call_all(target, "reset_state", reset_args, reset_kwargs, node_to_exclude)
    return target
