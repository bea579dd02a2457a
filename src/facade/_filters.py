"""Filters select states; each form becomes a predicate ``(path, state) -> bool``.

A filter is one of:

* a :class:`~facade.State` subclass: states that are instances of it;
* a tuple of filters: states matching any of them (``()`` matches nothing);
* a callable ``(path, state) -> bool``, ``path`` being the tuple of attribute names, indices
  and dict keys that leads to the state;
* ``...`` or ``True``: every state; ``None`` or ``False``: no state;
* a combinator: :class:`Not`, :class:`All` or :class:`Any` (which are predicates themselves);
* one of brainstate's named filters (``brainstate.util.filter``): :class:`OfType`,
  :class:`WithTag`, :class:`PathContains`, :class:`Everything`, :class:`Nothing`.
"""

from __future__ import annotations

import builtins
import inspect
import typing
from collections.abc import Callable, Hashable

from ._state import State

Predicate = Callable[[tuple, State], bool]


def _everything(path: tuple, state: State) -> bool:
    return True


def _nothing(path: tuple, state: State) -> bool:
    return False


class _IsInstance:
    """Predicate: the state is an instance of ``cls``."""

    __slots__ = ("cls",)

    def __init__(self, cls: type):
        self.cls = cls

    def __call__(self, path: tuple, state: State) -> bool:
        return isinstance(state, self.cls)

    def __repr__(self) -> str:
        return self.cls.__name__


class _Call:
    """Predicate: a user callable, its result made a bool."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., typing.Any]):
        self.fn = fn

    def __call__(self, path: tuple, state: State) -> bool:
        return bool(self.fn(path, state))

    def __repr__(self) -> str:
        return getattr(self.fn, "__qualname__", None) or repr(self.fn)


def _filter_repr(f: typing.Any) -> str:
    if f is Ellipsis:
        return "..."
    if isinstance(f, type):
        return f.__name__
    if isinstance(f, tuple):
        return "(" + ", ".join(_filter_repr(x) for x in f) + ("," if len(f) == 1 else "") + ")"
    if isinstance(f, _Combinator | _IsInstance | _Call | _Named):
        return repr(f)
    return getattr(f, "__qualname__", None) or repr(f)


def _check_arity(fn: Callable[..., typing.Any]) -> None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and C callables: nothing to check against
        return
    try:
        signature.bind(("path",), None)
    except TypeError:
        raise TypeError(
            f"filter {_filter_repr(fn)} must accept two positional arguments (path, state), "
            f"its signature is {signature}"
        ) from None


def to_predicate(filter: typing.Any) -> Predicate:
    """Turn a filter into a predicate ``(path, state) -> bool``.

    Args:
        filter: a State subclass, a tuple of filters, a callable ``(path, state) -> bool``,
            ``...``/``True`` (everything), ``None``/``False`` (nothing), or a combinator
            (:class:`Not`, :class:`All`, :class:`Any`).

    Returns:
        A callable ``(path, state) -> bool``.

    Raises:
        TypeError: ``filter`` is none of the forms above (e.g. an int, a str, a class that is
            not a State subclass, a callable that cannot take ``(path, state)``).

    Example:
        >>> import jax.numpy as jnp, facade
        >>> from facade._filters import to_predicate
        >>> is_param = to_predicate(facade.ParamState)
        >>> is_param(("w",), facade.ParamState(jnp.zeros(2))), is_param(("h",), facade.State(1.0))
        (True, False)
    """
    if filter is Ellipsis or filter is True:
        return _everything
    if filter is None or filter is False:
        return _nothing
    if isinstance(filter, type):
        if issubclass(filter, State):
            return _IsInstance(filter)
        raise TypeError(
            f"filter {filter.__name__} is a class but not a State subclass; pass a State "
            "subclass such as facade.ParamState, or a predicate (path, state) -> bool"
        )
    if isinstance(filter, tuple):
        return Any(*filter)
    if isinstance(filter, _Combinator | _Named):
        return filter
    if isinstance(filter, str | bytes | int | float | complex | list | dict | set) or not callable(
        filter
    ):
        hint = " (use a tuple to match any of several filters)" if isinstance(filter, list) else ""
        raise TypeError(
            f"invalid filter {filter!r} of type {type(filter).__name__}: expected a State "
            f"subclass, a tuple of filters, a predicate (path, state) -> bool, ..., True, None "
            f"or False{hint}"
        )
    _check_arity(filter)
    return _Call(filter)


class _Combinator:
    """Base of the filter combinators: a predicate with a readable repr."""

    __slots__ = ("filters", "_predicates")

    def __init__(self, *filters: typing.Any):
        self.filters = filters
        self._predicates = tuple(to_predicate(f) for f in filters)

    def __call__(self, path: tuple, state: State) -> bool:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(_filter_repr(f) for f in self.filters)})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.filters == other.filters  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.filters))


class Not(_Combinator):
    """Filter matching the states that ``filter`` does not match.

    Args:
        filter: any filter form.

    Raises:
        TypeError: ``filter`` is not a valid filter.

    Example:
        >>> import facade
        >>> from facade.graph import Not
        >>> Not(facade.ParamState)
        Not(ParamState)
    """

    __slots__ = ()

    def __init__(self, filter: typing.Any):
        super().__init__(filter)

    def __call__(self, path: tuple, state: State) -> bool:
        return not self._predicates[0](path, state)


class All(_Combinator):
    """Filter matching the states that every one of ``filters`` matches (``All()``: every state).

    Args:
        *filters: any filter forms.

    Raises:
        TypeError: one of ``filters`` is not a valid filter.

    Example:
        >>> import facade
        >>> from facade.graph import All, Not
        >>> All(facade.ShortTermState, Not(facade.HiddenState))
        All(ShortTermState, Not(HiddenState))
    """

    __slots__ = ()

    def __call__(self, path: tuple, state: State) -> bool:
        return all(p(path, state) for p in self._predicates)


class Any(_Combinator):
    """Filter matching the states that at least one of ``filters`` matches (``Any()``: none).

    A tuple of filters means the same thing.

    Args:
        *filters: any filter forms.

    Raises:
        TypeError: one of ``filters`` is not a valid filter.

    Example:
        >>> import facade
        >>> from facade.graph import Any
        >>> Any(facade.ParamState, facade.HiddenState)
        Any(ParamState, HiddenState)
    """

    __slots__ = ()

    def __call__(self, path: tuple, state: State) -> bool:
        return any(p(path, state) for p in self._predicates)


class _Named:
    """Base of brainstate's named filters: a predicate compared and hashed by its argument."""

    __slots__ = ("arg",)

    def __init__(self, arg: typing.Any = None):
        self.arg = arg

    def __call__(self, path: tuple, state: State) -> bool:
        raise NotImplementedError

    def __repr__(self) -> str:
        if type(self) in (Everything, Nothing):
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}({_filter_repr(self.arg)})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.arg == other.arg  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.arg))


