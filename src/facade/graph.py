"""Find the states in an object graph: ``states`` (flat, path-keyed) and ``treefy_states`` (nested).

The walker goes through object attributes (``vars(obj)``, minus the names in the class attribute
``graph_invisible_attrs``), lists, tuples and dicts, to any depth. Objects whose class sets
``graph_opaque = True`` (the facade's transforms: a ``grad`` or ``jit`` stored on a model holds
its grad_states and caches) are not walked into, so a model's paths are only its own. A path is
the tuple of attribute names, list/tuple indices and dict keys from the root, e.g.
``('layers', 0, 'weight')``.
Children are visited in sorted order (attribute names and dict keys sorted, sequences by index)
and every object is visited once, so cycles are fine and a state reachable by several paths is
reported once, at the first of them in sorted order. A State is a leaf: the walk never looks
inside its value. Classes, modules, functions and arrays are not walked into.

Walking reads no ``State.value``: it records nothing in a facade trace.
"""

from __future__ import annotations

import operator
import types
import typing
from collections.abc import Callable, Iterable

import jax
import numpy as np

from ._filters import All, Any, Not, to_predicate
from ._state import State, peek
from .util._pretty import PrettyObject

__all__ = [
    "All",
    "Any",
    "FlatDict",
    "NestedDict",
    "Node",
    "Not",
    "describe_state",
    "states",
    "to_predicate",
    "treefy_states",
]

_NOT_WALKED = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    jax.Array,
    np.ndarray,
    np.generic,
    str,
    bytes,
)


class _Raw(str):
    def __repr__(self) -> str:
        return str(self)


def _describe_leaf(x: typing.Any) -> str:
    dtype = getattr(x, "dtype", None)
    return repr(x) if dtype is None else f"{dtype}{list(np.shape(x))}"


def describe_state(state: State) -> str:
    """A one-line summary of a state: its type, dtype and shape (``ParamState(float32[2, 1])``).

    Reads the value without recording a read in a facade trace.

    Args:
        state: any State.

    Returns:
        The summary string.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> from facade.graph import describe_state
        >>> describe_state(facade.ParamState(jnp.zeros((2, 1)), name="w"))
        "ParamState(float32[2, 1], name='w')"
    """
    value = peek(state)
    if hasattr(value, "dtype"):
        text = _describe_leaf(value)
    else:
        text = repr(jax.tree.map(lambda x: _Raw(_describe_leaf(x)), value))
    name = f", name={state.name!r}" if state.name else ""
    return f"{type(state).__name__}({text}{name})"


def _key_order(key: typing.Any) -> tuple:
    """Total order on path elements: ints first (numerically), then strs, then the rest by repr."""
    if isinstance(key, int | np.integer):
        return (0, int(key), "")
    if isinstance(key, str):
        return (1, 0, key)
    return (2, 0, f"{type(key).__name__}:{key!r}")


def _path_order(key: typing.Any) -> tuple:
    if isinstance(key, tuple):
        return tuple(_key_order(k) for k in key)
    return (_key_order(key),)


class _SortedDict(dict):
    """A dict built in sorted key order and registered as a pytree (children in that order)."""

    _order = staticmethod(_key_order)

    def __init__(self, *args: typing.Any, **kwargs: typing.Any):
        items = dict(*args, **kwargs)
        super().__init__(sorted(items.items(), key=lambda kv: self._order(kv[0])))

    def __init_subclass__(cls, **kwargs: typing.Any) -> None:
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_with_keys(
            cls, cls._flatten_with_keys, cls._unflatten, cls._flatten
        )

    def _sorted_keys(self) -> tuple:
        # Flattening happens on every jit/transform call: sort once per key set, not per call.
        keys = tuple(dict.keys(self))
        cached = self.__dict__.get("_sorted_cache")
        if cached is None or cached[0] != keys:
            cached = self.__dict__["_sorted_cache"] = (keys, tuple(sorted(keys, key=self._order)))
        return cached[1]

    def _flatten(self) -> tuple[list, tuple]:
        keys = self._sorted_keys()
        return [self[k] for k in keys], keys

    def _flatten_with_keys(self) -> tuple[list, tuple]:
        keys = self._sorted_keys()
        return [(jax.tree_util.DictKey(k), self[k]) for k in keys], keys

    @classmethod
    def _unflatten(cls, keys: tuple, children: Iterable) -> _SortedDict:
        new = cls.__new__(cls)
        dict.update(new, zip(keys, children, strict=True))
        return new

    def __repr__(self) -> str:
        return self._pretty(0)

    def _pretty(self, depth: int) -> str:
        name = type(self).__name__
        if not self:
            return f"{name}({{}})"
        pad = "  " * (depth + 1)
        lines = [f"{name}({{"]
        for k, v in self.items():
            if isinstance(v, _SortedDict):
                text = v._pretty(depth + 1)
            else:
                text = describe_state(v) if isinstance(v, State) else repr(v)
            lines.append(f"{pad}{k!r}: {text},")
        lines.append("  " * depth + "})")
        return "\n".join(lines)

    def __reduce__(self) -> tuple:
        return (type(self), (dict(self),))


