"""``StateFinder``: which states a function touches, found by an abstract run."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .._core.bridge import discover
from .._state import State

_USAGES = ("all", "read", "write", "both")
_RETURN_TYPES = ("dict", "list", "tuple")


class StateFinder:
    """Find the states ``fn`` reads and/or writes when called with given arguments.

    Args:
        fn: the function to inspect.
        filter: keep only states it matches (any facade filter: a State class, a predicate...).
        usage: ``'all'`` (touched in any way), ``'read'`` (read and never written),
            ``'write'`` (written), or ``'both'`` (a dict ``{'read': ..., 'write': ...}``
            split the same way).
        return_type: ``'dict'`` (keys: positions in order of first use, or ``key_fn(i, state)``),
            ``'list'`` or ``'tuple'``.
        key_fn: ``key_fn(index, state) -> key`` for the dict keys; a key of None falls back to
            the state's name (or its index when it has none), an unhashable key to its ``str``.

    Raises:
        TypeError: ``usage`` is not a str.
        ValueError: an unknown ``usage`` or ``return_type``.
        TypeError: ``fn`` or ``key_fn`` not callable, or a bad filter.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> a, b = facade.ParamState(jnp.ones(2), name="a"), facade.State(jnp.zeros(2), name="b")
        >>> def f(x):
        ...     b.value = a.value * x
        ...     return b.value
        >>> finder = facade.transform.StateFinder(f, usage="both")
        >>> {k: [s.name for s in v.values()] for k, v in finder(jnp.ones(2)).items()}
        {'read': ['a'], 'write': ['b']}
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        filter: Any = None,
        *,
        usage: str = "all",
        return_type: str = "dict",
        key_fn: Callable[[int, State], Any] | None = None,
    ):
        if not callable(fn):
            raise TypeError(f"StateFinder: fn must be callable, got {type(fn).__name__}")
        if not isinstance(usage, str):
            raise TypeError(f"StateFinder: usage must be a str, one of {_USAGES}, got {usage!r}")
        if usage not in _USAGES:
            raise ValueError(f"StateFinder: usage must be one of {_USAGES}, got {usage!r}")
        if return_type not in _RETURN_TYPES:
            raise ValueError(
                f"StateFinder: return_type must be one of {_RETURN_TYPES}, got {return_type!r}"
            )
        if key_fn is not None and not callable(key_fn):
            raise TypeError(f"StateFinder: key_fn must be callable, got {type(key_fn).__name__}")
        self.fn = fn
        self.usage = usage
        self.return_type = return_type
        self.key_fn = key_fn
        if filter is None:
            self._keep: Callable[[tuple[Any, ...], State], bool] = lambda path, state: True
        else:
            from .._filters import to_predicate

            self._keep = to_predicate(filter)

    def _package(self, states: Iterable[State]) -> Any:
        kept = [s for s in states if self._keep((), s)]
        if self.return_type == "list":
            return kept
        if self.return_type == "tuple":
            return tuple(kept)
        if self.key_fn is None:
            return dict(enumerate(kept))
        return {self._key(i, s): s for i, s in enumerate(kept)}

    def _key(self, i: int, state: State) -> Any:
        key = self.key_fn(i, state)  # type: ignore[misc]
        if key is None:
            return state.name if state.name is not None else i
        try:
            hash(key)
        except TypeError:
            return str(key)
        return key

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        found, _ = discover(self.fn, args, kwargs)
        writes = set(found.writes)
        read_only = [s for s in found.states if s in found.reads and s not in writes]
        if self.usage == "both":
            return {"read": self._package(read_only), "write": self._package(found.writes)}
        states = {"all": found.states, "read": read_only, "write": found.writes}[self.usage]
        return self._package(states)
