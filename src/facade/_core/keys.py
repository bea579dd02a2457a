"""What identifies a call: held references, static values, signatures, models, programs.

Every cache of the facade keys its entries with the pieces here (the reuse rule they serve is
stated in ``sites``):

* :class:`Ident`/:class:`Held`: an object by identity, held weakly where Python allows it;
* :func:`function_key`: a function by its code and what its closure holds (the discovery memo of
  one call, ``bridge.shared_discoveries``, finds a body traced twice in that call with it);
* :class:`Signature`: the parts of a call a trace depends on beyond array shapes and dtypes
  (tree structure, static arguments and leaves; a ``Module`` argument by its plain attributes,
  see :func:`module_key`);
* :func:`program_key`: a traced program (a jaxpr) by its equations, so that two traces of the
  same computation share one compiled executable (``lowering``).
"""

from __future__ import annotations

import functools
import types
import weakref
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from .._state import ARRAY_TYPES

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


_LIVE: dict[int, Ident] = {}


def _forget(ident: int, ref: Any) -> None:
    if _LIVE is None:  # type: ignore[comparison-overlap]  # interpreter shutdown: globals gone
        return
    found = _LIVE.get(ident)
    if found is not None and found.ref is ref:
        del _LIVE[ident]


class Held:
    """A key part compared by identity that holds its object (only as long as the bounded
    cache keeps the key): for an object that cannot be referenced weakly, and for objects a
    shared executable refers to (callbacks, large constants)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Held) and other.obj is self.obj

    def ref(self) -> Any:
        return self.obj


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


# --- call signatures -----------------------------------------------------------------------

_DYNAMIC_TYPES = (*ARRAY_TYPES, jax.ShapeDtypeStruct)


def _by_identity(x: Any) -> bool:
    """Whether ``x`` compares (and hashes) by identity: a model, a State, a function."""
    cls = type(x)
    return cls.__eq__ is object.__eq__ and cls.__hash__ is object.__hash__


def _static_key(x: Any) -> Any:
    """A hashable key for a static value.

    It tells ``1``, ``1.0`` and ``True`` apart, keys lists and tuples by their contents, and
    holds an object that compares by identity only weakly (``Ident``), so that a
    signature never keeps a model passed as a static argument alive.
    """
    if isinstance(x, tuple | list):
        return (type(x), tuple(_static_key(e) for e in x))
    if isinstance(x, dict):
        return (type(x), tuple((k, _static_key(v)) for k, v in x.items()))
    if is_module(x):
        return module_key(x)
    if _by_identity(x):
        return Ident(x)
    return (type(x), x)


class DeadState(Exception):
    """An object a cached entry holds weakly was collected: the entry must be made again."""


class _Weakly:
    """A static value that compares by identity, held weakly until the trace needs it."""

    __slots__ = ("ref",)

    def __init__(self, x: Any):
        self.ref = Ident(x).ref

    def get(self) -> Any:
        x = self.ref()
        if x is None:
            raise DeadState
        return x


def _hold(x: Any) -> Any:
    return _Weakly(x) if _by_identity(x) else x


def _unhold(x: Any) -> Any:
    return x.get() if isinstance(x, _Weakly) else x


class Signature:
    """The parts of a call that a trace depends on beyond array shapes and dtypes.

    ``static_args``/``static_kwargs``: the arguments marked static (whole); ``static_leaves``:
    the leaves JAX cannot trace (strings, functions, objects), by position among the other
    arguments' leaves. The key tells equal static values of different types apart.
    """

    __slots__ = ("treedef", "static_args", "static_kwargs", "static_leaves", "key", "num_args")
    treedef: Any

    def __init__(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        static_argnums: frozenset[int] = frozenset(),
        static_argnames: frozenset[str] = frozenset(),
    ):
        self.num_args = len(args)
        static_args = tuple((i, args[i]) for i in sorted(static_argnums) if i < len(args))
        static_kwargs = tuple(sorted((k, kwargs[k]) for k in static_argnames if k in kwargs))
        if static_args:
            args = tuple(None if i in static_argnums else a for i, a in enumerate(args))
        if static_kwargs:
            kwargs = {k: None if k in static_argnames else v for k, v in kwargs.items()}
        leaves, self.treedef = jax.tree.flatten((args, kwargs))
        static_leaves = tuple(
            (n, x) for n, x in enumerate(leaves) if not isinstance(x, _DYNAMIC_TYPES)
        )
        try:
            self.key: Any = (
                self.treedef,
                _static_key(static_args),
                _static_key(static_kwargs),
                _static_key(static_leaves),
            )
            hash(self.key)
        except TypeError:  # an unhashable static value: this call is lowered afresh
            self.key = None
        self.static_args = tuple((i, _hold(x)) for i, x in static_args)
        self.static_kwargs = tuple((k, _hold(x)) for k, x in static_kwargs)
        self.static_leaves = tuple((n, _hold(x)) for n, x in static_leaves)

    @property
    def has_statics(self) -> bool:
        return bool(self.static_args or self.static_kwargs or self.static_leaves)

    def split(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The dynamic parts of ``(args, kwargs)``: static leaves and arguments become None."""
        if not self.has_statics:
            return args, kwargs
        if self.static_args:
            marked = {i for i, _ in self.static_args}
            args = tuple(None if i in marked else a for i, a in enumerate(args))
        if self.static_kwargs:
            names = {k for k, _ in self.static_kwargs}
            kwargs = {k: None if k in names else v for k, v in kwargs.items()}
        if not self.static_leaves:
            return args, kwargs
        leaves = jax.tree.leaves((args, kwargs))
        static = {n for n, _ in self.static_leaves}
        return jax.tree.unflatten(
            self.treedef, [None if n in static else x for n, x in enumerate(leaves)]
        )

    def rebuild(
        self, args_dyn: tuple[Any, ...], kw_dyn: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Inverse of :meth:`split`, at trace time."""
        if not self.has_statics:
            return tuple(args_dyn), kw_dyn
        leaves = self.treedef.flatten_up_to((tuple(args_dyn), kw_dyn))
        for n, x in self.static_leaves:
            leaves[n] = _unhold(x)
        args, kwargs = jax.tree.unflatten(self.treedef, leaves)
        if self.static_args:
            marked = {i: _unhold(x) for i, x in self.static_args}
            args = tuple(marked.get(i, a) for i, a in enumerate(args))
        if self.static_kwargs:
            kwargs = {**kwargs, **{k: _unhold(x) for k, x in self.static_kwargs}}
        return args, kwargs


# --- models passed as arguments ------------------------------------------------------------

MUTATIONS = [0]
"""Bumped by every ``Module.__setattr__``/``__delattr__``: a model's attributes are walked
again only after some model changed (see :func:`module_key`)."""

_MODULE_KEYS: weakref.WeakKeyDictionary[Any, tuple[int, Any]] = weakref.WeakKeyDictionary()


def is_module(x: Any) -> bool:
    return getattr(type(x), "_facade_module", False) is True


def module_key(module: Any) -> Any:
    """A key for a ``Module`` passed to a held transform (as an argument or as ``self``).

    The module itself by identity, and what a trace reads through it: its plain attributes
    (numbers, strings, bools, None, tuples and lists of them) by value, its States, arrays and
    other objects by identity, nested Modules recursively. ``mod.k = 7.0``, a re-created State
    or a new array attribute therefore give a new key (and a new trace). Computed again only
    after some Module's attributes were assigned (:data:`MUTATIONS`); an in-place change of a
    list or numpy array attribute is not seen.
    """
    epoch = MUTATIONS[0]
    try:
        known = _MODULE_KEYS.get(module)
    except TypeError:  # not weakly referenceable or unhashable: walk every time
        known = None
    if known is not None and known[0] == epoch:
        return known[1]
    key = ("module", Ident(module), _attributes_key(module, {id(module)}))
    try:
        _MODULE_KEYS[module] = (epoch, key)
    except TypeError:
        pass
    return key


def _attributes_key(module: Any, seen: set[int]) -> Any:
    return tuple((name, _attribute_key(v, seen)) for name, v in vars(module).items())


def _attribute_key(x: Any, seen: set[int]) -> Any:
    if isinstance(x, _PLAIN):
        return (type(x), x)
    if type(x) in (tuple, list):
        return (type(x), tuple(_attribute_key(e, seen) for e in x))
    if type(x) is dict:
        return (dict, tuple((k, _attribute_key(v, seen)) for k, v in x.items()))
    if is_module(x) and id(x) not in seen:
        seen.add(id(x))
        return ("module", Ident(x), _attributes_key(x, seen))
    return Ident(x)  # a State, an array, a function: by identity


# --- traced programs -----------------------------------------------------------------------

# Parameters that only differentiation reads: the compiled program never runs them, and they
# are new objects on every trace (so keying them would compile every trace anew).
_DIFFERENTIATION_ONLY = frozenset(
    {"jvp_jaxpr_fun", "jvp_jaxpr_thunk", "fwd_jaxpr_thunk", "bwd", "out_trees"}
)
_SMALL_CONSTANT = 1 << 16  # elements: constants inside sub-programs up to this are keyed by value
_CALLBACK_DEPTH = 8  # closures within closures of a callback keyed by their code this deep


class _Unkeyable(Exception):
    """A program holding a tracer of an enclosing trace: it is compiled but not shared."""


def program_key(closed: Any) -> Any:
    """A key equal for two traced programs that compute the same thing, or None.

    A ``ClosedJaxpr`` is keyed by its equations (primitives, parameters, literals, the flow
    of values), the shapes and dtypes of its inputs and constants (constants are passed to the
    executable as arguments, so their values are not part of the key), and its effects. Host
    callbacks are keyed by the identity of the Python functions they call; constants inside
    sub-programs, which are compiled in, by value. None when the program holds a tracer of an
    enclosing trace (it is then compiled for this use only).
    """
    try:
        return (_jaxpr_key(closed.jaxpr), tuple(jax.typeof(c) for c in closed.consts))
    except _Unkeyable:
        return None


def _jaxpr_key(jaxpr: Any) -> Any:
    from jax._src import core

    numbers: dict[Any, int] = {}

    def atom(v: Any) -> Any:
        if isinstance(v, core.Literal):
            return ("literal", _constant_key(v.val), v.aval)
        if isinstance(v, core.DropVar):
            return ("drop", v.aval)
        n = numbers.get(v)
        if n is None:
            n = numbers[v] = len(numbers)
        return n

    inputs = tuple((atom(v), v.aval) for v in (*jaxpr.constvars, *jaxpr.invars))
    eqns = tuple(
        (
            e.primitive,
            tuple(atom(v) for v in e.invars),
            tuple((atom(v), v.aval) for v in e.outvars),
            tuple(
                (k, _param_key(p))
                for k, p in sorted(e.params.items())
                if k not in _DIFFERENTIATION_ONLY
            ),
        )
        for e in jaxpr.eqns
    )
    return (inputs, eqns, tuple(atom(v) for v in jaxpr.outvars), frozenset(jaxpr.effects))


def _constant_key(x: Any) -> Any:
    if isinstance(x, jax.core.Tracer):
        raise _Unkeyable
    a = np.asarray(x)
    if a.size > _SMALL_CONSTANT:
        return ("large", a.shape, str(a.dtype), Held(x))
    return (a.shape, str(a.dtype), a.tobytes())


def _param_key(p: Any, depth: int = 0, within: frozenset[int] = frozenset()) -> Any:
    """``within``: the functions being keyed around this one (a wrapper that refers to itself,
    as run-time type-checking decorators do, is keyed once)."""
    from jax._src import core

    if isinstance(p, core.ClosedJaxpr):
        return ("closed", _jaxpr_key(p.jaxpr), tuple(_constant_key(c) for c in p.consts))
    if isinstance(p, core.Jaxpr):
        return ("jaxpr", _jaxpr_key(p))
    if isinstance(p, tuple | list):
        return (type(p), tuple(_param_key(e, depth, within) for e in p))
    if type(p) is dict:  # e.g. a debug callback's static arguments
        return (dict, tuple((k, _param_key(v, depth, within)) for k, v in p.items()))
    if isinstance(p, weakref.ref) and p() is not None:  # a reference to a per-trace closure
        return ("weakref", _param_key(p(), depth, within))
    if isinstance(p, types.FunctionType) and depth < _CALLBACK_DEPTH:
        # A host callback's wrapper, made anew on every trace: keyed by what it calls.
        if id(p) in within:
            return ("itself",)
        inner = within | {id(p)}
        cells = []
        for cell in p.__closure__ or ():
            try:
                cells.append(_param_key(cell.cell_contents, depth + 1, inner))
            except ValueError:  # an empty cell
                cells.append("<empty>")
        return ("function", p.__code__, tuple(cells))
    if isinstance(p, functools.partial):
        return (
            "partial",
            _param_key(p.func, depth, within),
            tuple(_param_key(a, depth + 1, within) for a in p.args),
            tuple((k, _param_key(v, depth + 1, within)) for k, v in sorted(p.keywords.items())),
        )
    if isinstance(p, jax.core.Tracer):
        raise _Unkeyable
    if isinstance(p, np.ndarray | jax.Array):
        return _constant_key(p)
    try:
        hash(p)
    except TypeError:
        return Held(p)
    return (type(p), p)
