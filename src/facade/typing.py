"""``brainstate.typing``: the type aliases brainstate code annotates with.

Client libraries import these at module level (``from brainstate.typing import ArrayLike, Size``),
so they must exist with brainstate 0.5.4's meaning: ``Size`` an int or a sequence of ints,
``ArrayLike`` anything ``jnp.asarray`` takes (plus brainunit quantities when brainunit is
installed), ``PyTree[leaf]`` / ``PyTree[leaf, "T"]`` a subscriptable marker that is never
instantiated, ``Filter`` the filter forms of :mod:`facade.util.filter`, ``Missing`` a sentinel
class. They are annotations only: nothing here checks values.

Example:
    >>> from facade.typing import PyTree, Size
    >>> PyTree[int].leaftype, PyTree[float, "T"].structure
    (<class 'int'>, 'T')
    >>> import typing
    >>> int in typing.get_args(Size)
    True
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Sequence
from types import EllipsisType
from typing import (  # noqa: F401, UP035 - brainstate.typing has them
    TYPE_CHECKING,
    Any,
    Generic,
    List,
    Protocol,
    Tuple,
    TypeVar,
    Union,
    runtime_checkable,
)

import jax
import numpy as np

__all__ = [
    "Array",
    "ArrayLike",
    "Axes",
    "DType",
    "DTypeLike",
    "Filter",
    "FilterLiteral",
    "K",
    "Key",
    "Missing",
    "PathParts",
    "Predicate",
    "PyTree",
    "SeedOrKey",
    "Shape",
    "Size",
    "SupportsDType",
]

K = TypeVar("K", bound="Key")
_Annotation = TypeVar("_Annotation")


@runtime_checkable
class Key(Hashable, Protocol):
    """A path element: hashable and orderable (attribute names, indices, dict keys)."""

    def __lt__(self: K, value: K, /) -> bool: ...


# brainstate.typing's ``Ellipsis``: the builtin ``ellipsis`` for type checkers, ``Any`` at run time.
Ellipsis = Any  # noqa: A001

PathParts = tuple[Key, ...]
Predicate = Callable[[PathParts, Any], bool]
FilterLiteral = Union[type, str, Predicate, bool, EllipsisType, None]  # noqa: UP007
Filter = Union[FilterLiteral, tuple["Filter", ...], list["Filter"]]  # noqa: UP007

Size = Union[int, Sequence[int], np.integer, Sequence[np.integer]]  # noqa: UP007
Shape = Sequence[int]
Axes = Union[int, Sequence[int]]  # noqa: UP007

try:  # brainstate's ArrayLike admits brainunit quantities; brainunit is optional here
    import brainunit as _u

    _QUANTITY: tuple[type, ...] = (_u.Quantity,)
except ImportError:  # pragma: no cover - brainunit is installed with the test extra
    _QUANTITY = ()

_ARRAY_LIKE: tuple[Any, ...] = (
    jax.Array,
    np.ndarray,
    np.bool_,
    np.number,
    bool,
    int,
    float,
    complex,
    *_QUANTITY,
)
ArrayLike = Union[_ARRAY_LIKE]  # type: ignore[valid-type]  # noqa: UP007

DType = np.dtype


class SupportsDType(Protocol):
    """Anything with a ``dtype`` attribute (arrays, ShapeDtypeStructs)."""

    @property
    def dtype(self) -> DType: ...


DTypeLike = Union[str, type[Any], np.dtype, SupportsDType]  # noqa: UP007
SeedOrKey = Union[int, jax.Array, np.ndarray]  # noqa: UP007


class _ArrayAnnotation(Generic[_Annotation]):
    pass


class Array:
    """``Array[...]`` in an annotation: a shape/dtype note for readers, e.g. ``Array['n', float]``.

    Subscripting gives a generic alias whose argument prints as the subscript; nothing is checked.
    """

    def __class_getitem__(cls, item: Any) -> Any:
        marker = type(_describe(item), (), {"__module__": "builtins"})
        return _ArrayAnnotation[marker]  # type: ignore[valid-type]


def _describe(item: Any) -> str:
    if isinstance(item, tuple):
        return ", ".join(_describe(i) for i in item) if item else "()"
    if isinstance(item, slice):
        return f"{_describe(item.start)}: {_describe(item.stop)}"
    if item is ...:
        return "..."
    return item.__name__ if isinstance(item, type) else repr(item)


class _PyTreeMeta(type):
    """``PyTree[leaf]`` and ``PyTree[leaf, "T"]`` give (cached) marker subclasses of ``PyTree``."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("PyTree cannot be instantiated")

    def __getitem__(cls, item: Any) -> Any:
        if isinstance(item, tuple):
            if len(item) != 2:
                raise ValueError(
                    "PyTree[...] takes a leaf type, or a (leaf type, structure string) pair; "
                    f"got a tuple of length {len(item)}"
                )
            leaf, structure = item
            if not isinstance(structure, str):
                raise ValueError(f"PyTree[leaf, struct]: struct must be a str, got {structure!r}")
            pieces = structure.split()
            names = [p for p in pieces if p != "..."]
            if not names:
                raise ValueError(f"PyTree[leaf, struct]: struct {structure!r} names no structure")
            if pieces.count("...") > 1 or "..." in pieces[1:-1]:
                raise ValueError(
                    f"PyTree[leaf, struct]: '...' may only lead or trail, got {structure!r}"
                )
            bad = [p for p in names if not p.isidentifier()]
            if bad:
                raise ValueError(f"PyTree[leaf, struct]: {bad[0]!r} is not an identifier")
            key: Any = (leaf, " ".join(pieces))
        else:
            leaf, key = item, item
        if not isinstance(leaf, Hashable):
            raise TypeError(f"PyTree[leaf]: the leaf type must be hashable, got {leaf!r}")
        return cls._marker(key)

    @functools.cache  # noqa: B019 - a handful of annotations, kept for the process's life
    def _marker(cls, key: Any) -> type:
        leaf, structure = key if isinstance(key, tuple) else (key, None)
        leaf_name = getattr(leaf, "__name__", repr(leaf))
        name = (
            f"PyTree[{leaf_name}]" if structure is None else f'PyTree[{leaf_name}, "{structure}"]'
        )
        marker = _PyTreeMeta(name, (cls,), {"leaftype": leaf, "structure": structure})
        marker.__module__ = cls.__module__
        return marker


class PyTree(metaclass=_PyTreeMeta):
    """A pytree annotation: ``PyTree[jax.Array]``, ``PyTree[float, "T"]``; never instantiated."""

    leaftype: Any = Any
    structure: str | None = None


class Missing:
    """A sentinel class for "argument not given" where ``None`` is a meaningful value."""