class OfType(_Named):
    """Filter matching the states that are instances of ``type`` (a State subclass).

    Example:
        >>> import jax.numpy as jnp, facade
        >>> from facade.util.filter import OfType
        >>> OfType(facade.ParamState)((), facade.ParamState(jnp.zeros(2)))
        True
    """

    __slots__ = ()

    def __init__(self, type: type):
        if not isinstance(type, builtins.type):
            raise TypeError(f"OfType takes a class, got {type!r}")
        super().__init__(type)

    def __call__(self, path: tuple, state: State) -> bool:
        return isinstance(state, self.arg)


class WithTag(_Named):
    """Filter matching the states whose ``tag`` attribute equals ``tag``."""

    __slots__ = ()

    def __init__(self, tag: str):
        super().__init__(tag)

    def __call__(self, path: tuple, state: State) -> bool:
        return bool(getattr(state, "tag", None) == self.arg)


class PathContains(_Named):
    """Filter matching the states whose path (attribute names, indices, keys) contains ``key``."""

    __slots__ = ()

    def __init__(self, key: Hashable):
        super().__init__(key)

    def __call__(self, path: tuple, state: State) -> bool:
        return self.arg in path


class Everything(_Named):
    """Filter matching every state (as ``...``)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()

    def __call__(self, path: tuple, state: State) -> bool:
        return True


class Nothing(_Named):
    """Filter matching no state (as ``None``)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()

    def __call__(self, path: tuple, state: State) -> bool:
        return False
