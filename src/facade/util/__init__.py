"""brainstate's ``util`` namespace, as far as the facade provides it.

``util.filter`` (the state filters of ``facade.filter``, also re-exported here as brainstate
does), the pretty-printing bases
(:class:`PrettyObject`, :class:`PrettyMapping`), :class:`DotDict`, :func:`get_unique_name`, and
``FlattedDict`` / ``NestedDict``: the facade's :class:`facade.graph.FlatDict` and
:class:`facade.graph.NestedDict` under brainstate's names (what ``Module.states()`` returns).

Example:
    >>> import facade
    >>> facade.util.FlattedDict is facade.graph.FlatDict
    True
"""

from typing import Any as _Any

from . import filter
from ._dotdict import DotDict
from ._naming import get_unique_name
from ._pretty import PrettyMapping, PrettyObject, pretty_repr
from .filter import All, Any, Everything, Not, Nothing, OfType, PathContains, WithTag, to_predicate

__all__ = [
    "All",
    "Any",
    "Everything",
    "Not",
    "Nothing",
    "OfType",
    "PathContains",
    "WithTag",
    "to_predicate",
    "DotDict",
    "FlattedDict",
    "NestedDict",
    "PrettyMapping",
    "PrettyObject",
    "filter",
    "get_unique_name",
    "pretty_repr",
]

# facade.graph imports this package (graph.Node is a PrettyObject), so its dict classes are
# fetched on first use rather than at import time (which would be an import cycle).
_FROM_GRAPH = {"FlattedDict": "FlatDict", "NestedDict": "NestedDict"}


def __getattr__(name: str) -> _Any:
    if name in _FROM_GRAPH:
        from .. import graph

        return getattr(graph, _FROM_GRAPH[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