class NestedDict(_SortedDict):
    """A nested mapping of states (or values) by attribute name / index, down the object tree.

    A dict subclass and a JAX pytree (children in sorted key order), so it goes through
    ``jax.tree.map``, jit and optax and comes back as a NestedDict. Built in sorted key order;
    keys added later with ``d[k] = v`` go at the end of iteration but not of flattening.

    Example:
        >>> from facade.graph import NestedDict
        >>> d = NestedDict({"w": 1.0, "b": NestedDict({"x": 2.0})})
        >>> list(d), d.to_flat() == {("b", "x"): 2.0, ("w",): 1.0}
        (['b', 'w'], True)
    """

    def to_flat(self) -> FlatDict:
        """The same leaves keyed by path tuples (nested dicts, plain or not, are descended).

        Returns:
            A :class:`FlatDict`; empty sub-dicts leave no entry.

        Example:
            >>> from facade.graph import NestedDict
            >>> NestedDict({"a": {0: 1.0}}).to_flat()
            FlatDict({
              ('a', 0): 1.0,
            })
        """
        flat: dict[tuple, typing.Any] = {}

        def visit(d: dict, prefix: tuple) -> None:
            for k, v in d.items():
                if isinstance(v, dict):
                    visit(v, (*prefix, k))
                else:
                    flat[(*prefix, k)] = v

        visit(self, ())
        return FlatDict(flat)


