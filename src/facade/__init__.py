"""facade: the stateful, brainstate-compatible layer of stategrad.

``import facade as brainstate`` runs brainstate code: states live on modules, transforms find
them, and each call lowers to one compiled JAX program through the ``functional`` engine.
"""

from ._state import HiddenState, LongTermState, ParamState, ShortTermState, State

__all__ = ["HiddenState", "LongTermState", "ParamState", "ShortTermState", "State", "transform"]

from . import transform  # noqa: E402
