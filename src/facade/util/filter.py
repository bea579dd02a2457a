"""The state filters under brainstate's name for them, ``brainstate.util.filter``."""

from .._filters import (
    All,
    Any,
    Everything,
    Not,
    Nothing,
    OfType,
    PathContains,
    Predicate,
    WithTag,
    to_predicate,
)

__all__ = [
    "All",
    "Any",
    "Everything",
    "Not",
    "Nothing",
    "OfType",
    "PathContains",
    "Predicate",
    "WithTag",
    "to_predicate",
]
