"""``Module``: the base class of brainstate-style models, which hold their states as attributes."""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Callable, Iterator

import jax
import numpy as np

from .. import graph
from .._core import keys
from .._state import State
from ..graph import describe_state
from ..mixin import ParamDesc
from ._checks import Size, to_size, typechecked

__all__ = ["Module", "walk_modules"]

_MAX_DEPTH = sys.maxsize


class Module(graph.Node, ParamDesc):
    """Base class for models: assign States, sub-Modules and containers of them as attributes.

    Subclass it, call ``super().__init__()``, assign :class:`~facade.State` objects,
    sub-Modules and lists/tuples/dicts of them (to any depth) as attributes, and define
    ``update()``: calling the module calls ``update()`` (a subclass may define ``__call__``
    instead). :meth:`states` finds the states by attribute path, :meth:`nodes` the modules.
    ``init_state()`` and ``reset_state()`` are hooks that :func:`~facade.nn.init_all_states`
    and :func:`~facade.nn.reset_all_states` call on every module of a model; ``x >> module``
    is ``module(x)``.

    Args:
        name: an optional name, shown in the repr.

    Raises:
        TypeError: ``name`` is not a str or None.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> class Linear(facade.nn.Module):
        ...     def __init__(self, n_in, n_out):
        ...         super().__init__()
        ...         self.weight = facade.ParamState(jnp.zeros((n_in, n_out)))
        ...         self.bias = facade.ParamState(jnp.zeros(n_out))
        ...     def update(self, x):
        ...         return x @ self.weight.value + self.bias.value
        >>> model = Linear(2, 1)
        >>> list(model.states(facade.ParamState))
        [('bias',), ('weight',)]
        >>> model(jnp.ones((3, 2))).shape, (jnp.ones(2) >> model).shape
        ((3, 1), (1,))
        >>> model
        Linear(
          weight=ParamState(float32[2, 1]),
          bias=ParamState(float32[1]),
        )
    """

    # brainstate's Module is a graph.Node (isinstance checks in client code) and a ParamDesc
    # (``Cls.desc(...)`` deferred constructors, used by brainpy.state's synapse descriptions).

    # Attributes shown first in the repr, when set (layers list their sizes and options).
    _repr_fields: tuple[str, ...] = ("in_size", "out_size")
    # A Module passed to a held transform is keyed by its attributes (``_core.keys``).
    _facade_module = True

    def __setattr__(self, name: str, value: typing.Any) -> None:
        object.__setattr__(self, name, value)
        keys.MUTATIONS[0] += 1  # a trace that read this module's attributes may be stale

    def __delattr__(self, name: str) -> None:
        object.__delattr__(self, name)
        keys.MUTATIONS[0] += 1

    def __init__(self, name: str | None = None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Module name must be a str or None, got {type(name).__name__}")
        self._name = name

    @property
    def name(self) -> str | None:
        """The name given at construction, or None."""
        return getattr(self, "_name", None)

    @property
    def in_size(self) -> tuple[int, ...] | None:
        """The shape of one input without the batch axis, if the module knows it."""
        return getattr(self, "_in_size", None)

    @in_size.setter
    def in_size(self, size: Size | None) -> None:
        self._in_size = None if size is None else to_size(size, type(self).__name__, "in_size")

    @property
    def out_size(self) -> tuple[int, ...] | None:
        """The shape of one output without the batch axis, if the module knows it."""
        return getattr(self, "_out_size", None)

    @out_size.setter
    def out_size(self, size: Size | None) -> None:
        self._out_size = None if size is None else to_size(size, type(self).__name__, "out_size")

    def update(self, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        """The module's computation; calling the module calls this. Subclasses define it.

        Raises:
            NotImplementedError: the subclass defines neither ``update`` nor ``__call__``.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must define update() (calling a module calls update())"
        )

    def __call__(self, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        return self.update(*args, **kwargs)

    def __rrshift__(self, other: typing.Any) -> typing.Any:
        # ``x >> module``: Python asks x first; an array does not know modules, so we get here.
        return self(other)

    def init_state(self, *args: typing.Any, **kwargs: typing.Any) -> None:
        """Create this module's own states (e.g. hidden states sized by ``batch_size``).

        Called on every module by :func:`~facade.nn.init_all_states`; does nothing here.
        """

    def reset_state(self, *args: typing.Any, **kwargs: typing.Any) -> None:
        """Reset this module's own states to their initial values.

        Called on every module by :func:`~facade.nn.reset_all_states`; does nothing here.
        """

    def init_all_states(self, *args: typing.Any, **kwargs: typing.Any) -> Module:
        """``nn.init_all_states(self, *args, **kwargs)``: every sub-module's ``init_state``.

        brainstate has this method too (its return value is a catcher of the new States; here
        it is the module, as ``nn.init_all_states`` returns its target).

        Example:
            >>> import jax.numpy as jnp, facade
            >>> class Counter(facade.nn.Module):
            ...     def init_state(self, batch_size=None):
            ...         self.n = facade.ShortTermState(jnp.zeros(batch_size or 1))
            >>> m = Counter()
            >>> m.init_all_states(batch_size=3) is m, m.n.value.shape
            (True, (3,))
        """
        from ._collective import init_all_states  # _collective imports this module

        return init_all_states(self, *args, **kwargs)

    def states(self, *filters: typing.Any) -> graph.FlatDict | tuple[graph.FlatDict, ...]:
        """The states of this module by attribute path: ``graph.states(self, *filters)``.

        Args:
            *filters: none (all states), one filter, or several (one FlatDict per filter, each
                state in the first filter it matches; ``...`` catches the rest).

        Returns:
            A :class:`~facade.graph.FlatDict` keyed by path tuples in sorted order, or a tuple
            of them for several filters. A shared state appears once.

        Raises:
            TypeError: a filter is not a valid filter.

        Example:
            >>> import jax.numpy as jnp, facade
            >>> m = facade.nn.Module()
            >>> m.layers = [facade.ParamState(jnp.ones(2)), facade.HiddenState(jnp.zeros(2))]
            >>> params, other = m.states(facade.ParamState, ...)
            >>> list(params), list(other)
            ([('layers', 0)], [('layers', 1)])
        """
        return graph.states(self, *filters)

    @typechecked
    def nodes(
        self, *filters: typing.Any, allowed_hierarchy: tuple[int, int] = (0, _MAX_DEPTH)
    ) -> graph.FlatDict | tuple[graph.FlatDict, ...]:
        """The modules in this module's tree (itself included, at path ``()``), by path.

        Args:
            *filters: none (every module), one or several node filters: a Module subclass
                (instances of it), a callable ``(path, module) -> bool``, a tuple of filters
                (any of them), or ``...`` (everything). With several filters, each module goes
                to the first filter it matches.
            allowed_hierarchy: ``(low, high)``: keep the modules nested ``low`` to ``high``
                modules deep (this module is depth 0, its children depth 1).

        Returns:
            A :class:`~facade.graph.FlatDict` ``{path: module}``, or a tuple of them for
            several filters. A module reachable by several paths appears once.

        Raises:
            TypeError: a filter is not a valid node filter.
            ValueError: ``allowed_hierarchy`` is not ``(low, high)`` with ``0 <= low <= high``.

        Example:
            >>> import facade
            >>> net = facade.nn.Sequential(facade.nn.Linear(4, 3), facade.nn.ReLU())
            >>> list(net.nodes())
            [(), ('layers', 0), ('layers', 1)]
            >>> list(net.nodes(facade.nn.Linear))
            [('layers', 0)]
        """
        low, high = allowed_hierarchy
        if not 0 <= low <= high:
            raise ValueError(
                f"allowed_hierarchy must be (low, high) with 0 <= low <= high, "
                f"got {allowed_hierarchy!r}"
            )
        found = [(p, m) for p, m, depth in walk_modules(self) if low <= depth <= high]
        predicates = [_node_predicate(f) for f in filters]
        if len(predicates) <= 1:
            keep = predicates[0] if predicates else None
            return graph.FlatDict((p, m) for p, m in found if keep is None or keep(p, m))
        groups: list[dict] = [{} for _ in predicates]
        for path, module in found:
            for group, predicate in zip(groups, predicates, strict=True):
                if predicate(path, module):
                    group[path] = module
                    break
        return tuple(graph.FlatDict(g) for g in groups)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The immediate sub-modules with their dotted attribute paths (``'layers.0'``).

        Returns:
            An iterator of ``(name, module)`` in sorted path order.

        Example:
            >>> import facade
            >>> net = facade.nn.Sequential(facade.nn.Linear(4, 3), facade.nn.ReLU())
            >>> ", ".join(name for name, _ in net.named_children())
            'layers.0, layers.1'
        """
        children = typing.cast(graph.FlatDict, self.nodes(allowed_hierarchy=(1, 1)))
        for path, module in children.items():
            yield ".".join(str(p) for p in path), module

    def children(self) -> Iterator[Module]:
        """The immediate sub-modules, in sorted path order.

        Returns:
            An iterator of modules.

        Example:
            >>> import facade
            >>> net = facade.nn.Sequential(facade.nn.Linear(4, 3), facade.nn.ReLU())
            >>> ", ".join(type(m).__name__ for m in net.children())
            'Linear, ReLU'
        """
        for _, module in self.named_children():
            yield module

    def __repr__(self) -> str:
        return _format(self, 0, set()) or f"{type(self).__name__}()"


# --- walking the module tree ----------------------------------------------------------------

# Not walked into (the rule facade.graph follows): they hold no modules a model could own.
_LEAVES = (
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
    State,
)


def _key_order(key: typing.Any) -> tuple:
    if isinstance(key, int | np.integer):
        return (0, int(key), "")
    if isinstance(key, str):
        return (1, 0, key)
    return (2, 0, f"{type(key).__name__}:{key!r}")


def _children(obj: typing.Any) -> list[tuple[typing.Any, typing.Any]]:
    """The ``(key, child)`` pairs of ``obj`` in the order facade.graph walks them."""
    if isinstance(obj, dict):
        return sorted(obj.items(), key=lambda kv: _key_order(kv[0]))
    if isinstance(obj, list | tuple):
        return list(enumerate(obj))
    if isinstance(obj, _LEAVES):
        return []
    attrs = getattr(obj, "__dict__", None)
    if not isinstance(attrs, dict):
        return []
    hidden = getattr(type(obj), "graph_invisible_attrs", ())
    return sorted((kv for kv in attrs.items() if kv[0] not in hidden), key=lambda kv: kv[0])


def walk_modules(root: typing.Any) -> list[tuple[tuple, Module, int]]:
    """Every Module reachable from ``root`` once, as ``(path, module, depth)``, children first.

    ``depth`` counts the modules above it (``root`` itself is depth 0 if it is a Module). The
    order is post-order over sorted children: a module comes after all of its sub-modules, so
    ``init_state`` of a parent may use the states its children have just created.
    """
    found: list[tuple[tuple, Module, int]] = []
    seen: set[int] = set()

    def visit(obj: typing.Any, path: tuple, depth: int) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        is_module = isinstance(obj, Module)
        for key, child in _children(obj):
            visit(child, (*path, key), depth + is_module)
        if is_module:
            found.append((path, obj, depth))

    visit(root, (), 0)
    return found


def _node_predicate(f: typing.Any) -> Callable[[tuple, typing.Any], bool]:
    """A node filter as a predicate ``(path, module) -> bool``."""
    if f is Ellipsis or f is True:
        return lambda path, node: True
    if f is None or f is False:
        return lambda path, node: False
    if isinstance(f, type):
        return lambda path, node: isinstance(node, f)
    if isinstance(f, tuple):
        parts = [_node_predicate(x) for x in f]
        return lambda path, node: any(p(path, node) for p in parts)
    if callable(f):
        return lambda path, node: bool(f(path, node))
    raise TypeError(
        f"invalid node filter {f!r} of type {type(f).__name__}: expected a Module subclass, a "
        "predicate (path, module) -> bool, a tuple of filters, ..., True, None or False"
    )


# --- repr ------------------------------------------------------------------------------------


def _callable_name(obj: typing.Any) -> str | None:
    """A plain function's name (``relu``), shown where it sits among layers."""
    if isinstance(obj, Module | type) or not callable(obj):
        return None
    name = getattr(obj, "__name__", None)
    return name if isinstance(name, str) else type(obj).__name__


def _format(obj: typing.Any, depth: int, seen: set[int]) -> str | None:
    """Repr of the states/modules inside ``obj``, or None when it holds none."""
    if isinstance(obj, State):
        return describe_state(obj)
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(obj, Module):
        head = type(obj).__name__ + (f"[{obj.name!r}]" if obj.name else "")
        if id(obj) in seen:
            return f"{head}(...)"
        seen.add(id(obj))
        fields = [
            (f"{k}=", _callable_name(getattr(obj, k)) or repr(getattr(obj, k)))
            for k in type(obj)._repr_fields
            if getattr(obj, k, None) is not None
        ]
        items = fields + [
            (f"{k}=", _format(v, depth + 1, seen))
            for k, v in vars(obj).items()
            if not k.startswith("_")
        ]
        open_, close = head + "(", ")"
    elif isinstance(obj, list | tuple | dict):
        if id(obj) in seen:
            return None
        seen.add(id(obj))
        pairs = obj.items() if isinstance(obj, dict) else ((None, v) for v in obj)
        items = [("" if k is None else f"{k!r}: ", _format(v, depth + 1, seen)) for k, v in pairs]
        if all(text is None for _, text in items):
            return None
        # Among layers, a plain function (an activation in a Sequential) is shown by name.
        values = obj.values() if isinstance(obj, dict) else obj
        items = [
            (label, text if text is not None else _callable_name(v))
            for (label, text), v in zip(items, values, strict=True)
        ]
        if isinstance(obj, dict):
            open_, close = "{", "}"
        else:
            open_, close = ("[", "]") if isinstance(obj, list) else ("(", ")")
    else:
        return None
    body = [f"{inner}{label}{text}," for label, text in items if text is not None]
    if not body:
        return open_ + close
    return "\n".join([open_, *body, pad + close])
