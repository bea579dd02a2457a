"""``StateFinder``: which states a function touches, found by an abstract run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._lowering import _rebuild, _Signature, _split, discover
from ._state import State

_USAGES = ("all", "read", "write", "both")
_RETURN_TYPES = ("dict", "list", "tuple")


class StateFinder:
    """Find the states ``fn`` reads and/or writes when called with given arguments.

    Args:
        fn: the function to inspect.
        filter: keep only states it matches (any facade filter: a State class, a predicate...).
        usage: ``'all'`` (touched in any way), ``'read'``, ``'write'``, or ``'both'`` (a dict
            ``{'read': ..., 'write': ...}``).
        return_type: ``'dict'`` (keys: positions in order of first use, or ``key_fn(i, state)``),
            ``'list'`` or ``'tuple'``.
        key_fn: ``key_fn(index, state) -> key`` for the dict keys.

    Raises:
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
        {'read': ['a', 'b'], 'write': ['b']}
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
            from ._filters import to_predicate

            self._keep = to_predicate(filter)

    def _package(self, states: dict[State, None]) -> Any:
        kept = [s for s in states if self._keep((), s)]
        if self.return_type == "list":
            return kept
        if self.return_type == "tuple":
            return tuple(kept)
        key = self.key_fn or (lambda i, s: i)
        return {key(i, s): s for i, s in enumerate(kept)}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        sig = _Signature(args, kwargs, frozenset())
        args_dyn, kw_dyn = _split(args, kwargs, sig)

        def run(f: Any, kw: dict[str, Any], a: tuple[Any, ...]) -> None:
            real_args, real_kwargs = _rebuild(a, kw, sig)
            self.fn(*real_args, **real_kwargs)

        found = discover(run, args_dyn, kw_dyn)
        if self.usage == "both":
            return {"read": self._package(found.reads), "write": self._package(found.writes)}
        states = {"all": found.touched, "read": found.reads, "write": found.writes}[self.usage]
        return self._package(states)
