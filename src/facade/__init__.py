"""facade: the stateful, brainstate-compatible layer of stategrad.

``import facade as brainstate`` runs brainstate code: states live on modules, transforms find
them, and each call lowers to one compiled JAX program through the ``functional`` engine.
"""

from . import _filters as filter
from . import environ, graph, nn, optim, random, transform, util
from ._state import HiddenState, LongTermState, ParamState, ShortTermState, State

__all__ = [
    "HiddenState",
    "LongTermState",
    "ParamState",
    "ShortTermState",
    "State",
    "environ",
    "filter",
    "graph",
    "nn",
    "optim",
    "random",
    "transform",
    "util",
]