class FlatDict(_SortedDict):
    """A flat mapping from path tuples (``('layers', 0, 'weight')``) to states (or values).

    A dict subclass and a JAX pytree (children in sorted path order), so it goes through
    ``jax.tree.map``, jit and optax and comes back as a FlatDict. Built in sorted path order.

    Example:
        >>> from facade.graph import FlatDict
        >>> d = FlatDict({("weight",): 1.0, ("bias",): 0.0})
        >>> list(d)
        [('bias',), ('weight',)]
    """

    _order = staticmethod(_path_order)

    def to_nested(self) -> NestedDict:
        """The same leaves as nested :class:`NestedDict` levels, one per path element.

        Returns:
            A :class:`NestedDict`.

        Raises:
            ValueError: a key is the empty path, or one path is a prefix of another (a value
                and a sub-dict would share a slot).

        Example:
            >>> from facade.graph import FlatDict
            >>> FlatDict({("a", 0): 1.0, ("b",): 2.0}).to_nested()
            NestedDict({
              'a': NestedDict({
                0: 1.0,
              }),
              'b': 2.0,
            })
        """
        root = NestedDict()
        for path, value in self.items():
            keys = path if isinstance(path, tuple) else (path,)
            if not keys:
                raise ValueError("FlatDict.to_nested: the empty path () cannot be nested")
            node = root
            for i, k in enumerate(keys[:-1]):
                child = node.setdefault(k, NestedDict())
                if not isinstance(child, NestedDict):
                    raise ValueError(
                        f"FlatDict.to_nested: path {path!r} goes through {keys[: i + 1]!r}, "
                        "which holds a value"
                    )
                node = child
            if keys[-1] in node:
                raise ValueError(f"FlatDict.to_nested: path {path!r} is also a prefix of another")
            node[keys[-1]] = value
        return _resorted(root)

    # brainstate's FlattedDict methods (brainstate.util.FlattedDict is this class).

    def to_nest(self) -> NestedDict:
        """brainstate's name for :meth:`to_nested`."""
        return self.to_nested()

    def filter(self, first: typing.Any, /, *filters: typing.Any) -> FlatDict | tuple[FlatDict, ...]:
        """The entries each filter matches: one FlatDict per filter (a tuple for several).

        Each entry goes to the first filter it matches; entries matching none are dropped.

        Raises:
            TypeError: a filter is not a valid filter.

        Example:
            >>> import jax.numpy as jnp, facade
            >>> from facade.graph import FlatDict
            >>> w, h = facade.ParamState(jnp.zeros(1)), facade.HiddenState(0.0)
            >>> d = FlatDict({("w",): w, ("h",): h})
            >>> list(d.filter(facade.ParamState))
            [('w',)]
        """
        groups, _ = self._group((first, *filters))
        return groups[0] if len(groups) == 1 else tuple(groups)

    def split(self, first: typing.Any, /, *filters: typing.Any) -> FlatDict | tuple[FlatDict, ...]:
        """As :meth:`filter`, but the filters must cover every entry (end with ``...``).

        Raises:
            ValueError: some entries match no filter.
            TypeError: a filter is not a valid filter.
        """
        groups, rest = self._group((first, *filters))
        if rest:
            raise ValueError(
                f"Non-exhaustive filters, got a non-empty remainder: {list(rest)}.\n"
                "Use `...` to match all remaining elements."
            )
        return groups[0] if len(groups) == 1 else tuple(groups)

    def _group(self, filters: tuple) -> tuple[list[FlatDict], list]:
        predicates = [to_predicate(f) for f in filters]
        groups: list[dict] = [{} for _ in predicates]
        rest = []
        for path, value in self.items():
            for group, predicate in zip(groups, predicates, strict=True):
                if predicate(path, value):
                    group[path] = value
                    break
            else:
                rest.append(path)
        return [FlatDict(g) for g in groups], rest

    @staticmethod
    def merge(*states: typing.Any) -> FlatDict:
        """One FlatDict of all entries (NestedDicts are flattened first); later ones win."""
        out: dict = {}
        for s in states:
            out.update(s.to_flat() if isinstance(s, NestedDict) else s)
        return FlatDict(out)

    def to_dict_values(self) -> dict:
        """A plain dict ``{path: value}``: each State replaced by its ``value``."""
        return {k: v.value if isinstance(v, State) else v for k, v in self.items()}

    def assign_dict_values(self, data: dict) -> None:
        """Write ``data[path]`` into each entry: a State's ``value``, or the entry itself.

        Raises:
            KeyError: a path of this FlatDict is missing from ``data``.
        """
        for k in list(self.keys()):
            if k not in data:
                raise KeyError(f"Invalid key: {k!r}")
            if isinstance(self[k], State):
                self[k].value = data[k]
            else:
                self[k] = data[k]


def _resorted(d: NestedDict) -> NestedDict:
    return NestedDict({k: _resorted(v) if isinstance(v, NestedDict) else v for k, v in d.items()})


class Node(PrettyObject):
    """Base class of mutable graph nodes (``nn.Module`` is one): brainstate's ``graph.Node``.

    The facade's graph functions walk any object's attributes, so subclassing adds no
    registration: a Node's states are found by :func:`states` like any object's, sorted by
    attribute name, minus the names in ``graph_invisible_attrs``. Its repr lists its attributes.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> class Model(facade.graph.Node):
        ...     def __init__(self):
        ...         self.w = facade.ParamState(jnp.zeros(3))
        >>> list(facade.graph.states(Model()))
        [('w',)]
    """

    graph_invisible_attrs: tuple[str, ...] = ()

    def check_valid_context(self, error_msg: Callable[[], str]) -> None:
        """Nothing to check: a facade State or Node may be used in any trace.

        brainstate raises ``TraceContextError`` when a node built in one trace level is mutated
        in another; the facade keeps values out of the objects during traces (a trace never puts
        a tracer into a State), so every context is valid.
        """


