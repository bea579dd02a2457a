"""Readable multi-line reprs: :class:`PrettyObject` (attributes) and :class:`PrettyMapping`.

The layout is brainstate's: one item per line, indented two spaces per level, objects as
``Name(attr=value, ...)``, mappings as ``{key: value, ...}``; a node met again inside itself is
printed as ``Name(...)``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["PrettyMapping", "PrettyObject", "pretty_repr"]

_seen = threading.local()


def _block(open_: str, close: str, items: list[str], indent: int) -> str:
    if not items:
        return open_ + close
    pad = "  " * (indent + 1)
    body = ",\n".join(pad + item for item in items)
    return f"{open_}\n{body}\n{'  ' * indent}{close}"


def pretty_repr(x: Any, indent: int = 0) -> str:
    """The multi-line repr of ``x`` at nesting level ``indent``.

    PrettyObjects, dicts and lists are expanded one item per line; anything else is ``repr``.

    Example:
        >>> from facade.util import pretty_repr
        >>> print(pretty_repr({"a": [1]}))
        {
          'a': [
            1
          ]
        }
    """
    if isinstance(x, PrettyObject | PrettyMapping):
        return x._pretty(indent)
    if type(x) is dict:
        items = [f"{k!r}: {pretty_repr(v, indent + 1)}" for k, v in x.items()]
        return _block("{", "}", items, indent)
    if type(x) is list:
        return _block("[", "]", [pretty_repr(v, indent + 1) for v in x], indent)
    text = repr(x)
    # A nested multi-line repr (a State, a Module) keeps its own layout, shifted to this level.
    return text.replace("\n", "\n" + "  " * indent)


class PrettyObject:
    """A base class whose ``repr`` lists its attributes one per line, nested objects indented.

    Example:
        >>> from facade.util import PrettyObject
        >>> class Point(PrettyObject):
        ...     def __init__(self):
        ...         self.x, self.tags = 1, ["a"]
        >>> print(Point())
        Point(
          x=1,
          tags=[
            'a'
          ]
        )
    """

    def __pretty_repr_attrs__(self) -> list[tuple[str, Any]]:
        """The (name, value) pairs shown; by default the instance ``__dict__`` in order."""
        return list(getattr(self, "__dict__", {}).items())

    def _pretty(self, indent: int) -> str:
        name = type(self).__name__
        active = _seen.__dict__.setdefault("ids", set())
        if id(self) in active:  # a cycle: brainstate prints the inner occurrence as Name(...)
            return f"{name}(...)"
        active.add(id(self))
        try:
            items = [f"{k}={pretty_repr(v, indent + 1)}" for k, v in self.__pretty_repr_attrs__()]
        finally:
            active.discard(id(self))
        return _block(f"{name}(", ")", items, indent)

    def __repr__(self) -> str:
        return self._pretty(0)


class PrettyMapping:
    """A mapping shown one key per line, optionally after a type name (``MyDict{...}``).

    Values are shown with their plain ``repr``.

    Args:
        mapping: the mapping to show.
        type_name: written before the opening brace.

    Example:
        >>> from facade.util import PrettyMapping
        >>> print(PrettyMapping({"a": 1, "b": 2}, type_name="MyDict"))
        MyDict{
          'a': 1,
          'b': 2
        }
    """

    def __init__(self, mapping: Mapping, type_name: str = ""):
        self.mapping = mapping
        self.type_name = type_name

    def _pretty(self, indent: int) -> str:
        items = [
            f"{k!r}: {repr(v).replace(chr(10), chr(10) + '  ' * (indent + 1))}"
            for k, v in self.mapping.items()
        ]
        return _block(self.type_name + "{", "}", items, indent)

    def __repr__(self) -> str:
        return self._pretty(0)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PrettyMapping)
            and self.mapping == other.mapping
            and self.type_name == other.type_name
        )

    __hash__ = None  # type: ignore[assignment]
