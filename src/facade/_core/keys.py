"""A module-level cache of lowerings, keyed weakly by what a call site is made of.

brainstate code often builds a transform where it uses it: ``grad(loss, grad_states=params)()``
inside a training step, or ``for_loop(lambda x: model(x), xs)`` inside a function called
eagerly. Each of those is a new Python object, so a cache held by the object would start empty
every time and recompile. Here a lowering is found again by a key of what the call is made of:
the function's code and what its closure holds, the States, the options.

Objects in a key are held by weak reference where Python allows it (functions, States, models,
arrays), so the cache never keeps a model alive; a key whose object has died can no longer
match and its entry is swept. A lowering keeps only weak references to the states it touches
and to its function (see ``_lowering``). The cache is also bounded (least recently used out).
"""

from __future__ import annotations

import functools
import threading
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import numpy as np

L = TypeVar("L")

MAX_SITES = 256
_MAX_DEPTH = 3  # functions captured by functions captured by ... are keyed this deep


class Ident:
    """An object by identity, held weakly: a key part that cannot outlive its object.

    ``Ident(x)`` returns the same Ident while ``x`` lives (they are interned), so keys compare
    and hash by identity at C speed. An object Python cannot reference weakly (a list, a
    dict) gets a :class:`Held` instead.
    """

    __slots__ = ("ref", "__weakref__")
    ref: Callable[[], Any]

    def __new__(cls, obj: Any) -> Any:
        found = _LIVE.get(id(obj))
        if found is not None and found.ref() is obj:
            return found
        try:
            ref = weakref.ref(obj, functools.partial(_forget, id(obj)))
        except TypeError:
            return Held(obj)
        made = super().__new__(cls)
        made.ref = ref
        _LIVE[id(obj)] = made
        return made

    def alive(self) -> bool:
        return self.ref() is not None


_LIVE: dict[int, Ident] = {}


def _forget(ident: int, ref: Any) -> None:
    if _LIVE is None:  # type: ignore[comparison-overlap]  # interpreter shutdown: globals gone
        return
    found = _LIVE.get(ident)
    if found is not None and found.ref is ref:
        del _LIVE[ident]


class Held:
    """A key part for an object that cannot be referenced weakly: compared by identity and
    held (only as long as the bounded cache keeps the key)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Held) and other.obj is self.obj

    def ref(self) -> Any:
        return self.obj

    def alive(self) -> bool:
        return True


_PLAIN = (type(None), bool, int, float, complex, str, bytes, type(Ellipsis))


def value_key(x: Any, depth: int = 0, shapes: bool = False) -> Any:
    """A hashable key for a value held by a call site (a closure cell, an option).

    With ``shapes``, arrays (tracers included) are keyed by shape and dtype: for keys that only
    need to know how a function *traces* (what it touches, what shapes it returns).
    """
    if isinstance(x, _PLAIN):
        return (type(x), x)
    if type(x) is tuple:
        return ("tuple", tuple(value_key(e, depth, shapes) for e in x))
    if isinstance(x, types.FunctionType | types.MethodType | functools.partial):
        return function_key(x, depth + 1, shapes=shapes)
    if shapes and isinstance(x, jax.Array | np.ndarray):
        return ("array", np.shape(x), str(x.dtype))
    return Ident(x)


def function_key(
    fn: Any, depth: int = 0, lifted: set[int] | frozenset[int] = frozenset(), shapes: bool = False
) -> Any:
    """A key equal for two function objects that trace the same way.

    Two closures made by the same ``def`` or ``lambda`` over the same objects get the same key;
    a closure over another object (another model, another array) gets another one. The closure
    cells at the positions in ``lifted`` hold arrays that the call passes as arguments
    (``_eager``): they are keyed by shape and dtype only; with ``shapes``, every array is (see
    :func:`value_key`).
    """
    if depth > _MAX_DEPTH:
        return Ident(fn)
    if isinstance(fn, functools.partial):
        return (
            "partial",
            function_key(fn.func, depth, shapes=shapes),
            tuple(value_key(a, depth, shapes) for a in fn.args),
            tuple(sorted((k, value_key(v, depth, shapes)) for k, v in fn.keywords.items())),
        )
    if isinstance(fn, types.MethodType):
        return ("method", function_key(fn.__func__, depth, shapes=shapes), Ident(fn.__self__))
    if isinstance(fn, types.FunctionType):
        cells: list[Any] = []
        for i, cell in enumerate(fn.__closure__ or ()):
            try:
                x = cell.cell_contents
            except ValueError:  # an empty cell (a name assigned later in the outer function)
                cells.append("<empty>")
                continue
            if i in lifted:
                cells.append(("lifted", np.shape(x), str(x.dtype)))
            else:
                cells.append(value_key(x, depth, shapes))
        return (
            "function",
            fn.__code__,
            Ident(fn.__globals__),
            value_key(fn.__defaults__, depth, shapes),
            value_key(tuple(sorted((fn.__kwdefaults__ or {}).items())), depth, shapes),
            tuple(cells),
        )
    return Ident(fn)


def _parts(key: Any) -> Any:
    if isinstance(key, Ident | Held):
        yield key
    elif isinstance(key, tuple):
        for part in key:
            yield from _parts(part)


class SiteCache:
    """Lowerings by site key: least recently used out, dead keys swept when one is added."""

    def __init__(self, maxsize: int = MAX_SITES):
        self.maxsize = maxsize
        self._entries: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], L]) -> L:
        """The lowering of ``key``, made by ``make()`` the first time (or after eviction)."""
        try:
            found = self._entries.get(key)
        except TypeError:  # an unhashable key part: nothing to share
            return make()
        if found is not None:
            try:
                self._entries.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile: still a good lowering
                pass
            return found  # type: ignore[no-any-return]
        made = make()
        with self._lock:
            self._sweep()
            self._entries[key] = made
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        return made

    def _sweep(self) -> None:
        dead = [k for k in self._entries if not all(p.alive() for p in _parts(k))]
        for k in dead:
            del self._entries[k]

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


SITES = SiteCache()
