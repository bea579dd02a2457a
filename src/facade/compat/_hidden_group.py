"""``HiddenGroupState`` and ``HiddenTreeState``: several hidden variables kept in one array.

Both store the variables stacked on the value's last axis, so a transform sees one array (one
leaf) however many variables there are; ``get_value`` / ``set_value`` address one variable by
index or name. They are plain States to the transforms: ``get_value`` reads ``value`` and
``set_value`` writes it, both recorded in the trace frames as any read and write.

brainunit is optional: with it, a group may hold a ``Quantity`` and a tree keeps each variable's
unit; without it, only plain arrays exist and no unit is involved.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._state import HiddenState, ShortTermState, peek

__all__ = ["HiddenGroupState", "HiddenTreeState"]


@functools.cache
def _brainunit() -> Any:
    """The brainunit module, or None when it is not installed (looked up once)."""
    try:
        import brainunit
    except ImportError:
        return None
    return brainunit


def _is_quantity(x: Any) -> bool:
    u = _brainunit()
    return u is not None and isinstance(x, u.Quantity)


def _is_array(x: Any) -> bool:
    # jax.Array covers tracers too: a group can be created inside a transform.
    return isinstance(x, np.ndarray | jax.Array) or _is_quantity(x)


def _shape(value: Any) -> tuple[int, ...]:
    # A Quantity is a pytree of one leaf, its mantissa; an abstract value's leaf is a
    # ShapeDtypeStruct. Either way the first leaf has the shape.
    return tuple(jax.tree.leaves(value)[0].shape)


def _mantissa(value: Any) -> Any:
    return value.mantissa if _is_quantity(value) else value


def _unit(value: Any) -> Any:
    """The unit of ``value`` (brainunit's dimensionless unit for a plain array), or None
    without brainunit."""
    u = _brainunit()
    return None if u is None else u.get_unit(value)


def _in_unit(value: Any, unit: Any) -> Any:
    """The mantissa of ``value`` expressed in ``unit``; a unit of another dimension (a plain
    array for a unit that has one, or the reverse) raises brainunit's error."""
    if unit is None:  # no brainunit: nothing can carry a unit
        return value
    if not _is_quantity(value) and unit.dim.is_dimensionless:
        return value
    return _brainunit().Quantity(value).to(unit).mantissa


def _cast(new: Any, dtype: Any, where: str) -> Any:
    """``new`` as an array of the stored ``dtype``; a cast across kinds (a float into an
    integer group) is refused rather than truncated."""
    new = jnp.asarray(new)
    if not jnp.can_cast(new.dtype, dtype, casting="same_kind"):
        raise TypeError(
            f"{where}: a value of dtype {new.dtype} cannot be stored in a {dtype} group "
            "without losing its kind (a float into integers, say); cast it explicitly"
        )
    return new.astype(dtype)


# Parameters are annotated ``Any`` where this module checks them itself: its errors name the
# state and say what is expected (a runtime type checker would answer first, less clearly).


class HiddenGroupState(HiddenState):
    """Several hidden variables of one shape, stacked on the last axis of one array.

    Variable ``i`` is ``value[..., i]``; its name is ``str(i)``. ``value`` may be a numpy or JAX
    array, or a brainunit ``Quantity`` (all variables then share its unit).

    Args:
        value: an array of at least two dimensions: the variables' shape, then their number.
        **kwargs: ``name`` and metadata, as for :class:`facade.State`.

    Raises:
        TypeError: ``value`` is not an array or ``Quantity``.
        ValueError: ``value`` has fewer than two dimensions.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> g = facade.HiddenGroupState(jnp.zeros((3, 2)))
        >>> g.varshape, g.num_state, g.name2index
        ((3,), 2, {'0': 0, '1': 1})
        >>> g.set_value({1: jnp.ones(3)})
        >>> g.get_value("1")
        Array([1., 1., 1.], dtype=float32)
    """

    name2index: dict[str, int]

    def __init__(self, value: Any, **kwargs: Any):
        where = type(self).__name__
        if not _is_array(value):
            raise TypeError(
                f"{where} holds a numpy or JAX array or a brainunit Quantity, got "
                f"{type(value).__name__}"
            )
        if len(_shape(value)) < 2:
            raise ValueError(
                f"{where} needs an array of at least 2 dimensions (the variables' shape, then "
                f"their number on the last axis), got shape {_shape(value)}"
            )
        ShortTermState.__init__(self, value, **kwargs)
        self.name2index = {str(i): i for i in range(_shape(value)[-1])}

    @property
    def varshape(self) -> tuple[int, ...]:
        """The shape of each variable (the value's shape without its last axis)."""
        # The shape only: no read is recorded (a trace would otherwise take the State as input).
        return _shape(peek(self))[:-1]

    @property
    def num_state(self) -> int:
        """The number of variables (the size of the last axis)."""
        return _shape(peek(self))[-1]

    def _index(self, item: Any, allow_negative: bool) -> int:
        """The position of variable ``item`` (an index or a name) on the last axis."""
        where = type(self).__name__
        n = self.num_state
        if isinstance(item, str):
            if item not in self.name2index:
                raise KeyError(
                    f"{where}: no variable named {item!r}; names: {list(self.name2index)}"
                )
            return self.name2index[item]
        if not isinstance(item, int | np.integer):
            raise TypeError(f"{where}: a variable is an int index or a str name, got {item!r}")
        item = int(item)
        if allow_negative:
            if not -n <= item < n:
                raise IndexError(f"{where}: index {item} out of range for {n} variables")
            return item % n
        if not 0 <= item < n:  # set_value's error, as in brainstate
            raise ValueError(f"{where}: index {item} out of range 0..{n - 1}")
        return item

    def get_value(self, item: Any) -> Any:
        """The value of one variable, by index (negative counts from the end) or name.

        Raises:
            IndexError / KeyError / TypeError: no such index, no such name, neither.
        """
        return self.value[..., self._index(item, allow_negative=True)]

    def _updates(self, val: Any) -> dict[int, Any]:
        """``val`` (a mapping of index or name to value, or a sequence of values from index 0)
        as ``{index: value}``, each value checked for shape."""
        where = f"{type(self).__name__}.set_value"
        if isinstance(val, list | tuple):
            val = dict(enumerate(val))
        if not isinstance(val, Mapping):
            raise TypeError(
                f"{where} takes a dict of index or name to value, or a list of values; got "
                f"{type(val).__name__}"
            )
        if not val:
            raise ValueError(f"{where}: no variable given")
        updates = {}
        for key, v in val.items():
            # Negative indices are refused (as in brainstate): {-1: a, 1: b} would be ambiguous.
            i = self._index(key, allow_negative=False)
            shape = _shape(v) if _is_array(v) else np.shape(v)
            if shape != self.varshape:
                raise ValueError(
                    f"{where}: variable {key!r} must have shape {self.varshape}, got {shape}"
                )
            updates[i] = v
        return updates

    def set_value(self, val: Any) -> None:
        """Write some of the variables, leaving the others as they are.

        Args:
            val: ``{index or name: value}``, or a sequence of values for variables 0, 1, ...
                Each value has the shape ``varshape``; in a group holding a ``Quantity`` it is
                converted to that unit. The stored dtype is kept (a float cannot go into an
                integer group).

        Raises:
            TypeError: ``val`` is neither a dict nor a sequence, a key is neither an int nor a
                str, or a value's dtype cannot be cast to the stored one.
            KeyError / IndexError / ValueError: an unknown name, an index out of range, a
                value of the wrong shape, or nothing to set.
        """
        where = f"{type(self).__name__}.set_value"
        updates = self._updates(val)
        old = self.value
        unit = _unit(old) if _is_quantity(old) else None
        stored = jnp.asarray(_mantissa(old))
        news = [
            _cast(_in_unit(v, unit) if unit is not None else _plain(v), stored.dtype, where)
            for v in updates.values()
        ]
        new = stored.at[..., list(updates)].set(jnp.stack(news, axis=-1))
        self.value = new if unit is None else _brainunit().Quantity(new, unit=unit)


def _plain(value: Any) -> Any:
    """``value`` for a group without a unit: a ``Quantity`` must be dimensionless."""
    if _is_quantity(value):
        return _in_unit(value, _brainunit().get_unit(1.0))
    return value


class HiddenTreeState(HiddenGroupState):
    """Named hidden variables of one shape, each with its own unit, in one dimensionless array.

    ``value`` is the stack of the variables' mantissas on the last axis; ``get_value`` gives a
    variable back with its unit and ``set_value`` converts to it. Use these two rather than
    ``value``, which has lost the units.

    Args:
        value: a dict of name to array (or ``Quantity``), or a sequence of them (named ``'0'``,
            ``'1'``, ...); all of one shape.
        **kwargs: ``name`` and metadata, as for :class:`facade.State`.

    Raises:
        TypeError: ``value`` is not a dict or sequence, a name is not a str, or a variable is
            not an array or ``Quantity``.
        ValueError: no variables, or variables of different shapes.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> t = facade.HiddenTreeState({"v": jnp.zeros(2), "w": jnp.ones(2)})
        >>> t.value.shape, t.name2index, t.index2name
        ((2, 2), {'v': 0, 'w': 1}, {0: 'v', 1: 'w'})
        >>> t.set_value({"v": jnp.array([3.0, 4.0])})
        >>> t.get_value("v")
        Array([3., 4.], dtype=float32)
    """

    name2unit: dict[str, Any]
    index2unit: dict[int, Any]
    index2name: dict[int, str]

    def __init__(self, value: Any, **kwargs: Any):
        where = type(self).__name__
        if isinstance(value, list | tuple):
            value = {str(i): v for i, v in enumerate(value)}
        if not isinstance(value, Mapping):
            raise TypeError(
                f"{where} takes a dict of name to array, or a list of arrays; got "
                f"{type(value).__name__}"
            )
        if not value:
            raise ValueError(f"{where}: no variables given")
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: variable names are str, got {k!r}")
            if not _is_array(v):
                raise TypeError(
                    f"{where}: variable {k!r} must be a numpy or JAX array or a brainunit "
                    f"Quantity, got {type(v).__name__}"
                )
        shapes = {k: _shape(v) for k, v in value.items()}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"{where}: the variables must have one shape, got {shapes}")
        stacked = jnp.stack([jnp.asarray(_mantissa(v)) for v in value.values()], axis=-1)
        ShortTermState.__init__(self, stacked, **kwargs)
        self.name2index = {k: i for i, k in enumerate(value)}
        self.name2unit = {k: _unit(v) for k, v in value.items()}
        self.index2unit = dict(enumerate(self.name2unit.values()))
        self.index2name = {i: k for k, i in self.name2index.items()}

    @property
    def num_state(self) -> int:
        """The number of variables."""
        n = _shape(peek(self))[-1]
        if n != len(self.name2index):
            raise ValueError(
                f"{type(self).__name__}: its value has {n} variables on the last axis but "
                f"{len(self.name2index)} names ({list(self.name2index)}); it was given a value "
                "of another shape"
            )
        return n

    def get_value(self, item: Any) -> Any:
        """One variable, with its unit, by name or index (negative counts from the end)."""
        i = self._index(item, allow_negative=True)
        v = self.value[..., i]
        unit = self.index2unit[i]
        if unit is None or unit.dim.is_dimensionless:
            return v
        return v * unit

    def set_value(self, val: Any) -> None:
        """Write some of the variables, each converted to its unit (see
        :meth:`HiddenGroupState.set_value` for ``val`` and the errors); a value of another
        dimension than its variable's unit raises brainunit's error."""
        where = f"{type(self).__name__}.set_value"
        updates = self._updates(val)
        stored = jnp.asarray(self.value)
        news = [
            _cast(_in_unit(v, self.index2unit[i]), stored.dtype, where) for i, v in updates.items()
        ]
        self.value = stored.at[..., list(updates)].set(jnp.stack(news, axis=-1))
