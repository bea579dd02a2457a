"""``vmap_init_all_states``: every module's ``init_state`` once per batch element (an ensemble)."""

from __future__ import annotations

import typing

from ._checks import typechecked
from ._collective import init_all_states

__all__ = ["vmap_init_all_states"]

T = typing.TypeVar("T")


@typechecked
def vmap_init_all_states(
    target: T,
    *init_args: typing.Any,
    axis_size: int | None = None,
    node_to_exclude: typing.Any = None,
    state_to_exclude: typing.Any = None,
    state_tag: str | None = None,
    in_states: typing.Any = None,
    out_states: typing.Any = None,
    **init_kwargs: typing.Any,
) -> T:
    """:func:`init_all_states` under :func:`facade.transform.vmap_new_states`: ``axis_size``
    independent initialisations, stacked.

    Every State the ``init_state`` hooks create gets a leading axis of ``axis_size`` (random
    initial values differ along it); States created earlier (in ``__init__``, such as a
    ``Linear`` layer's weight) are not touched. Use the model afterwards under
    :func:`facade.transform.vmap` with those States in ``in_states``/``out_states``.

    Args:
        target: a Module, or any object or container holding modules.
        *init_args: positional arguments for every ``init_state``.
        axis_size: the number of batch elements (required).
        node_to_exclude: a node filter; the matching modules are skipped.
        state_to_exclude: a filter of created States that are shared, not batched.
        state_tag: stored as ``metadata['tag']`` of every State created.
        in_states, out_states: not supported (as in ``vmap_new_states``).
        **init_kwargs: keyword arguments for every ``init_state``.

    Returns:
        ``target``.

    Raises:
        ValueError: ``axis_size`` missing or not positive, ``in_states``/``out_states`` given.

    Example:
        >>> import facade
        >>> cell = facade.nn.GRUCell(3, 4)
        >>> facade.nn.vmap_init_all_states(cell, axis_size=8) is cell
        True
        >>> cell.h.value.shape
        (8, 4)
    """
    from .. import transform

    if axis_size is None or axis_size < 1:
        raise ValueError(f"vmap_init_all_states: axis_size must be a positive int, got {axis_size}")

    def init() -> None:
        init_all_states(target, *init_args, node_to_exclude=node_to_exclude, **init_kwargs)

    transform.vmap_new_states(
        init,
        in_axes=(),
        axis_size=axis_size,
        state_to_exclude=state_to_exclude,
        state_tag=state_tag,
        in_states=in_states,
        out_states=out_states,
    )()
    return target
