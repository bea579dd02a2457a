"""``brainstate._compatible_import`` under the alias: the jax internals client libraries import.

braintools and brainpy import a few jax internals through brainstate's shim rather than from jax
(``Primitive``, ``safe_zip``, ``unzip2``, ``get_backend``, ...). Their homes move between jax
versions, so they are gathered here, in one small module tested against the pinned jax
(tests/facade/test_compat_alias.py): when jax moves one, only this file changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import jax
from jax import Device
from jax._src.core import trace_ctx
from jax._src.linear_util import wrap_init as _lu_wrap_init
from jax.api_util import debug_info as _debug_info
from jax.core import Tracer
from jax.extend.backend import get_backend
from jax.extend.core import (
    ClosedJaxpr,
    Jaxpr,
    JaxprEqn,
    Literal,
    Primitive,
    Var,
    jaxpr_as_fun,
)

__all__ = [
    "ClosedJaxpr",
    "Device",
    "Jaxpr",
    "JaxprEqn",
    "Literal",
    "Primitive",
    "Tracer",
    "Var",
    "get_aval",
    "get_backend",
    "jaxpr_as_fun",
    "safe_map",
    "safe_zip",
    "trace_ctx",
    "unzip2",
    "unzip3",
    "wrap_init",
]

T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")


def get_aval(x: Any) -> Any:
    """The abstract value (shape, dtype, weak type) of ``x``: ``jax.typeof`` on jax >= 0.8."""
    return jax.typeof(x)


def safe_zip(*args: Iterable[Any]) -> list[tuple[Any, ...]]:
    """``zip`` that raises ``ValueError`` when the iterables differ in length (a list, as jax's)."""
    lists = [list(a) for a in args]
    n = len(lists[0]) if lists else 0
    for i, a in enumerate(lists[1:], 1):
        if len(a) != n:
            raise ValueError(f"safe_zip: argument {i} has length {len(a)}, argument 0 has {n}")
    return list(zip(*lists, strict=True))


def safe_map(f: Callable[..., Any], *args: Iterable[Any]) -> list[Any]:
    """``map`` over equal-length iterables (``ValueError`` otherwise), returning a list."""
    return [f(*xs) for xs in safe_zip(*args)]


def unzip2(xys: Iterable[tuple[T1, T2]]) -> tuple[tuple[T1, ...], tuple[T2, ...]]:
    """Split pairs into two tuples: ``[(1, 'a'), (2, 'b')] -> ((1, 2), ('a', 'b'))``."""
    xs: list[T1] = []
    ys: list[T2] = []
    for x, y in xys:
        xs.append(x)
        ys.append(y)
    return tuple(xs), tuple(ys)


def unzip3(
    xyzs: Iterable[tuple[T1, T2, T3]],
) -> tuple[tuple[T1, ...], tuple[T2, ...], tuple[T3, ...]]:
    """Split triples into three tuples."""
    xs: list[T1] = []
    ys: list[T2] = []
    zs: list[T3] = []
    for x, y, z in xyzs:
        xs.append(x)
        ys.append(y)
        zs.append(z)
    return tuple(xs), tuple(ys), tuple(zs)


def wrap_init(fun: Callable[..., Any], args: tuple, kwargs: dict, name: str) -> Any:
    """A ``linear_util.WrappedFun`` of ``fun`` with jax's debug info (brainstate's signature)."""
    return _lu_wrap_init(fun, kwargs, debug_info=_debug_info(name, fun, args, kwargs))