def _children(obj: typing.Any) -> list[tuple[typing.Any, typing.Any]] | None:
    """The (key, child) pairs to walk from ``obj`` in sorted order, or None for a leaf."""
    if isinstance(obj, dict):
        return sorted(obj.items(), key=lambda kv: _key_order(kv[0]))
    if isinstance(obj, list | tuple):
        return list(enumerate(obj))
    if isinstance(obj, _NOT_WALKED) or getattr(type(obj), "graph_opaque", False):
        return None
    attrs = getattr(obj, "__dict__", None)
    if not isinstance(attrs, dict) or not attrs:
        return None
    hidden = getattr(type(obj), "graph_invisible_attrs", ())
    return sorted(((k, v) for k, v in attrs.items() if k not in hidden), key=operator.itemgetter(0))


def _walk(node: typing.Any) -> list[tuple[tuple, State]]:
    """Every state reachable from ``node`` once, at its first path in sorted order, in order."""
    found: list[tuple[tuple, State]] = []
    seen: set[int] = set()
    stack: list[tuple[tuple, typing.Any]] = [((), node)]
    while stack:
        path, obj = stack.pop()
        if id(obj) in seen:
            continue
        if isinstance(obj, State):
            seen.add(id(obj))
            found.append((path, obj))
            continue
        children = _children(obj)
        if not children:
            continue
        seen.add(id(obj))
        stack.extend(((*path, k), v) for k, v in reversed(children))
    return found


def states(node: typing.Any, *filters: typing.Any) -> FlatDict | tuple[FlatDict, ...]:
    """The states reachable from ``node``, as a FlatDict keyed by path tuples in sorted order.

    Args:
        node: any object: a Module, a list/tuple/dict of states, an object holding states as
            attributes, or a State (whose path is then ``()``).
        *filters: none (every state), one filter (a FlatDict of the states it matches) or several
            (a tuple of FlatDicts, one per filter; each state goes to the FIRST filter it
            matches, so ``...`` last catches the rest; states matching none are left out).
            See :mod:`facade._filters` for the filter forms.

    Returns:
        A :class:`FlatDict` ``{path: state}``, or a tuple of them for several filters. A state
        reachable by several paths appears once, at the first path in sorted order.

    Raises:
        TypeError: a filter is not a valid filter.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> from facade import graph
        >>> tree = {"layers": [facade.ParamState(jnp.zeros(2))], "h": facade.HiddenState(0.0)}
        >>> list(graph.states(tree))
        [('h',), ('layers', 0)]
        >>> params, rest = graph.states(tree, facade.ParamState, ...)
        >>> list(params), list(rest)
        ([('layers', 0)], [('h',)])
    """
    predicates = [to_predicate(f) for f in filters]
    found = _walk(node)
    if len(predicates) <= 1:
        keep = predicates[0] if predicates else None
        return FlatDict((p, s) for p, s in found if keep is None or keep(p, s))
    groups: list[dict] = [{} for _ in predicates]
    for path, state in found:
        for group, predicate in zip(groups, predicates, strict=True):
            if predicate(path, state):
                group[path] = state
                break
    return tuple(FlatDict(g) for g in groups)


def treefy_states(node: typing.Any, *filters: typing.Any) -> NestedDict | tuple[NestedDict, ...]:
    """The same selection as :func:`states`, as nested dicts by attribute name / index.

    Args:
        node: any object holding states (not a bare State: its path ``()`` cannot be nested).
        *filters: as for :func:`states`.

    Returns:
        A :class:`NestedDict` (``.to_flat()`` gives what :func:`states` returns), or a tuple of
        them for several filters.

    Raises:
        TypeError: a filter is not a valid filter.
        ValueError: ``node`` is itself a State.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> from facade import graph
        >>> tree = {"layers": [facade.ParamState(jnp.zeros(2))]}
        >>> nested = graph.treefy_states(tree)
        >>> list(nested["layers"]), list(nested.to_flat())
        ([0], [('layers', 0)])
    """
    selected = states(node, *filters)
    if isinstance(selected, tuple):
        return tuple(s.to_nested() for s in selected)
    return selected.to_nested()
