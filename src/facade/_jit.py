"""State-aware ``jit``: states read are inputs, states written are outputs, one program."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, cast

from ._lowering import Lowering

# The compiled program's positions are (state_values, kwargs, *args).
_ARGS_OFFSET = 2


def _as_tuple(x: int | str | Sequence[Any], name: str, kind: type) -> tuple[Any, ...]:
    items = (x,) if isinstance(x, kind) else tuple(cast(Sequence[Any], x))
    for item in items:
        if not isinstance(item, kind) or isinstance(item, bool):
            raise TypeError(f"{name} must be a {kind.__name__} or a sequence of them, got {x!r}")
    return items


def _call_fn(pure: Any, grad_values: Any, kw: Any, args: tuple[Any, ...]) -> Any:
    return pure(grad_values, kw, *args)


class JittedFunction:
    """A stateful function compiled once per call signature (see :func:`jit`)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        static_argnums: tuple[int, ...],
        static_argnames: tuple[str, ...],
        donate_argnums: tuple[int, ...],
        jax_kwargs: dict[str, Any],
    ):
        self.fn = fn
        self.static_argnames = static_argnames
        self._static_argnums = frozenset(static_argnums)
        self._jit_kwargs = dict(jax_kwargs)
        if donate_argnums:
            self._jit_kwargs["donate_argnums"] = tuple(_ARGS_OFFSET + i for i in donate_argnums)
        # One Lowering per set of static keyword values (each is a different function).
        self._lowerings: dict[Any, Lowering] = {}
        functools.update_wrapper(self, fn, updated=())

    def _lowering(self, static_kw: tuple[tuple[str, Any], ...]) -> Lowering:
        lowering = self._lowerings.get(static_kw)
        if lowering is None:
            fn = functools.partial(self.fn, **dict(static_kw)) if static_kw else self.fn
            lowering = Lowering(
                fn, _call_fn, jit_kwargs=self._jit_kwargs, static_argnums=self._static_argnums
            )
            self._lowerings[static_kw] = lowering
        return lowering

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._static_argnums and max(self._static_argnums) >= len(args):
            raise ValueError(
                f"static_argnums={tuple(sorted(self._static_argnums))} is out of range: "
                f"the function was called with {len(args)} positional argument(s)"
            )
        if not self.static_argnames:
            return self._lowering(())(args, kwargs)
        static_kw = tuple(sorted((k, kwargs.pop(k)) for k in self.static_argnames if k in kwargs))
        try:
            lowering = self._lowering(static_kw)
        except TypeError:
            raise TypeError(
                f"static_argnames values must be hashable, got {dict(static_kw)!r}"
            ) from None
        return lowering(args, kwargs)


def jit(
    fn: Callable[..., Any] | None = None,
    *,
    static_argnums: int | Sequence[int] = (),
    static_argnames: str | Sequence[str] = (),
    donate_argnums: int | Sequence[int] = (),
    **jax_kwargs: Any,
) -> Any:
    """Compile a stateful function: states it reads are inputs, states it writes are outputs.

    Written values are assigned to their States after each call. Compiled once per call
    signature (argument structure, shapes, dtypes and static values). Usable as
    ``@jit`` or ``@jit(static_argnums=...)``.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> count = facade.State(jnp.array(0))
        >>> @facade.transform.jit
        ... def step(x):
        ...     count.value = count.value + 1
        ...     return x * 2
        >>> step(jnp.ones(2)), int(count.value)
        (Array([2., 2.], dtype=float32), 1)
    """
    nums = _as_tuple(static_argnums, "static_argnums", int)
    names = _as_tuple(static_argnames, "static_argnames", str)
    donate = _as_tuple(donate_argnums, "donate_argnums", int)
    for key in ("in_shardings", "out_shardings"):
        if key in jax_kwargs:
            raise TypeError(f"facade jit does not take {key}: shard the States' values instead")

    def make(f: Callable[..., Any]) -> JittedFunction:
        if not callable(f):
            raise TypeError(f"jit: fn must be callable, got {type(f).__name__}")
        return JittedFunction(f, nums, names, donate, jax_kwargs)

    return make if fn is None else make(fn)
